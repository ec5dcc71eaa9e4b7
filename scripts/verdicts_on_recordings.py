"""The full verdict of a scan on real human recordings: what each evidence line found and what
the combined rule made of it, per split and package of the Debian data card.

    python scripts/verdicts_on_recordings.py list --splits test,test-fresh,test-final,test-latest \
        -o runs/debian-verdicts/list.txt
    musicbrain scan --paths-from runs/debian-verdicts/list.txt --report none --unsigned \
        -o runs/debian-verdicts/out
    python scripts/verdicts_on_recordings.py tally --scan runs/debian-verdicts/out \
        [--json runs/debian-verdicts/tally.json]

The per-line cards measure each line on its own (the artifact line per 12 s clip and per
track); this measures what a user gets: the scan's combined verdict on whole recordings that
no line was fitted or calibrated on (the held-out packages of ``docs/human-recordings.md``,
fetched by ``scripts/fetch_human_recordings.py``). Every recording is human-made, so every
``ai`` verdict is a false accusation; ``human`` and ``inconclusive`` say how often the tool
can exonerate real music at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINES = ("content", "artifacts", "symbolic", "provenance")
VERDICTS = ("ai", "human", "inconclusive", "failed")


def _manifest(path: Path) -> tuple[Path, list[dict]]:
    return path.parent, json.loads(path.read_text(encoding="utf-8"))


def list_files(manifest: Path, splits: list[str]) -> list[Path]:
    base, packages = _manifest(manifest)
    out = []
    for pkg in packages:
        if pkg["split"] in splits:
            out += [(base / f).resolve() for f in pkg["files"] if (base / f).is_file()]
    return out


def tally(manifest: Path, scan_dir: Path) -> dict:
    """Per split and per package: verdict counts, each line's findings, and every ``ai``
    verdict named with the lines that made it."""
    from musicbrain_cli.metrics import wilson_interval

    base, packages = _manifest(manifest)
    where = {str((base / f).resolve()): (pkg["split"], pkg["package"])
             for pkg in packages for f in pkg["files"]}
    summary = json.loads((scan_dir / "summary.json").read_text(encoding="utf-8"))
    verdicts: dict[str, Counter] = defaultdict(Counter)
    packages_v: dict[str, Counter] = defaultdict(Counter)
    lines: dict[str, dict[str, Counter]] = defaultdict(lambda: defaultdict(Counter))
    accused, unknown = [], 0
    results = _results(scan_dir)
    for track in summary["tracks"]:
        key = where.get(str(Path(track["path"]).resolve()))
        if key is None:
            unknown += 1
            continue
        split, package = key
        verdict = track["verdict"] if track["status"] == "ok" else "failed"
        verdicts[split][verdict] += 1
        packages_v[f"{split}/{package}"][verdict] += 1
        if track["status"] != "ok":
            continue
        result = results[str(Path(track["path"]).resolve())]
        for ev in result["evidence"]:
            state = ev["finding"] if ev.get("in_domain", True) else f"{ev['finding']} (out of domain)"
            lines[split][ev["line"]][state] += 1
        if verdict == "ai":
            accused.append({"split": split, "package": package, "file": track["file_name"],
                            "lines": track.get("ai_lines")})
    out = {"splits": {}, "packages": {k: dict(v) for k, v in sorted(packages_v.items())},
           "accused": accused, "tracks_not_in_manifest": unknown}
    total = Counter()
    for split, counts in sorted(verdicts.items()):
        total.update(counts)
        out["splits"][split] = {"verdicts": dict(counts),
                                "lines": {ln: dict(c) for ln, c in lines[split].items()}}
    n = sum(v for k, v in total.items() if k != "failed")
    lo, hi = wilson_interval(total["ai"], n) if n else (None, None)
    out["all"] = {"verdicts": dict(total), "scored": n, "ai_rate_ci95": [lo, hi]}
    return out


def _results(scan_dir: Path) -> dict[str, dict]:
    """Every track folder's result.json, by the input path it records (a folder's name
    carries a hash that differs for twins, so it is not looked up by name)."""
    out = {}
    for path in scan_dir.glob("*/result.json"):
        result = json.loads(path.read_text(encoding="utf-8"))
        out[str(Path(result["input"]["path"]).resolve())] = result
    return out


def _print(out: dict) -> None:
    print("| split | tracks | ai | human | inconclusive | failed |")
    print("|---|---|---|---|---|---|")
    for split, rec in out["splits"].items():
        v = rec["verdicts"]
        print(f"| {split} | {sum(v.values())} | " + " | ".join(str(v.get(k, 0)) for k in VERDICTS)
              + " |")
    v = out["all"]["verdicts"]
    print(f"| all | {sum(v.values())} | " + " | ".join(str(v.get(k, 0)) for k in VERDICTS) + " |")
    lo, hi = out["all"]["ai_rate_ci95"]
    if lo is not None:
        print(f"\n`ai` (false accusations): {v.get('ai', 0)} of {out['all']['scored']} "
              f"(Wilson 95 % {100 * lo:.2f}-{100 * hi:.2f} %)")
    print("\nEach line's finding, all splits:")
    merged: dict[str, Counter] = defaultdict(Counter)
    for rec in out["splits"].values():
        for ln, c in rec["lines"].items():
            merged[ln].update(c)
    for ln in LINES:
        if ln in merged:
            print(f"- {ln}: " + ", ".join(f"{k} {n}" for k, n in merged[ln].most_common()))
    for a in out["accused"]:
        print(f"ACCUSED: {a['split']}/{a['package']}: {a['file']} by {a['lines']}")
    if out["tracks_not_in_manifest"]:
        print(f"({out['tracks_not_in_manifest']} scanned tracks are not in the manifest; ignored)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("list", "tally"))
    ap.add_argument("--manifest", type=Path, default=ROOT / "data" / "human_debian" / "manifest.json")
    ap.add_argument("--splits", default="test,test-fresh,test-final,test-latest")
    ap.add_argument("--scan", type=Path, help="tally: the scan's output folder")
    ap.add_argument("-o", "--out", type=Path, help="list: the file of paths to write")
    ap.add_argument("--json", type=Path, help="tally: also write the figures as JSON")
    args = ap.parse_args(argv)
    if args.command == "list":
        if args.out is None:
            ap.error("list needs -o FILE")
        files = list_files(args.manifest, [s.strip() for s in args.splits.split(",")])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("".join(f"{f}\n" for f in files), encoding="utf-8")
        sys.stderr.write(f"{len(files)} recordings listed in {args.out}\n")
        return 0
    if args.scan is None:
        ap.error("tally needs --scan DIR")
    out = tally(args.manifest, args.scan)
    _print(out)
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
