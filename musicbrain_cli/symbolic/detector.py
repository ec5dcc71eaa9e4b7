"""The fitted symbolic line: windows -> notes -> features -> calibrated P(AI) -> finding.

A track's windows (the content model's 10-s windows at 22,050 Hz, up to
:data:`MAX_WINDOWS` spread over the track) are transcribed by basic-pitch; each window with
at least :data:`~musicbrain_cli.symbolic.features.MIN_NOTES` notes gives one feature vector
and, for a model with a roll network (:mod:`musicbrain_cli.symbolic.roll`), one piano roll.
A window's raw score is the trees' score, or the stack of the trees' score and the roll
network's logit (weights fitted on validation clips). A window is in the line's domain when
its Mahalanobis distance from the training windows is within the fitted limit; the track's
P(AI) is the calibrated mean raw score of its in-domain windows. The line judges only when
the content model also finds the recording in its own domain (audio like the rendered scores
both were trained on: the note statistics of a studio mix or a live recording were never
measured). It never exonerates (:func:`musicbrain_cli.verdict.symbolic_finding`). At or above
its doubt threshold it *leans towards AI*: it does not accuse, but it withholds a ``human``
verdict (the threshold and its rule: :mod:`musicbrain_cli.symbolic.fit`); at or above its
operating point it would accuse, but the shipped line does not accuse on its own
(:data:`ACCUSES`), so there it leans as well.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from musicbrain_cli.artifacts.detector import Trees, load_model_files, model_directory
from musicbrain_cli.errors import InputError, ModelLoadError
from musicbrain_cli.files import sha256_file
from musicbrain_cli.symbolic import roll as _roll
from musicbrain_cli.symbolic.features import FEATURE_NAMES, MIN_NOTES, note_features
from musicbrain_cli.symbolic.features import canonical_notes
from musicbrain_cli.text import apart

PACKAGE_DIR = Path(__file__).resolve().parent
#: SHA-256 of the shipped model's files, checked on load.
SHIPPED_SHA256: dict[str, dict[str, str]] = {
    "default": {"model.json": "2f5089f8b05cd787e73a18283ee8a86dfffa77c3ab0788a368b9024c2421293b",
                "card.json": "cb4cc140771f1eebd7923be1dc48039c3c39f37105c32cdf8f7d9dc5682f3747",
                "roll.safetensors": "4225e6d29c91fedff7bfea0c5c00c4961faffe294cf36949d49c8754c5591176"},
}
#: Whether a P(AI) at or above the operating point accuses. Not since session 25: the line's
#: human side holds no ragtime and almost no Lieder, the styles of the RhythGen configurations on
#: its AI side, so it learned part of "ragtime" as "AI". Rendered human rags by Scott Joplin
#: (public domain) reached its operating point (Pineapple Rag, P(AI) 0.992: 1 of the 12 human
#: renders in its domain), and every real RhythGen piece it called AI on the evaluation folder
#: was a rag at the same P(AI) (0.992-0.996). Its 0 of 277 human test clips hold for the
#: repertoire of its human side only. Such a reading now leans towards AI (withholds a
#: ``human`` verdict); the operating point is kept and reported, for a refit whose human side
#: covers those styles (docs/evaluation/symbolic-line.md, "Human ragtime").
ACCUSES = False
#: At most this many windows of a track are transcribed (spread evenly over it).
MAX_WINDOWS = 6
#: How many of the features furthest from the human training clips a finding names.
NAMED_FEATURES = 3
_PLAIN = {"notes_per_s": "notes per second", "pitch_mean": "mean pitch (MIDI)",
          "pitch_std": "pitch spread (semitones)", "pitch_range": "pitch range (semitones)",
          "pitch_class_entropy": "pitch-class entropy (nats)",
          "log_ioi_mean": "mean log inter-onset interval", "log_ioi_std": "spread of log inter-onset intervals",
          "ioi_median": "median inter-onset interval (s)", "log_duration_mean": "mean log note duration",
          "log_duration_std": "spread of log note durations", "chord_size_mean": "mean notes per onset",
          "chord_size_max": "most notes at one onset", "duration_rel_mean": "mean duration / median duration",
          "duration_distinct_share": "share of distinct note durations",
          "key_clarity": "key clarity (best Krumhansl-Kessler key correlation)",
          "pitch_class_transition_entropy": "entropy of pitch-class transitions (nats)",
          "onset_grid_share": "share of inter-onset intervals that are whole multiples of the median one",
          "onset_periodicity": "periodicity of the onsets (autocorrelation at 0.5-4 s)",
          "interval_4gram_repeat_share": "share of repeated four-step pitch figures",
          "top_voice_step_mean": "mean step of the top voice (semitones)",
          "top_voice_step_std": "spread of the top voice's steps (semitones)",
          "bass_step_std": "spread of the bass's steps (semitones)",
          "sounding_notes_mean": "mean number of notes sounding at once"}
#: Notes given with a window must lie within it, to this tolerance (seconds) past its end.
WINDOW_TOLERANCE_S = 0.05


def plain_feature(name: str) -> str:
    """A feature's name in plain words for a report."""
    if name in _PLAIN:      # before the prefixes: interval_4gram_repeat_share is no interval
        return _PLAIN[name]
    if name.startswith("pitch_class_top"):
        return f"share of the {name[-1]}. most used pitch class"
    if name.startswith("interval_"):
        rest = name.split("_", 1)[1]
        return "share of melodic steps of 12 semitones or more" if rest == "12_plus" \
            else f"share of melodic steps of {rest} semitones"
    return _PLAIN.get(name, name)


@dataclass(frozen=True)
class SymbolicFinding:
    """What the symbolic line found on one track (JSON-ready through :meth:`to_dict`).

    ``applicable``: some window had enough notes; ``in_domain``: the line may accuse here
    (its windows and the content model both in domain); ``leans_ai``: in domain, at or above
    the doubt threshold but below the operating point; ``windows``: per analysed window its
    start, length, note count, the notes heard (``heard``: start s, end s, MIDI pitch, the
    very notes scored), distance, whether in domain and P(AI) (None when too few notes), and
    for a model with a roll network each reader's share of the log-odds;
    ``measured_on``: the generator families its detection rate was measured on (from its
    card's test split), for the report to say that on any other its miss rate is unknown.
    ``reaches_operating_point``: P(AI) at or above the operating point; it accuses
    (``says_ai``) only where the line accuses at all (``accuses``, :data:`ACCUSES`), else it
    leans.
    """

    applicable: bool
    in_domain: bool
    p_ai: float | None
    threshold: float
    says_ai: bool
    leans_ai: bool
    doubt_threshold: float
    windows: tuple[dict, ...]
    features: tuple[dict, ...]
    explanation: str
    model_sha256: str | None
    error_rates: dict
    measured_on: tuple[str, ...] = ()
    reaches_operating_point: bool = False
    accuses: bool = True

    def to_dict(self) -> dict:
        d = asdict(self)
        d["windows"], d["features"] = list(self.windows), list(self.features)
        d["measured_on"] = list(self.measured_on)
        return d


def _window_notes(notes, duration_s: float) -> np.ndarray:
    """The notes of a window of ``duration_s`` seconds as the line scores and records them
    (:func:`~musicbrain_cli.symbolic.features.canonical_notes`); ``ValueError`` unless they are
    MIDI notes (0-127) that start and end within the window (to :data:`WINDOW_TOLERANCE_S`)
    and do not end before they start, as basic-pitch's notes of the window do. Notes in track
    time, or far outside the window, would be scored as the window's (an empty piano roll, and
    an onset autocorrelation quadratic in their span: review)."""
    arr = canonical_notes(notes)
    if not len(arr):
        return arr
    start, end, pitch = arr[:, 0], arr[:, 1], arr[:, 2]
    limit = duration_s + WINDOW_TOLERANCE_S
    if start.min() < 0 or end.max() > limit or np.any(end < start):
        k = int(np.count_nonzero((start < 0) | (end > limit) | (end < start)))
        raise ValueError(f"{k} of {len(arr)} notes do not lie within its {duration_s:g} s "
                         f"(from {start.min():g} s to {end.max():g} s)")
    if pitch.min() < 0 or pitch.max() > 127:
        raise ValueError(f"pitches from {pitch.min():g} to {pitch.max():g} are not all MIDI "
                         "notes (0-127), so not notes heard within it")
    return arr


def _sigmoid_array(z: np.ndarray) -> np.ndarray:
    """The one logistic function of this line: the fit sets the operating point with it and
    a scan scores with it, so a clip the fit left just below the point stays below it (with
    ``math.exp`` at scan time the last bit differed: session 28 audit)."""
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(z, dtype=np.float64), -700, 700)))


def _sigmoid(z: float) -> float:
    return float(_sigmoid_array(np.array([z], dtype=np.float64))[0])


class SymbolicDetector:
    """The fitted symbolic line (module doc)."""

    def __init__(self, model: dict, card: dict | None = None, *, sha256: str | None = None,
                 roll_net=None, accuses: bool = ACCUSES) -> None:
        self.accuses = bool(accuses)
        try:
            if list(model["features"]) != list(FEATURE_NAMES):
                raise ModelLoadError(f"symbolic model features {model['features']!r} != {list(FEATURE_NAMES)!r}")
            n = len(FEATURE_NAMES)
            self.trees = Trees(model["trees"], n_features=n)
            self.platt_a, self.platt_b = float(model["platt"]["a"]), float(model["platt"]["b"])
            # raw score = w_trees * trees + w_roll * roll logit; P(AI) = sigmoid(raw + bias)
            self.w_trees, self.w_roll, self.bias = self.platt_a, 0.0, self.platt_b
            self.roll_net = None
            if model.get("roll") is not None:
                spec = model["roll"]
                arch = spec.get("arch") if isinstance(spec, dict) else spec
                if arch != _roll.ARCH or not isinstance(spec, dict):
                    raise ModelLoadError(f"symbolic model's roll network {arch!r} is not {_roll.ARCH!r} "
                                         "(or its entry is not a mapping)")
                if roll_net is None:
                    raise ModelLoadError("symbolic model needs its roll network weights "
                                         f"({model['roll'].get('file')!r}), none were given")
                stack = model["stack"]
                self.w_trees, self.w_roll = float(stack["trees"]), float(stack["roll"])
                self.bias = float(stack["bias"])
                if not np.isfinite([self.w_trees, self.w_roll, self.bias]).all():
                    raise ModelLoadError("symbolic model's stack weights are not finite")
                self.roll_net = roll_net
            # the length of the windows the line was fitted and measured on; rolls are at
            # least as long as them
            self.window_s = float(model.get("window_s", 10.0))
            self.threshold = float(model["threshold"])
            # a model fitted before the doubt threshold existed has no doubt zone
            self.doubt_threshold = float(model.get("doubt_threshold", self.threshold))
            dom = model["domain"]
            self.mean = np.asarray(dom["mean"], dtype=np.float64).reshape(n)
            self.scale = np.asarray(dom["scale"], dtype=np.float64).reshape(n)
            self.precision = np.asarray(dom["precision"], dtype=np.float64).reshape(n, n)
            self.domain_limit = float(dom["limit"])
            ref = model.get("human_reference") or {}
            self.human_median = np.asarray(ref.get("median", np.zeros(n)), dtype=np.float64).reshape(n)
            self.human_iqr = np.asarray(ref.get("iqr", np.ones(n)), dtype=np.float64).reshape(n)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"symbolic model is malformed: {exc!r}") from exc
        # a threshold just above 1 (a human development clip at exactly 1: nothing reaches it)
        if not 0.0 < self.threshold <= 1.0 + 1e-9 or np.any(self.scale <= 0) \
                or not 0.0 < self.doubt_threshold <= self.threshold:
            raise ModelLoadError("symbolic model threshold outside (0, 1], a doubt threshold outside "
                                 "(0, threshold] or a non-positive scale")
        self.model, self.card, self.sha256 = model, card or {}, sha256
        rates = self.card.get("test") if isinstance(self.card.get("test"), dict) else {}
        sources = rates.get("per_source") if isinstance(rates.get("per_source"), dict) else {}
        #: the generator families the card's detection rate was measured on
        self.measured_on = tuple(sorted({str(k).split("/")[0] for k in sources
                                         if not str(k).startswith("human/")}))
        self.error_rates = {k: rates.get(k) for k in ("false_accusation", "detection",
                                                      "human_withheld", "ai_doubted")}

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "default") -> "SymbolicDetector":
        """Load ``"default"`` (shipped, SHA-256 checked) or a directory with model.json and card.json."""
        model, card, sha256 = load_model_files(name_or_path, shipped=SHIPPED_SHA256,
                                               package_dir=PACKAGE_DIR, what="symbolic")
        net = None
        spec = model.get("roll") if isinstance(model, dict) else None
        if isinstance(spec, dict):
            name = str(spec.get("file", ""))
            if (not name or Path(name).name != name or any(c in name for c in "/\\:")
                    or name.startswith(".")):
                raise ModelLoadError(f"symbolic model names an unsafe roll weights file {name!r}")
            path = model_directory(name_or_path, shipped=SHIPPED_SHA256, package_dir=PACKAGE_DIR) / name
            if not path.is_file():
                raise ModelLoadError(f"no roll network weights at {str(path)!r}")
            got = sha256_file(path)
            if got != spec.get("sha256"):
                raise ModelLoadError(f"{str(path)!r} has SHA-256 {got}, the model file records "
                                     f"{spec.get('sha256')}: weights and model do not belong together")
            try:
                net = _roll.load(path)
            except ValueError as exc:
                raise ModelLoadError(str(exc)) from exc
        return cls(model, card, sha256=sha256, roll_net=net)

    # --- scoring ------------------------------------------------------------------------

    def distance(self, features: np.ndarray) -> float:
        """Mahalanobis distance of one window's features from the training windows."""
        z = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        return float(math.sqrt(max(float(z @ self.precision @ z), 0.0)))

    @property
    def uses_roll(self) -> bool:
        return self.roll_net is not None

    def reader_scores(self, features: Sequence[np.ndarray], notes: Sequence[np.ndarray] | None = None,
                      duration_s: float | None = None, *, rolls: Sequence[np.ndarray] | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Each reader's weighted share of the windows' raw scores, ``(trees, roll)``; the roll
        share is 0 for a model without a roll network. Windows are given by their features
        and, for a model with one, their notes (``[n, 3]``, window of ``duration_s``) or ready
        ``rolls``; the network runs once over all of them."""
        trees = np.array([self.w_trees * self.trees(x) for x in features], dtype=np.float64)
        if self.roll_net is None or not len(trees):
            return trees, np.zeros_like(trees)
        if rolls is None:
            if notes is None or duration_s is None:
                raise ValueError("this symbolic model reads piano rolls: give the windows' notes")
            rolls = [_roll.piano_roll(n, duration_s) for n in notes]
        return trees, self.w_roll * _roll.logits(self.roll_net, rolls)

    def raw_scores(self, features: Sequence[np.ndarray], notes: Sequence[np.ndarray] | None = None,
                   duration_s: float | None = None, *, rolls: Sequence[np.ndarray] | None = None
                   ) -> np.ndarray:
        """Raw scores (the readers' shares summed, before the calibration's bias) of windows
        (arguments as :meth:`reader_scores`)."""
        trees, roll = self.reader_scores(features, notes, duration_s, rolls=rolls)
        return trees + roll

    def window_p_ai(self, features: np.ndarray, notes: np.ndarray | None = None,
                    duration_s: float | None = None, *, roll: np.ndarray | None = None) -> float:
        raw = self.raw_scores([features], None if notes is None else [notes], duration_s,
                              rolls=None if roll is None else [roll])
        return _sigmoid(float(raw[0]) + self.bias)

    def p_ai(self, raw: np.ndarray | float) -> np.ndarray:
        """Calibrated P(AI) of raw scores."""
        return _sigmoid_array(np.asarray(raw, dtype=np.float64) + self.bias)

    def assess(self, windows: Sequence[tuple], sample_rate: int, *,
               content_in_domain: bool | None) -> SymbolicFinding:
        """The finding on a track from its ``(start_s, samples)`` windows (mono, ``sample_rate``);
        a window given as ``(start_s, samples, notes)`` brings basic-pitch's notes of it, already
        transcribed (by the alignment checks), and is not transcribed again."""
        from musicbrain_cli.alignment.pitch import basic_pitch_available, basic_pitch_notes

        if content_in_domain is False:      # it could not accuse: no transcription is spent
            return self._not_applicable("Symbolic analysis not run: the content model finds the recording "
                                        "outside its domain, and the symbolic line was measured on "
                                        "rendered scores only.")
        ok, why = basic_pitch_available()
        if not ok:
            return self._not_applicable(f"Symbolic analysis not available: {why}.")
        if not windows:
            return self._not_applicable("Symbolic analysis not applicable: the recording holds no full "
                                        "10-s window of audio.")
        rows, xs, rolls, where = [], [], [], []
        other_lengths = []      # lengths (s) of windows with notes, other than the line's
        for start_s, samples, *known in windows[:MAX_WINDOWS]:
            try:
                notes = known[0] if known and known[0] is not None else \
                    basic_pitch_notes(np.asarray(samples, dtype=np.float32), sample_rate)
            except (RuntimeError, ValueError, MemoryError, InputError) as exc:
                # onnxruntime's failures, and audio that is not finite (InputError)
                self._score_rows(rows, xs, rolls, where)     # the windows before it keep their scores
                return self._not_applicable(
                    f"Symbolic analysis failed: basic-pitch could not transcribe the window at "
                    f"{float(start_s):g} s ({type(exc).__name__}: {exc}).", rows)
            duration_s = len(samples) / sample_rate
            # the notes as recorded in the finding (ms, whole MIDI pitches) are the notes scored,
            # so that anyone can recompute the window's P(AI) from the finding and the model
            try:
                notes = _window_notes(notes, duration_s)
            except ValueError as exc:
                self._score_rows(rows, xs, rolls, where)
                return self._not_applicable(
                    f"Symbolic analysis failed: the notes of the window at {float(start_s):g} s are "
                    f"not notes heard within it ({exc}).", rows)
            x = note_features(notes, duration_s)
            row = {"start_s": float(start_s), "notes": len(notes), "distance": None,
                   "in_domain": False, "p_ai": None, "duration_s": round(duration_s, 6),
                   "heard": notes.tolist()}
            if x is not None:
                d = self.distance(x)
                # a window of another length than those the line was fitted and measured on
                # (a content model with other windows) is outside its domain, whatever its
                # distance: note density, range, chord sizes and the roll all follow the
                # length, and its error rates hold for its own windows only
                measured = abs(duration_s - self.window_s) <= 1.0 / sample_rate
                other_lengths += [] if measured else [duration_s]
                row.update(distance=round(d, 4), in_domain=measured and d <= self.domain_limit)
                xs.append(x)
                if self.uses_roll:          # each window's roll at its own length, padded with
                    # silence to the training windows' (a shorter one is scored, not judged)
                    rolls.append(_roll.piano_roll(notes, max(duration_s, self.window_s)))
                where.append(len(rows))
            rows.append(row)
        trees, rolled = self._score_rows(rows, xs, rolls, where)
        keep = [k for k, i in enumerate(where) if rows[i]["in_domain"]]
        return self._finding(rows, [xs[k] for k in keep], [float(trees[k] + rolled[k]) for k in keep],
                             [(float(trees[k]), float(rolled[k])) for k in keep],
                             content_checked=content_in_domain is not None,
                             other_lengths=other_lengths)

    def _score_rows(self, rows, xs, rolls, where) -> tuple[np.ndarray, np.ndarray]:
        """Each reader's share for the windows with features (``xs``, rows ``where``), written
        into their rows with the window's P(AI)."""
        if not xs:
            return np.zeros(0), np.zeros(0)
        trees, rolled = self.reader_scores(xs, rolls=rolls if self.uses_roll else None)
        for k, t, r in zip(where, trees, rolled):
            rows[k]["p_ai"] = round(float(self.p_ai(t + r)), 6)
            if self.uses_roll:       # each reader's share of the window's log-odds
                rows[k].update(statistics_score=round(float(t), 4), roll_score=round(float(r), 4))
        return trees, rolled

    def _common(self, rows) -> dict:
        return dict(threshold=self.threshold, doubt_threshold=self.doubt_threshold, accuses=self.accuses,
                    windows=tuple(rows), model_sha256=self.sha256, measured_on=self.measured_on,
                    error_rates=dict(self.error_rates))

    def _not_applicable(self, explanation: str, rows=()) -> SymbolicFinding:
        return SymbolicFinding(False, False, None, says_ai=False, leans_ai=False, features=(),
                               explanation=explanation, **self._common(rows))

    def _finding(self, rows, xs, raws, shares=(), *, content_checked: bool = True,
                 other_lengths: Sequence[float] = ()) -> SymbolicFinding:
        common = self._common(rows)
        if not any(r["p_ai"] is not None for r in rows):
            return self._not_applicable(f"Symbolic analysis not applicable: no analysed window held "
                                        f"{MIN_NOTES} or more notes.", rows)
        # what was heard, and why fewer windows may have been judged (review: the sentence
        # counted the judged windows as the windows heard)
        few = sum(r["p_ai"] is None for r in rows)
        outside = len(rows) - few - len(xs) - len(other_lengths)
        odd = (f"{len(other_lengths)} of {', '.join(sorted({f'{d:g}' for d in other_lengths}))} s, "
               f"not the {self.window_s:g} s of the windows it was measured on" if other_lengths else "")
        unchecked = ("" if content_checked else
                     " The content model made no domain check of this recording, so whether it is "
                     "audio like the rendered scores this line was measured on was not checked.")
        if not xs:
            text = ("The notes of every analysed window lie outside the range of the scores the "
                    "symbolic line was trained on; it does not judge them." if not few and not odd else
                    f"basic-pitch heard the notes of {len(rows)} window(s): "
                    + "; ".join(w for w in (f"{few} held fewer than {MIN_NOTES} notes" if few else "",
                                            odd,
                                            f"the notes of {outside} lie outside the range of the "
                                            "scores the symbolic line was trained on" if outside else "")
                                if w)
                    + "; it does not judge them.")
            return SymbolicFinding(True, False, None, says_ai=False, leans_ai=False, features=(),
                                   explanation=text + unchecked, **common)
        p = _sigmoid(float(np.mean(raws)) + self.bias)
        mean_x = np.mean(xs, axis=0)
        # distance from the human median in standard deviations of the training windows
        # (an IQR of 0, as for a rare interval, would make any non-zero share look extreme)
        z = (mean_x - self.human_median) / self.scale
        named = tuple({"feature": FEATURE_NAMES[j], "plain": plain_feature(FEATURE_NAMES[j]),
                       "value": round(float(mean_x[j]), 4),
                       "human_median": round(float(self.human_median[j]), 4),
                       "human_iqr": round(float(self.human_iqr[j]), 4),
                       "sd_from_human_median": round(float(z[j]), 2)}
                      for j in np.argsort(-np.abs(z))[:NAMED_FEATURES])
        reaches = p >= self.threshold
        says_ai = reaches and self.accuses
        leans_ai = not says_ai and p >= self.doubt_threshold
        where = "; ".join(f"{f['plain']} {f['value']:.3g} (human scores: median {f['human_median']:.3g}, "
                          f"{f['sd_from_human_median']:+.1f} SD of all its training windows)" for f in named)
        doubt = (f" That is at or above its doubt threshold {self.doubt_threshold:.2f}: the notes "
                 "lean towards AI output, which withholds a verdict of human origin."
                 if leans_ai and not reaches else "")
        if leans_ai and reaches:
            doubt = (" That is at or above its operating point, but this line does not accuse on its "
                     "own: its human side holds no ragtime and almost no art songs, and rendered human "
                     "rags by Scott Joplin reached the same point. The notes lean towards AI output, "
                     "which withholds a verdict of human origin.")
        readers = "their statistics and their piano roll" if self.uses_roll else "their statistics"
        split = ""
        if self.uses_roll and shares:
            t, r = np.mean(shares, axis=0)
            split = (f" Of its log-odds, the statistics give {t:+.2f}, the piano-roll network {r:+.2f} "
                     f"and the calibration {self.bias:+.2f}.")
        shown_p, shown_t = apart(p, self.threshold)
        heard = f"basic-pitch heard the notes of {len(rows)} window(s)"
        if len(rows) != len(xs):
            not_judged = [f"{few} with fewer than {MIN_NOTES} notes" if few else "", odd,
                          f"{outside} whose notes lie outside the range of the scores the line was "
                          "trained on" if outside else ""]
            heard += f" and judged {len(xs)} (not judged: {', '.join(w for w in not_judged if w)})"
        means = f" (means over the {len(xs)} judged windows)" if len(xs) > 1 else ""
        text = (f"{heard}; {readers} give a "
                f"calibrated P(AI) of {shown_p} against the operating point {shown_t}.{split}{doubt} "
                f"Furthest from the human scores the line was trained on{means}: {where}.{unchecked}")
        return SymbolicFinding(True, True, p, says_ai=says_ai, leans_ai=leans_ai, features=named,
                               explanation=text, reaches_operating_point=reaches, **common)
