"""The batch forensic scan: it drives every stage (audio -> features -> model / artifacts ->
verdict -> explain / alignment -> report) over a catalog.

Modules: :mod:`.discovery` (which files a scan takes, lists of paths, each track's folder
name), :mod:`.batch` (the per-track analysis :func:`.batch.analyse_track`, the signed
per-track folders, resumability, the catalog, and the in-process engine),
:mod:`.ray_engine` (the same per-track function as Ray tasks, ``scan --engine ray``) and
:mod:`.reproduce` (``verify --reproduce``: re-run the analysis a report records and compare).
Light on purpose: an empty scan and ``--help`` import no torch.
"""
