"""benchmarks/external.py on a tiny eval-like folder made here (layout of ../shared/eval)."""

import json

import numpy as np
import pytest
import soundfile

from conftest import SR, make_tone, script_module



@pytest.fixture(scope="module")
def ext():
    with script_module("benchmarks/external.py", "external_bench") as module:
        yield module


GOOD_ABC = """%%score 1 2
L:1/8
Q:1/4=120
M:4/4
K:C
V:1 treble nm="Piano"
V:2 bass nm="Piano"
[V:1]c2 e2 g2 c'2|[V:2]C,4 G,,4|
[V:1]d2 f2 a2 d'2|[V:2]D,4 A,,4|
[V:1]e2 g2 b2 e'2|[V:2]E,4 B,,4|
"""


@pytest.fixture
def eval_dir(tmp_path):
    root = tmp_path / "eval"
    enc = root / "codec" / "encodec"
    snac = root / "codec" / "snac"
    t2m = root / "t2m" / "mustango"
    abc = root / "notagen-abc" / "rhythgen" / "RAG-RMR"
    for d in (enc, snac, t2m, abc):
        d.mkdir(parents=True)
    original = make_tone(5.0, 220.0, seed=1)
    # the same original copied into two codec folders, as in the real eval set
    soundfile.write(enc / "song__original.wav", original, SR, subtype="PCM_16")
    soundfile.write(snac / "song__original.wav", original, SR, subtype="PCM_16")
    soundfile.write(enc / "song__encodec.wav", make_tone(5.0, 230.0, seed=2), SR)
    soundfile.write(snac / "song__snac-32khz.wav", make_tone(5.0, 240.0, seed=3), SR)
    soundfile.write(t2m / "mustango-pretrained__output_0.wav", make_tone(4.5, 330.0, seed=4),
                    SR)
    (enc / "pairs.csv").write_text("original,resynthesis\n", encoding="utf-8")
    (abc / "0000.abc").write_text(GOOD_ABC, encoding="utf-8")
    (abc / "0001.abc").write_text("X:1\nL:1/8\nabc|\n", encoding="utf-8")   # no K: field
    (abc / "0002.abc").write_text(GOOD_ABC.replace("c2 e2", "e2 c2"), encoding="utf-8")
    return root


def test_discovery_labels_and_sources(ext, eval_dir):
    sel = ext.discover_eval(eval_dir)
    got = {it.rel: (it.source, it.label, it.kind) for it in sel.items}
    assert got["codec/encodec/song__original.wav"] == ("codec/encodec", "human", "audio")
    assert got["codec/encodec/song__encodec.wav"] == ("codec/encodec", "ai", "audio")
    assert got["t2m/mustango/mustango-pretrained__output_0.wav"] == ("t2m/mustango", "ai",
                                                                      "audio")
    assert got["notagen-abc/rhythgen/RAG-RMR/0001.abc"] == ("notagen-abc/RAG-RMR", "ai", "abc")
    assert not any(rel.endswith(".csv") for rel in got)
    assert sel.found["notagen-abc/RAG-RMR"] == 3
    capped = ext.discover_eval(eval_dir, max_per_source=2)
    assert capped.found == sel.found
    assert sum(it.source == "notagen-abc/RAG-RMR" for it in capped.items) == 2
    assert ext.abc_instrumentation("notagen-abc/Lieder-LB") == "Art Song"
    assert ext.abc_instrumentation("notagen-abc/RAG-RMR") == "Keyboard"


def test_end_to_end_counts_table_and_json(ext, eval_dir, tmp_path, tiny_model_dir, capsys):
    out = tmp_path / "out"
    record = tmp_path / "real_ai_measured.json"
    ext.main([str(eval_dir), "--model", str(tiny_model_dir), "-o", str(out),
              "--abc-seconds", "4", "--record", str(record)])
    data = json.loads((out / "external.json").read_text(encoding="utf-8"))
    # the record a human verdict quotes: counts over the real AI sets, with every line's
    # weights and the version, and it applies to exactly those (session 28)
    from musicbrain_cli import __version__
    from musicbrain_cli.verdict import real_ai_measurement

    rec = json.loads(record.read_text(encoding="utf-8"))
    assert rec["version"] == __version__ and "--record" in rec["command"]
    assert rec["models"]["content"] == data["model"]["weights_sha256"]
    assert set(rec["models"]) >= {"content", "artifacts", "symbolic"}
    sets = {s["set"].split(" ")[0]: s for s in rec["sets"]}
    assert (sets["rendered"]["tracks"], sets["rendered"]["failed"]) == (2, 1)
    assert sets["text-to-music"]["tracks"] == 1 and sets["neural-codec"]["tracks"] == 2
    for s in rec["sets"]:
        assert s["ai"] + s["human"] + s["inconclusive"] == s["tracks"]
    rendered = [r for r in data["rows"] if r["kind"] == "abc" and r["error"] is None]
    assert sets["rendered"]["human"] == sum(r["verdict"] == "human" for r in rendered)
    assert real_ai_measurement(rec["models"], __version__, path=record)["applies"]
    other = {**rec["models"], "artifacts": "0" * 64}
    assert real_ai_measurement(other, __version__, path=record) == {
        "applies": False, "why": "measured with other artifacts weights",
        "measured": rec["measured"]}
    # the card too: the same weights finalized again (another threshold or band) give
    # other verdicts, so a record of one card does not apply to another (session 46)
    assert rec["models"]["content_card"] == data["model"]["card_sha256"]
    assert rec["models"].get("content_ood") == data["model"].get("ood_sha256")  # (tiny: none)
    recarded = {**rec["models"], "content_card": "1" * 64}
    assert real_ai_measurement(recarded, __version__, path=record)["why"] == \
        "measured with other content_card weights"
    assert not real_ai_measurement(rec["models"], "0.0.1", path=record)["applies"]
    assert not real_ai_measurement(rec["models"], __version__, path=tmp_path / "none")["applies"]
    rows = {r["path"]: r for r in data["rows"]}
    assert len(rows) == 8
    # the ABC without a key is counted and listed as failed, never dropped
    bad = rows["notagen-abc/rhythgen/RAG-RMR/0001.abc"]
    assert bad["error"] and "K:" in bad["error"] and bad["verdict"] is None
    assert data["failures"] == [{"path": bad["path"], "error": bad["error"]}]
    ok = [r for r in rows.values() if r["error"] is None]
    assert len(ok) == 7
    for r in ok:
        assert r["verdict"] in ("ai", "human", "inconclusive")
        assert 0.0 <= r["p_ai"]["content"] <= 1.0
    # the good pieces were rendered into the work folder with the project's renderer
    assert len(list((out / "work").rglob("*-000.flac"))) == 2
    table = {(t["source"], t["label"]): t for t in data["table"]}
    abc = table[("notagen-abc/RAG-RMR", "ai")]
    assert (abc["tracks"], abc["failed"]) == (3, 1)
    assert abc["ai"] + abc["human"] + abc["inconclusive"] == 2
    assert table[("codec/encodec", "human")]["tracks"] == 1
    # one original copied into two folders counts once in the target rows
    originals = data["targets"]["originals called ai"]
    assert originals["of"] == 1
    assert data["targets"]["codec re-syntheses called ai"]["of"] == 2
    t2m = data["targets"]
    assert t2m["t2m called ai"]["of"] == 1
    assert data["model"]["weights_sha256"]
    md = (out / "external.md").read_text(encoding="utf-8")
    assert "| notagen-abc/RAG-RMR | ai | 3 |" in md
    assert "P(AI) content q25 / q50 / q75" in md
    assert "0001.abc" in md
    assert "| notagen-abc/RAG-RMR | ai | 3 |" in capsys.readouterr().out


def test_a_piece_over_the_time_limit_is_a_listed_failure(ext, eval_dir, tmp_path):
    items = [it for it in ext.discover_eval(eval_dir).items if it.kind == "abc"][:1]
    ext.render_all(items, tmp_path / "work", clip_s=4.0, seed=0, timeout_s=0.0,
                   log=lambda msg: None)
    assert items[0].audio is None and "longer than 0 s" in items[0].error


def test_evidence_lines_read_when_present_and_quartiles_per_line(ext):
    track = {"verdict": {"label": "ai", "p_ai": 0.9},
             "evidence": [{"line": "content", "finding": "ai", "in_domain": True, "p_ai": 0.9},
                          {"line": "artifacts", "finding": "human", "in_domain": True,
                           "p_ai": 0.2},
                          {"line": "provenance", "finding": "no_evidence", "in_domain": False,
                           "p_ai": None}]}
    lines = ext.evidence_lines(track)
    assert [e["line"] for e in lines] == ["content", "artifacts", "provenance"]
    assert [(e["applicable"], e["says_ai"]) for e in lines] == [(True, True), (True, False),
                                                               (False, False)]
    assert ext.evidence_lines({"verdict": {"label": "human", "p_ai": 0.1}}) == [
        {"line": "content", "applicable": True, "p_ai": 0.1, "says_ai": False}]

    rng = np.random.default_rng(0)
    rows = []
    for i in range(8):
        p = {"content": float(rng.uniform()), "artifacts": float(rng.uniform())}
        rows.append({"path": f"t/{i}.wav", "source": "t2m/x", "label": "ai", "kind": "audio",
                     "verdict": "ai" if p["content"] > 0.5 else "human", "p_ai": p,
                     "says_ai": {}, "in_domain": True, "sha256": str(i), "error": None})
    summary = ext.summarise(rows)
    assert summary["lines"] == ["content", "artifacts"]
    row = summary["table"][0]
    want = np.percentile([r["p_ai"]["artifacts"] for r in rows], [25, 50, 75])
    assert row["p_ai_quartiles"]["artifacts"] == " / ".join(f"{x:.2f}" for x in want)
    assert row["ai"] == sum(r["verdict"] == "ai" for r in rows)
    md = ext.markdown(summary)
    assert "P(AI) artifacts q25 / q50 / q75" in md and "P(AI) content q25" in md


def test_a_folder_not_laid_out_as_the_eval_readme_is_refused(ext, eval_dir, tmp_path, capsys):
    """Review: a folder above or below the evaluation folder (``shared/eval/codec``), or an
    empty one, was measured as found: nothing at all, or sources named ``dac`` that no target
    row and no real AI set counts, so the record dropped those sets; exit 0."""
    import shutil

    from musicbrain_cli.errors import InputError

    empty = tmp_path / "empty"
    empty.mkdir()
    for root, missing in ((empty, ["codec/", "t2m/", "notagen-abc/rhythgen/"]),
                          (eval_dir / "codec", ["codec/", "t2m/", "notagen-abc/rhythgen/"]),
                          (eval_dir.parent, ["codec/", "t2m/", "notagen-abc/rhythgen/"])):
        with pytest.raises(InputError, match="not laid out as its README describes") as err:
            ext.discover_eval(root)
        for folder in missing:
            assert f"under {folder}" in str(err.value)
    shutil.rmtree(eval_dir / "t2m")
    with pytest.raises(InputError) as err:
        ext.discover_eval(eval_dir)
    assert "no audio files under t2m/)" in str(err.value) and "codec/;" not in str(err.value)
    with pytest.raises(InputError, match="max-per-source 0"):
        ext.discover_eval(eval_dir, max_per_source=0)
    # the script says so and exits 2 (a usage error), before writing anything
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as stop:
        ext.main([str(eval_dir), "-o", str(out)])
    assert stop.value.code == 2 and not out.exists()
    assert "no audio files under t2m/" in capsys.readouterr().err


def test_a_piece_whose_worker_sent_its_result_and_exited_is_not_a_failure(ext, eval_dir,
                                                                          tmp_path,
                                                                          monkeypatch):
    """Review: render_all polled the pipe, then asked whether the worker was alive; a worker
    that sent its clip and exited between the two was counted as failed ('exited with code
    0'), its rendered piece dropped from the measured tracks. The worker here sends and
    exits right after the parent's first poll."""
    import multiprocessing

    events = {"sent": False}

    class Recv:
        def poll(self):
            was = events["sent"]
            events["sent"] = True          # the child sends and exits just after this poll
            return was

        def recv(self):
            return str(tmp_path / "clip.flac"), None

        def close(self):
            pass

    class Send:
        def close(self):
            pass

    class Proc:
        exitcode = 0

        def __init__(self, *args, **kwargs):
            pass

        def start(self):
            pass

        def is_alive(self):
            return not events["sent"]

        def join(self):
            pass

        def kill(self):
            pass

    class Ctx:
        Process = Proc

        @staticmethod
        def Pipe(duplex=True):
            return Recv(), Send()

    monkeypatch.setattr(multiprocessing, "get_context", lambda method=None: Ctx())
    items = [it for it in ext.discover_eval(eval_dir).items if it.kind == "abc"][:1]
    ext.render_all(items, tmp_path / "work", clip_s=4.0, seed=0, log=lambda msg: None)
    assert items[0].error is None and items[0].audio == tmp_path / "clip.flac"


def test_a_rerun_with_other_render_settings_renders_again(ext, tmp_path):
    """Review: the rendered clips were kept by piece only, so a rerun into the same output
    folder with another --abc-seconds (or --seed) analysed the clips of the earlier run
    while its external.json said they were cut to the new length."""
    abc = tmp_path / "0000.abc"
    body = GOOD_ABC.splitlines()[8:]
    abc.write_text(GOOD_ABC + "\n".join(body * 8) + "\n", encoding="utf-8")
    rel, source = "notagen-abc/rhythgen/RAG-RMR/0000.abc", "notagen-abc/RAG-RMR"
    got = {}
    for clip_s in (4.0, 2.0, 4.0):
        path, error = ext.render_abc(str(abc), rel, source, str(tmp_path / "work"),
                                     clip_s=clip_s, seed=0)
        assert error is None
        got.setdefault(clip_s, set()).add(path)
        assert soundfile.info(path).duration == pytest.approx(clip_s)
    assert len(got[4.0]) == 1 and got[2.0] != got[4.0]    # the same settings resume
    again, _ = ext.render_abc(str(abc), rel, source, str(tmp_path / "work"), clip_s=4.0, seed=1)
    assert again not in got[4.0]
