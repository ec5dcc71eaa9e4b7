"""Copy a finalized, robustness-measured run's model into the package as the default model.

    python scripts/ship_default_model.py MODEL_DIR

The run's model card already holds the measured figures (``musicbrain train`` finalizes it;
``musicbrain evaluate --robustness --update-card`` adds the robustness table). This script
adds what only the maintainer knows: how the run was made (the README's reproduction
commands) and the limitations in words, written from the card's own figures so the text
cannot drift from them. It then pins the weights' SHA-256 in ``model/checkpoint.py``.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

FILES = ("model.safetensors", "config.json", "model_card.json", "ood.safetensors")
PACKAGE = Path("musicbrain_cli/model/default")
CHECKPOINT_PY = Path("musicbrain_cli/model/checkpoint.py")

BUILD = "musicbrain data build-reference -o ref --size full --seed 0"
TRAIN = ("musicbrain train --data ref --config musicbrain_cli/training/configs/reference-cpu.yaml "
         "--device cpu -o run && musicbrain train --data ref --config "
         "musicbrain_cli/training/configs/reference-cpu-pitch.yaml --init-from run/model "
         "--device cpu -o run-pitch && musicbrain refit-heads --data ref --model run-pitch/model "
         "--style-bands 8 -o run-heads && musicbrain train --data ref --config "
         "musicbrain_cli/training/configs/reference-cpu-bands.yaml --init-from run-heads "
         "--device cpu -o run-bands && musicbrain refit-heads --data ref --model run-bands/model "
         "-o run-bands-heads")
DESCRIPTION = (
    "8,329 clips of 12 s, 27.76 h: 5,286 human (4,406 renderings of music21 corpus scores, "
    "880 popular-idiom arrangements in eight genres) and 3,043 AI (2 x 850 pieces from two "
    "conditioned transformer generators, 1,343 neural-codec re-syntheses); FluidR3 GM and "
    "TimGM6mb for train/val/test, MuseScore General Lite only in test_xsf.")


def limitations(card: dict) -> str:
    e = card["evaluation"]
    rows = card.get("robustness") or []
    if not rows:
        raise SystemExit("the card has no robustness table: run `musicbrain evaluate "
                         "--robustness --update-card` on the run's model first")
    worst = min(rows, key=lambda r: r["roc_auc"])
    accused = max(r["ai_verdicts_on_human"] for r in rows)
    return (
        "Trained on a 2-core CPU on the full reference corpus (8 epochs, then 5 epochs of "
        "fine-tuning with pitch-shift augmentation, the style heads re-fitted on the frozen "
        "network's map pooled over 8 frequency bands, then 9 more epochs of the whole network "
        "with those heads and the heads re-fitted again): a small model (clip ROC-AUC "
        f"{e['test']['roc_auc']:.3f} on test, {e['test_xsf']['roc_auc']:.3f} with an unseen "
        f"SoundFont; style mAP {e['test']['style_map_macro']:.2f}). Under the robustness "
        f"suite its lowest ROC-AUC is {worst['roc_auc']:.2f} ({worst['transform']}); the "
        f"largest share of human clips called AI under any transformation is {accused:.1%}. "
        "Trained only on classical and folk scores and eight popular idioms rendered with "
        "General MIDI SoundFonts, and on this project's own generators; recordings of real "
        "performances, other genres, other generators (Suno, Udio, NotaGen) and heavy "
        "processing are outside its domain and should be judged inconclusive. See evaluation "
        "and robustness for the measured figures.")


#: The README's name for the model the last training stage starts from. The run records the
#: path it was given on the machine that trained it; the weights are identified by the
#: card's ``training.init_from_weights_sha256``, so the shipped files name the README's
#: path instead of a machine-local one.
INIT_FROM_MODEL = "run-heads"


def _recorded_init_from(training_config: dict) -> None:
    if training_config.get("train", {}).get("init_from"):
        training_config["train"]["init_from"] = INIT_FROM_MODEL


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    run = Path(sys.argv[1])
    from musicbrain_cli.files import json_text, sha256_file
    from musicbrain_cli.model.card import validate_card, write_card

    card = json.loads((run / "model_card.json").read_text())
    card["name"] = "musicbrain-default"
    card["training_data"].update(path="reference corpus, full size, seed 0", build=BUILD,
                                 train=TRAIN, description=DESCRIPTION)
    card["limitations"] = limitations(card)
    _recorded_init_from(card["training"]["config"])
    card["intended_use"] = ("Screening music for AI generation and attributing style, as one "
                            "input to an expert's judgement; never as sole evidence of how a "
                            "work was made.")
    validate_card(card)
    for name in FILES:
        shutil.copy2(run / name, PACKAGE / name)
        (PACKAGE / name).chmod(0o644)
    config = json.loads((PACKAGE / "config.json").read_text())
    _recorded_init_from(config["extra"]["training"])
    (PACKAGE / "config.json").write_text(json_text(config))
    write_card(PACKAGE, card)
    digest = sha256_file(PACKAGE / "model.safetensors")
    text = CHECKPOINT_PY.read_text()
    pinned, count = re.subn(r'"default": "[0-9a-f]{64}"', f'"default": "{digest}"', text)
    if count != 1:
        raise SystemExit(f"could not find the default model's pin in {CHECKPOINT_PY}")
    CHECKPOINT_PY.write_text(pinned)
    print(f"shipped {digest}")


if __name__ == "__main__":
    main()
