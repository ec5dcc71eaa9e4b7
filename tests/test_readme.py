"""The README and the tool agree on the numbers a reader acts on (issue 24: the README said
`inconclusive` spans 0.50-0.60 while the verdict rule used 0.40-0.60)."""

import json
import re
from pathlib import Path

from musicbrain_cli.verdict import VerdictPolicy

ROOT = Path(__file__).resolve().parents[1]
CARD = ROOT / "musicbrain_cli" / "model" / "default" / "model_card.json"


def _band():
    policy = VerdictPolicy.from_card(json.loads(CARD.read_text(encoding="utf-8")))
    return (round(policy.threshold - policy.band, 2), round(policy.threshold + policy.band, 2),
            round(policy.threshold, 2))


def test_the_readme_states_the_shipped_models_inconclusive_band():
    readme = " ".join(ROOT.joinpath("README.md").read_text(encoding="utf-8").split())
    lo, hi, threshold = _band()
    stated = re.search(r"`ai` from a calibrated probability of (\d\.\d+), `human` up to "
                       r"(\d\.\d+), `inconclusive` strictly between (\d\.\d+) and (\d\.\d+)",
                       readme)
    assert stated, "the README no longer states the verdict rule in the tested words"
    assert [float(x) for x in stated.groups()] == [hi, lo, lo, hi]
    assert f"the threshold {threshold:.2f}" in readme[stated.end():stated.end() + 200]
    # Any other range the README gives for `inconclusive` is the same band.
    for match in re.finditer(r"`inconclusive`[^.]{0,60}?(\d\.\d+)\s*(?:-|–|to|and)\s*(\d\.\d+)",
                             readme):
        assert (float(match[1]), float(match[2])) == (lo, hi), match[0]


def test_the_readme_spells_options_as_the_cli_does():
    from musicbrain_cli.cli import main

    readme = ROOT.joinpath("README.md").read_text(encoding="utf-8")
    hidden = {opt for cmd in main.commands.values() for p in cmd.params
              if getattr(p, "hidden", False)
              for opt in p.opts}
    for opt in sorted(hidden):
        assert not re.search(re.escape(opt) + r"\b(?!-)", readme), f"README uses hidden {opt}"
