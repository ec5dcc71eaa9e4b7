"""Training alone: the distributed trainer (:mod:`.trainer` with :mod:`.sources`,
:mod:`.augment`, :mod:`.objective`, :mod:`.state`, :mod:`.validation`), its recipes
(:mod:`.config`, ``configs/``), the distributed helpers (:mod:`.distributed`), and the
fitting after training (:mod:`.finalize`, :mod:`.heads`). Data sets are built by
:mod:`musicbrain_cli.data`."""
