r"""Make the artifact line's corpus, read its features, fit and ship the line.

Steps (each resumable; outputs under the gitignored ``data/artifact_corpus/``)::

    python scripts/fetch_human_recordings.py                 # Debian recordings + data card
    python scripts/fit_artifact_line.py corpus               # human clips, decoded copies, uploads
    python scripts/fit_artifact_line.py features             # features read back from every file
    python scripts/fit_artifact_line.py audit                # held-out production audit (test-2026-12)
    python scripts/fit_artifact_line.py features --out data/artifact_audit
    python scripts/fit_artifact_line.py fit                  # -> musicbrain_cli/artifacts/default/
    python scripts/fit_artifact_line.py score --out DIR --model-dir M   # a line's rates on DIR, per split
    python scripts/fit_artifact_line.py compare --models A B --audit X --audit Y  # lines side by side
    python scripts/fetch_real_vocoder.py                     # a real, fully trained vocoder's weights
    python scripts/fit_artifact_line.py vocoder --out data/artifact_vocoder   # held-out clips through it
    python scripts/fit_artifact_line.py features --out data/artifact_vocoder
    python scripts/fit_artifact_line.py compare --out data/artifact_vocoder   # the shipped line on them
    python scripts/fit_artifact_line.py vocoder --vocoder lpcnet --out data/artifact_lpcnet   # another family

Or, for the shipped line, only what its human side covers (sample rates, bandwidth; see
``artifacts.fit.human_coverage``), written into its model.json and card.json::

    python scripts/fit_artifact_line.py corpus --out data/artifact_human_dev --splits train validation --human-only
    python scripts/fit_artifact_line.py features --out data/artifact_human_dev
    python scripts/fit_artifact_line.py corpus --out data/artifact_human_test --human-only \
        --splits test test-fresh test-final test-latest
    python scripts/fit_artifact_line.py features --out data/artifact_human_test
    python scripts/fit_artifact_line.py coverage --out data/artifact_human_dev \
        --held-out data/artifact_human_test/features.json

Seed 22 throughout. ``fit`` writes ``model.json`` and ``card.json`` and prints their
SHA-256, to be pinned in ``musicbrain_cli/artifacts/detector.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _audits(folders: list[Path]) -> list[list[dict]]:
    """The feature rows of each audit folder that has them (``features.json``)."""
    return [json.loads((a / "features.json").read_text()) for a in folders if (a / "features.json").is_file()]


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=("corpus", "audit", "features", "fit", "score", "coverage", "compare",
                                           "vocoder"))
    ap.add_argument("--out", type=Path, default=ROOT / "data" / "artifact_corpus")
    ap.add_argument("--debian", type=Path, default=ROOT / "data" / "human_debian")
    ap.add_argument("--midis", type=Path, default=Path("/work/shared/data/musicnet/musicnet_midis"))
    ap.add_argument("--model-dir", type=Path, default=ROOT / "musicbrain_cli" / "artifacts" / "default")
    ap.add_argument("--models", type=Path, nargs="+", default=None, metavar="MODEL_DIR",
                    help="compare: the fitted lines to compare on --out's rows and the --audit folders")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=22)
    ap.add_argument("--splits", nargs="+", default=None,
                    help="corpus: build only these splits; features: read only these splits' files "
                         "and replace their rows in features.json")
    ap.add_argument("--held-out", nargs="*", default=[], metavar="FEATURES_JSON",
                    help="coverage: features.json of human test-package uploads, to record what "
                         "the coverage withholds from them")
    ap.add_argument("--coverage-note", default="",
                    help="coverage: what else to say of the rows it was measured on")
    ap.add_argument("--audit", type=Path, action="append", default=None,
                    help="audit: where the held-out production audit is written; fit: its folder, "
                         "whose features.json is measured into the card when present (repeat for "
                         "several audits; default data/artifact_audit)")
    ap.add_argument("--audit-split", default="test-2026-12", help="audit: the human split it draws from")
    ap.add_argument("--record", metavar="SPLIT=NAME",
                    help="score: write SPLIT's false-accusation rate into --model-dir's card as "
                         "summary.false_accusations_human_NAME, marked as measured after shipping")
    ap.add_argument("--record-decoder", metavar="NAME",
                    help="score: write what the line makes of --out's decoded rows (a real decoder's "
                         "output, see the vocoder step) into --model-dir's card as "
                         "summary.real_decoder_NAME, marked as measured after shipping")
    ap.add_argument("--decoder", default="", help="score --record-decoder: the decoder in a few words, for reports")
    ap.add_argument("--note", default="", help="score --record/--record-decoder: what it was measured on")
    ap.add_argument("--weights", type=Path, default=ROOT / "data" / "vocoders" / "hifigan-v1-universal.safetensors",
                    help="vocoder: the real vocoder's weights (scripts/fetch_real_vocoder.py)")
    ap.add_argument("--clips", type=int, default=30, help="vocoder: how many held-out human clips")
    ap.add_argument("--vocoder", default="hifigan-v1", choices=("hifigan-v1", "lpcnet"),
                    help="vocoder: the real decoder (lpcnet: FreeDV 2020's, from Debian's libcodec2-1.0)")
    ap.add_argument("--reference", metavar="CORPUS[:SPLIT]",
                    help="vocoder: draw the human clips from a reference corpus's split (default test) "
                         "instead of the Debian recordings")
    ap.add_argument("--uploads", nargs="+", metavar="UPLOAD",
                    help="vocoder: the uploads each re-synthesis is written as (default flac, rs44100_flac, "
                         "mp3_128, aac_128; any of artifacts.corpus.UPLOADS, e.g. opus_64)")
    ap.add_argument("--human-only", action="store_true",
                    help="corpus: the human clips and uploads only, no decoders (same draws)")
    args = ap.parse_args(argv)
    args.audit = args.audit or [ROOT / "data" / "artifact_audit"]
    t0 = time.time()
    log = lambda msg: print(f"[{time.time() - t0:7.1f}s] {msg}", flush=True)  # noqa: E731
    if args.step == "corpus":
        from musicbrain_cli.artifacts.corpus import build_corpus

        from musicbrain_cli.artifacts.corpus import SPLITS

        items = build_corpus(args.out, debian_root=args.debian, midi_root=args.midis, seed=args.seed,
                             splits=tuple(args.splits or SPLITS), decoders=not args.human_only, log=log)
        log(f"{len(items)} items")
    elif args.step == "audit":
        from musicbrain_cli.artifacts.corpus import build_audit

        items = build_audit(args.audit[0], debian_root=args.debian, split=args.audit_split, seed=args.seed,
                            log=log)
        log(f"{len(items)} audit items in {args.audit[0]}")
    elif args.step == "vocoder":  # held-out human clips through a real, fully trained vocoder
        from musicbrain_cli.artifacts.corpus import build_vocoded

        from musicbrain_cli.artifacts.corpus import VOCODED_TRANSFORMS

        reference = None
        if args.reference:
            corpus, _, split = args.reference.partition(":")
            reference = (Path(corpus), split or "test")
        items = build_vocoded(args.out, debian_root=args.debian, weights=args.weights, decoder=args.vocoder,
                              clips=args.clips, seed=args.seed, reference=reference,
                              transforms=tuple(args.uploads or VOCODED_TRANSFORMS), log=log)
        log(f"{len(items)} items in {args.out}")
    elif args.step == "score":  # the line in --model-dir on --out's features: rates per split
        from collections import defaultdict

        from musicbrain_cli.artifacts.fit import evaluate

        model = json.loads((args.model_dir / "model.json").read_text())
        by_split = defaultdict(list)
        rows = json.loads((args.out / "features.json").read_text())
        for r in rows:
            by_split[r["split"]].append(r)
        report = {split: evaluate(model, split_rows) for split, split_rows in sorted(by_split.items())}
        print(json.dumps(report, indent=1))
        if args.record:  # SPLIT=NAME: that split's rate into the card, as measured after shipping
            from musicbrain_cli.artifacts.fit import record_after_shipping

            split, name = args.record.split("=", 1)
            log(json.dumps(record_after_shipping(args.model_dir, name, report[split]["false_accusations"],
                                                 measured_on=args.note), indent=1))
        if args.record_decoder:
            from musicbrain_cli.artifacts.fit import record_real_decoder

            log(json.dumps(record_real_decoder(args.model_dir, args.record_decoder, rows,
                                               measured_on=args.note, decoder=args.decoder), indent=1))
    elif args.step == "compare":  # fitted lines side by side on the same rows and audits
        from musicbrain_cli.artifacts.fit import compare

        rows = json.loads((args.out / "features.json").read_text())
        audits = _audits(args.audit)
        models = {str(m): json.loads((m / "model.json").read_text())
                  for m in (args.models or [args.model_dir])}
        result = compare(models, rows, audits)
        print(json.dumps(result, indent=1))
        cell = lambda r: f"{r['k']}/{r['n']}"  # noqa: E731
        for name, res in result.items():
            print(f"\n{name}: operating point {res['threshold']:.5f}, doubt {res['doubt_threshold']:.4f}")
            print("| split | human at op | human at doubt | decoded at op | decoded at doubt | ROC-AUC |")
            print("|---|---|---|---|---|---|")
            for split, r in sorted(res["splits"].items()):
                dec = ([cell(r["decoded_at_operating_point"]), cell(r["decoded_at_doubt"]),
                        f"{r['roc_auc']:.3f}" if r.get("roc_auc") is not None else "-"]
                       if "decoded_at_operating_point" in r else ["-", "-", "-"])
                print(f"| {split} | {cell(r['human_at_operating_point'])} | {cell(r['human_at_doubt'])} | "
                      + " | ".join(dec) + " |")
    elif args.step == "features":
        from musicbrain_cli.artifacts.corpus import extract_features

        items, seen = [], set()
        for item in json.loads((args.out / "items.json").read_text()):
            if args.splits and item["split"] not in args.splits:
                continue
            if item["path"] not in seen:  # one file, one row (corpora built before 0c440f2 reused files)
                seen.add(item["path"])
                items.append(item)
        rows = extract_features(items, workers=args.workers)
        path = args.out / "features.json"
        if args.splits and path.is_file():  # replace these splits' rows, keep the others'
            rows = [r for r in json.loads(path.read_text()) if r["split"] not in args.splits] + rows
        path.write_text(json.dumps(rows))
        log(f"features of {len(items)} items ({len(rows)} rows in {path})")
    elif args.step == "coverage":
        from musicbrain_cli.artifacts.fit import add_human_coverage

        rows = json.loads((args.out / "features.json").read_text())
        from musicbrain_cli.artifacts.fit import COVERAGE_MEASURED_ON

        measured_on = COVERAGE_MEASURED_ON + (
            f"; {args.coverage_note}" if args.coverage_note else "")
        held = [r for path in args.held_out for r in json.loads(Path(path).read_text())
                if r["split"].startswith("test")]
        log(json.dumps(add_human_coverage(rows, args.model_dir, measured_on=measured_on,
                                          held_out=held), indent=1))
    else:
        from musicbrain_cli.artifacts.fit import fit_and_ship

        rows = json.loads((args.out / "features.json").read_text())
        training = {}
        for path in sorted(args.out.glob("*/decoders.json")):  # codec-like decoders' loss records
            training.update({f"{path.parent.name}/{k}": v for k, v in json.loads(path.read_text()).items()})
        audits = _audits(args.audit)
        hashes = fit_and_ship(rows, args.model_dir, seed=args.seed, data_card="docs/human-recordings.md",
                              command="python scripts/fit_artifact_line.py corpus|audit|features|fit (seed %d)"
                                      % args.seed,
                              decoder_training=training, audits=audits)
        log(json.dumps(hashes, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
