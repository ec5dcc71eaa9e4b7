"""The real-vocoder module: HiFi-GAN V1's generator, its weight-norm folding and its front end.

The real weights cannot be in the tests (55 MB, fetched by ``scripts/fetch_real_vocoder.py``);
these tests check the architecture and loading against tensors made here, and the physics on a
random-initialised generator: its transposed convolutions leave the comb at rate / hop.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from artifact_signals import piano_melody
from musicbrain_cli.artifacts import vocoder
from musicbrain_cli.artifacts.detector import analyse_samples
from musicbrain_cli.errors import ConfigError, ModelLoadError

SMALL = vocoder.HiFiGANConfig(channels=32)


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")   # the old form is the checkpoint's
def test_weight_norm_folds_into_the_weight_torch_computes():
    torch.manual_seed(0)
    convs = {"a": torch.nn.utils.weight_norm(torch.nn.Conv1d(5, 7, 3)),
             "b": torch.nn.utils.weight_norm(torch.nn.ConvTranspose1d(6, 4, 16, stride=8))}
    state = {f"{k}.{n}": p.detach().clone() for k, m in convs.items() for n, p in m.state_dict().items()}
    assert {"a.weight_g", "a.weight_v", "b.weight_g", "b.weight_v", "a.bias"} <= set(state)
    folded = vocoder.fold_weight_norm(state)
    for k, m in convs.items():
        m(torch.zeros(1, m.in_channels, 20))                       # weight_norm sets .weight on a call
        assert torch.allclose(folded[f"{k}.weight"], m.weight.detach(), atol=1e-6)
        assert f"{k}.weight_g" not in folded and f"{k}.weight_v" not in folded
    with pytest.raises(ModelLoadError):
        vocoder.fold_weight_norm({"a.weight_v": state["a.weight_v"]})
    with pytest.raises(ModelLoadError):
        vocoder.fold_weight_norm({"a.weight_g": state["a.weight_g"]})


def test_the_generator_makes_hop_samples_per_frame_and_loads_only_its_own_tensors(tmp_path):
    torch.manual_seed(1)
    model = vocoder.HiFiGAN(SMALL).eval()
    with torch.inference_mode():
        out = model(torch.randn(1, 80, 12))
    assert out.shape == (1, 1, 12 * 256) and float(out.abs().max()) <= 1.0
    path = tmp_path / "v.safetensors"
    save_file(model.state_dict(), str(path))
    again = vocoder.load(path, SMALL)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))
    with pytest.raises(ModelLoadError, match="does not hold HiFi-GAN V1"):
        vocoder.load(path)                                          # the full-size architecture
    with pytest.raises(ModelLoadError, match="no vocoder weights"):
        vocoder.load(tmp_path / "missing.safetensors")
    with pytest.raises(ConfigError):
        vocoder.HiFiGANConfig(upsample_rates=(8, 8, 2))


def test_the_front_end_is_the_checkpoints():
    y = piano_melody(22050, 3.0, seed=2)[: 256 * 200]
    mel = vocoder.log_mel(y)
    assert mel.shape == (1, 80, 200)                                 # one frame per hop
    assert float(mel.min()) >= np.log(1e-5) - 1e-6                  # clamped at 1e-5
    quiet = vocoder.log_mel(0.1 * y)                                  # magnitude, natural log
    assert torch.allclose(mel - quiet, torch.full_like(mel, np.log(10.0)), atol=0.05)


def test_a_random_generator_leaves_the_comb_of_its_hop_and_resynthesis_keeps_the_level():
    torch.manual_seed(3)
    model = vocoder.HiFiGAN(SMALL).eval()
    y = 0.3 * piano_melody(22050, 12.0, seed=4)
    z = vocoder.resynthesise(model, y)
    assert abs(z.size - y.size) < 256 and float(np.abs(z).max()) == pytest.approx(float(np.abs(y).max()), rel=1e-5)
    a = analyse_samples(z, 22050)
    spacing = 22050 / 256
    assert a.comb.teeth >= 3 and round(a.comb.spacing_hz / spacing) * spacing == pytest.approx(a.comb.spacing_hz, rel=0.01)
    with pytest.raises(ConfigError, match="silent"):
        vocoder.resynthesise(model, np.zeros(4096, dtype=np.float32))


def test_the_vocoded_set_pairs_each_held_out_clip_with_its_resyntheses(tmp_path, monkeypatch):
    from test_artifacts_production import _debian_tree

    from musicbrain_cli.artifacts import corpus
    from musicbrain_cli.artifacts.spectrum import read_native

    _debian_tree(tmp_path / "deb", split="test-fresh", files=2)
    torch.manual_seed(5)
    small = vocoder.HiFiGAN(SMALL).eval()
    monkeypatch.setattr(vocoder, "load", lambda path, config=vocoder.V1: small)
    items = corpus.build_vocoded(tmp_path / "voc", debian_root=tmp_path / "deb", weights=tmp_path / "w",
                                 clips=2, splits=("test-fresh",))
    per_clip = 1 + len(corpus.VOCODED_TRANSFORMS)
    assert len(items) == 2 * per_clip and len({i.path for i in items}) == len(items)
    originals = [i for i in items if i.label == 0]
    assert len(originals) == 2 and all(i.transform == "flac" and i.family == "human" for i in originals)
    decoded = [i for i in items if i.label == 1]
    assert {i.transform for i in decoded} == set(corpus.VOCODED_TRANSFORMS)
    assert all(i.split == "vocoder:hifigan-v1" and i.decoder == "hifigan-v1-universal" for i in decoded)
    rates = {i.transform: read_native(i.path)[1] for i in items if i.label == 1}
    assert rates["flac"] == 22050 and rates["rs44100_flac"] == 44100
    assert read_native(originals[0].path)[1] == 22050               # the same rate as its re-synthesis
    saved = json.loads((tmp_path / "voc" / "items.json").read_text())
    assert [d["id"] for d in saved] == [i.id for i in items]


def test_the_vocoded_set_can_draw_from_a_reference_corpus_and_write_chosen_uploads(tmp_path, monkeypatch):
    """Where the Debian recordings are not on the machine, a reference corpus's human renders
    of one split are the pool (never its AI clips, never another split's), and each
    re-synthesis is written as the uploads asked for, Opus included."""
    import csv

    from musicbrain_cli.artifacts import corpus
    from musicbrain_cli.artifacts.spectrum import read_native
    from musicbrain_cli.audio.encode import encode_audio

    ref = tmp_path / "ref"
    (ref / "audio").mkdir(parents=True)
    rows = [("h1", "human", "test"), ("a1", "ai", "test"), ("h2", "human", "val"), ("h3", "human", "test")]
    with open(ref / "manifest.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["clip_id", "path", "source", "split"])
        for i, (cid, source, split) in enumerate(rows):
            encode_audio(ref / "audio" / f"{cid}.flac", 0.3 * piano_melody(22050, 6.0, seed=10 + i), 22050)
            w.writerow([cid, f"audio/{cid}.flac", source, split])
    torch.manual_seed(5)
    small = vocoder.HiFiGAN(SMALL).eval()
    monkeypatch.setattr(vocoder, "load", lambda path, config=vocoder.V1: small)
    items = corpus.build_vocoded(tmp_path / "voc", debian_root=None, weights=tmp_path / "w", clips=5,
                                 reference=(ref, "test"), transforms=("flac", "opus_64"))
    assert sorted({i.id.split("/")[2] for i in items}) == ["h1", "h3"]
    assert all(i.source == "reference-render" for i in items)
    decoded = {i.transform: i for i in items if i.label == 1 and i.id.split("/")[2] == "h1"}
    assert set(decoded) == {"flac", "opus_64"} and decoded["opus_64"].path.endswith(".opus")
    assert read_native(decoded["opus_64"].path)[1] == 48000                   # Opus decodes at 48 kHz
    with pytest.raises(ValueError, match="unknown uploads"):
        corpus.build_vocoded(tmp_path / "v2", debian_root=None, weights=tmp_path / "w",
                             reference=(ref, "test"), transforms=("opus_7",))
    with pytest.raises(ValueError, match="no human clips"):
        corpus.build_vocoded(tmp_path / "v3", debian_root=None, weights=tmp_path / "w",
                             reference=(ref, "train"))


def test_what_the_line_makes_of_a_real_decoder_is_recorded_in_its_card(tmp_path):
    import shutil

    from artifact_signals import upsampled
    from musicbrain_cli.artifacts import fit
    from musicbrain_cli.artifacts.detector import ArtifactDetector, comb_features
    from musicbrain_cli.errors import TrainingError

    shipped = ArtifactDetector.from_pretrained("default")
    default = Path(fit.__file__).parent / "default"
    line = tmp_path / "line"
    shutil.copytree(default, line)

    def row(y, rate, label=1):
        a = analyse_samples(y, rate)
        return {"label": label, "na": None, "features": [float(v) for v in comb_features(a)],
                "spacing_hz": a.comb.spacing_hz}

    rows = [row(upsampled(24000, (8, 5, 4, 2), 12.0, seed=7), 24000),       # a clean toy decoder
            row(piano_melody(22050, 12.0, seed=1), 22050),                  # no comb at all
            {"label": 1, "na": "shorter than 5 s", "features": None, "spacing_hz": None},
            row(piano_melody(22050, 12.0, seed=2), 22050, label=0)]         # not counted
    p = [shipped.p_ai(np.array(r["features"])) for r in rows[:2]]
    assert p[0] >= shipped.threshold and p[1] < shipped.doubt_threshold   # the cases this test needs
    with pytest.raises(TrainingError):
        fit.record_real_decoder(line, "toy", rows, measured_on="", decoder="toys")
    with pytest.raises(TrainingError):
        fit.record_real_decoder(line, "toy", rows, measured_on="three toy rows", decoder="")
    out = fit.record_real_decoder(line, "toy", rows, measured_on="three toy rows", decoder="toys")
    e = out["entry"]
    assert (e["operating_point"]["k"], e["doubt_threshold"]["k"], e["not_applicable"]["k"]) == (1, 1, 1)
    assert e["operating_point"]["n"] == 3 and e["measured_after_shipping"] is True
    card = json.loads((line / "card.json").read_text())
    assert card["summary"]["real_decoder_toy"] == e
    assert out["card.json"] != fit._sha(default / "card.json")


def test_lpcnet_resynthesises_frame_by_frame_and_leaves_no_comb():
    """LPCNet (FreeDV 2020, Debian's libcodec2-1.0, installed by scripts/install-system-deps.sh)
    synthesises sample by sample with no upsampling layer: no comb for the line to find."""
    codec = vocoder.LPCNetCodec()
    y = 0.3 * piano_melody(vocoder.LPCNET_RATE, 6.0, seed=6)
    z = codec.resynthesise(y)
    assert z.size == y.size // 160 * 160                             # whole 10 ms frames
    assert float(np.abs(z).max()) == pytest.approx(float(np.abs(y).max()), rel=1e-5)
    assert np.corrcoef(np.abs(np.fft.rfft(y[:z.size]))[:2000], np.abs(np.fft.rfft(z))[:2000])[0, 1] > 0.3
    # LPCNet samples its excitation with the C library's rand() and its output differs from
    # call to call (only a process's first call is the same each run): in about half of them
    # chance lines a comb's minimum of three teeth up somewhere (of 40 draws: three teeth every
    # time, never four). A decoder's comb has far more: 13 for the trained HiFi-GAN, 125 for a
    # random-initialised one (above).
    a = analyse_samples(z, vocoder.LPCNET_RATE)
    assert a.comb.teeth < 5
    with pytest.raises(ModelLoadError):
        vocoder.LPCNetCodec(library="/nonexistent/libcodec2.so")
