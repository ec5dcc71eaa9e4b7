"""``python -m musicbrain_cli`` runs the same CLI as the ``musicbrain`` console script."""

from musicbrain_cli.cli import main

if __name__ == "__main__":
    main()
