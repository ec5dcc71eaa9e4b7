"""The provenance evidence line: C2PA manifests, read and validated with c2pa-python.

One call, one finding per file::

    finding = read_provenance(path, trust_anchors="anchors.pem")
    finding.status      # "absent" | "valid" | "invalid" | "unreadable"
    finding.says_ai     # a valid manifest declares generative AI
    finding.to_dict()   # JSON-safe, for result.json and the report

What counts, and why (C2PA 2.x, https://c2pa.org/specifications/specifications/2.1/specs/
C2PA_Specification.html, "Actions" and "Digital source type"):

* **AI declaration.** An action in a ``c2pa.actions`` assertion carries a
  ``digitalSourceType`` from the IPTC vocabulary
  (https://cv.iptc.org/newscodes/digitalsourcetype/). Two terms count as declaring generative
  AI: ``trainedAlgorithmicMedia`` ("created algorithmically using a model derived from
  sampled content": text-to-music generators) and ``compositeWithTrainedAlgorithmicMedia``
  (a mix at least one of whose parts is such media). ``algorithmicMedia`` ("created purely by
  an algorithm not based on any sampled training data") is *recorded but not counted*: in
  music it names rule-based and generative composition (a composer's own patch, an arpeggiator,
  a Markov chain written by hand), which is human authorship with tools, and counting it could
  accuse a composer. ``compositeSynthetic``, ``algorithmicallyEnhanced`` and
  ``dataDrivenMedia`` are recorded and not counted for the same reason. Actions of the
  manifests of ingredients (a track built from an AI-generated stem) count too: the active
  manifest's signature covers its ingredient assertions, which bind those manifests. They
  are recorded (each action's ``declares_ai``) but only the asset's *own* actions (the
  active manifest's) make ``declares_ai``/``says_ai``: an ingredient's declaration is the
  word of the ingredient's signer, whom c2pa does not check against the configured trust
  anchors (it reports the store ``Trusted`` when the active signer chains to one), and an
  ingredient may only have been an input. A real composite declares
  ``compositeWithTrainedAlgorithmicMedia`` in its own actions. (The verdict treats an
  ingredient's declaration as evidence short of proof: it withholds ``human``.)
* **Validity.** c2pa's ``validation_state`` decides: ``Invalid`` (a hash mismatch after
  editing, a bad signature, a damaged or transplanted manifest) gives ``status="invalid"``,
  ``Valid`` or ``Trusted`` gives ``status="valid"``. An invalid manifest is reported with
  c2pa's failure codes and is *not* evidence either way: editing tags after signing is
  common, and a declaration no longer bound to this audio says nothing about it.
* **Trust.** ``Valid`` means the signature and hashes check out but the signing certificate
  does not chain to a trust anchor; ``Trusted`` means it does. Without configured anchors
  ``trusted`` is None ("signature valid, signer not verified against a trust list"): the
  signer's name is only what its certificate claims. With anchors (``trust_anchors``, a PEM
  bundle that *replaces* c2pa's own list so the operator decides exactly who is trusted)
  ``trusted`` is True or False.
* **Absence.** No manifest is no evidence either way (``applicable=False``): almost all music
  carries none, and stripping one takes a tag editor.

Hostile files. c2pa (Rust, behind ctypes) parses every byte and, as measured with
c2pa-python 0.38.1 on a 211 MB WAV, holds about the whole file in memory (peak RSS 236 MB,
0.27 s). So by default each file is read in a child process (``python -m
musicbrain_cli.audio.provenance``, ~0.06 s per small file) with an address-space cap and a
deadline, like the decoder (:mod:`musicbrain_cli.audio.worker`): a Rust panic, a hang or a
memory blow-up becomes ``status="unreadable"`` with the reason, never a crash of the scan.
Manifest stores larger than ``max_manifest_bytes`` (found by
:func:`musicbrain_cli.audio.metadata.find_c2pa_store` without parsing) and files larger than
``max_file_bytes`` are refused unread. Remote manifests and OCSP are never fetched (a URL in
an untrusted file is not followed; scans run offline).

Every string that comes from the file (names, actions, c2pa's explanations) is untrusted: it
is cut to :data:`MAX_TEXT_CHARS`, control and bidirectional-override characters are
replaced, and lists are capped, so the finding stays small and cannot break JSON or HTML.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from musicbrain_cli.audio.metadata import MAX_VALUE_CHARS, C2paStore, find_c2pa_store
from musicbrain_cli.inputs import read_regular
from musicbrain_cli.errors import ConfigError

LINE = "provenance"
STATUSES = ("absent", "valid", "invalid", "unreadable")

#: IPTC digital source type vocabulary (http and https spellings occur in the wild).
IPTC_DST_PREFIXES = ("http://cv.iptc.org/newscodes/digitalsourcetype/",
                     "https://cv.iptc.org/newscodes/digitalsourcetype/")
#: Digital source types that declare generative AI (see the module docstring for why only these).
AI_SOURCE_TYPES = frozenset({"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia"})

#: Longest text kept from the file per value, in characters (at most ``MAX_VALUE_CHARS``).
MAX_TEXT_CHARS = 256
#: Most actions, and most validation errors, kept.
MAX_ACTIONS = 64
MAX_ERRORS = 64
#: How deep ingredient manifests are followed, and how many manifests are visited at most.
MAX_INGREDIENT_DEPTH = 8
MAX_MANIFESTS = 64
#: Largest embedded manifest store parsed. Real stores are kilobytes; with thumbnails of
#: several ingredients a few megabytes.
MAX_MANIFEST_BYTES = 16 << 20
#: Largest file handed to c2pa: it holds about the whole file in memory (see module docstring).
#: 1 GiB is ~1.7 h of 44.1 kHz stereo 16-bit WAV and far more of any compressed format.
MAX_FILE_BYTES = 1 << 30
#: Deadline for one file, seconds. Generous: reading and hashing ran at ~770 MB/s here, so
#: the largest accepted file takes ~1.5 s; the rest is for a loaded machine.
DEFAULT_TIMEOUT_S = 60.0
#: Address-space cap of the child: a base for the interpreter and c2pa, plus twice the file.
WORKER_BASE_MEMORY_MB = 768

assert MAX_TEXT_CHARS <= MAX_VALUE_CHARS

# C0/C1 controls and the Unicode bidirectional overrides/isolates that can reorder text in a
# rendered report (CVE-2021-42574, "Trojan Source").
_UNSAFE_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# c2pa error types that mean "found a manifest, and it is broken" (as opposed to "could not
# read the file"): the Rust error names of c2pa-rs, as c2pa-python prefixes its messages.
_MANIFEST_ERRORS = frozenset({"Verify", "Signature", "Manifest", "Assertion", "AssertionNotFound",
                              "Json", "Decoding", "ResourceNotFound"})


# --- the finding -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ProvenanceSigner:
    """The claim signer as c2pa reports it (``signature_info``); untrusted unless ``trusted``."""

    common_name: str | None = None  #: subject CN of the signing certificate
    issuer: str | None = None  #: issuer organisation, as c2pa reports it
    cert_serial_number: str | None = None
    alg: str | None = None  #: signature algorithm (Es256, Ps256, Ed25519, ...)
    time: str | None = None  #: signing time from a trusted timestamp, when there is one

    def describe(self) -> str:
        who = self.common_name or "an unnamed certificate"
        return f"{who!r}" + (f" (issued by {self.issuer!r})" if self.issuer else "")


@dataclass(frozen=True)
class ProvenanceAction:
    """One action of a manifest: what was done, and how the media came to be."""

    action: str  #: e.g. ``c2pa.created``, ``c2pa.edited``
    digital_source_type: str | None = None  #: the full IPTC URI as written in the manifest
    software_agent: str | None = None
    manifest: str = "active"  #: "active", or "ingredient <title>" for an ingredient's manifest
    declares_ai: bool = False  #: the source type is one of :data:`AI_SOURCE_TYPES`


@dataclass(frozen=True)
class ValidationIssue:
    """One failure code from c2pa's validation results."""

    code: str  #: C2PA status code, e.g. ``assertion.dataHash.mismatch``
    explanation: str | None = None
    scope: str = "active manifest"  #: or "ingredient ..." for an ingredient's delta


@dataclass(frozen=True, kw_only=True)
class ProvenanceFinding:
    """The provenance line's finding for one file. Plain data; :meth:`to_dict` is JSON-safe.

    ``status``: ``"absent"`` (no manifest), ``"valid"`` (it validates), ``"invalid"`` (a
    manifest or its marker is present and does not validate: edited after signing, damaged,
    stripped to a marker) or ``"unreadable"`` (the file or the reader failed: unparseable
    container, timeout, crash, over a size limit; no evidence either way).
    ``applicable`` is True only when a manifest is present (``valid`` or ``invalid``).
    ``says_ai`` is ``status == "valid" and declares_ai``; ``declares_ai`` reads the asset's own
    (active manifest's) actions, an ingredient's declaration shows in ``actions`` only.
    ``trusted`` is True/False when trust anchors were configured (or c2pa itself reports
    ``Trusted``), None otherwise.
    """

    line: str = LINE
    status: str
    applicable: bool = False
    says_ai: bool = False
    declares_ai: bool = False
    trusted: bool | None = None
    signer: ProvenanceSigner | None = None
    claim_generator: str | None = None
    actions: tuple[ProvenanceAction, ...] = ()
    validation_state: str | None = None  #: c2pa's own word: Invalid, Valid or Trusted
    validation_errors: tuple[ValidationIssue, ...] = ()
    manifest_source: str | None = None  #: where the store sits, e.g. ``riff:C2PA``
    manifest_bytes: int | None = None
    trust_anchors_configured: bool = False
    reason: str | None = None  #: why a manifest could not be read or validated (c2pa's error)
    explanation: str = ""
    c2pa_version: str | None = None  #: c2pa-rs version that validated, for reproducibility
    truncated: tuple[str, ...] = ()  #: which lists were capped

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> dict:
        return _plain(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ProvenanceFinding":
        """Rebuild a finding from :meth:`to_dict` output (e.g. a stored ``result.json``)."""
        kw = {f.name: d[f.name] for f in fields(cls) if f.name in d}
        if kw.get("signer") is not None:
            kw["signer"] = ProvenanceSigner(**kw["signer"])
        kw["actions"] = tuple(ProvenanceAction(**a) for a in kw.get("actions", ()))
        kw["validation_errors"] = tuple(ValidationIssue(**e) for e in kw.get("validation_errors", ()))
        kw["truncated"] = tuple(kw.get("truncated", ()))
        return cls(**kw)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


# --- untrusted text --------------------------------------------------------------------------


def _text(value: Any, limit: int = MAX_TEXT_CHARS) -> str | None:
    """A bounded, printable string from an untrusted value (None stays None)."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, (int, float, bool)):
            value = str(value)
        else:  # a dict or list where a string belongs: keep a bounded summary
            value = json.dumps(value, ensure_ascii=False, default=str)[: limit + 1]
    # Lone surrogates cannot be encoded as UTF-8 JSON; replace them.
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = _UNSAFE_CHARS.sub("\ufffd", value)
    if len(value) > limit:
        value = value[:limit] + "...[truncated]"
    return value


def _source_term(dst: str | None) -> str | None:
    """The IPTC term of a digital source type URI (``trainedAlgorithmicMedia``), else None."""
    if not dst:
        return None
    for prefix in IPTC_DST_PREFIXES:
        if dst.startswith(prefix):
            return dst[len(prefix):]
    return None


# --- interpreting c2pa's manifest store JSON -------------------------------------------------


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        first = info[0]
        parts = [first.get("name"), first.get("version")]
        return _text(" ".join(str(p) for p in parts if p))
    return _text(manifest.get("claim_generator"))  # C2PA 1.x: one free-text string


def _signer(manifest: dict) -> ProvenanceSigner | None:
    sig = manifest.get("signature_info")
    if not isinstance(sig, dict):
        return None
    return ProvenanceSigner(common_name=_text(sig.get("common_name")), issuer=_text(sig.get("issuer")),
                            cert_serial_number=_text(sig.get("cert_serial_number")),
                            alg=_text(sig.get("alg")), time=_text(sig.get("time")))


def _agent(value: Any) -> str | None:
    if isinstance(value, dict):  # C2PA 2.x: a ClaimGeneratorInfo-like {name, version}
        return _text(" ".join(str(value[k]) for k in ("name", "version") if value.get(k)))
    return _text(value)


def _manifest_actions(manifest: dict, where: str) -> list[ProvenanceAction]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for act in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(act, dict):
                continue
            dst = act.get("digitalSourceType")
            dst = dst if isinstance(dst, str) else None
            out.append(ProvenanceAction(
                action=_text(act.get("action")) or "?",
                digital_source_type=_text(dst),
                software_agent=_agent(act.get("softwareAgent")),
                manifest=where,
                declares_ai=_source_term(dst) in AI_SOURCE_TYPES,
            ))
    return out


def _walk_actions(store: dict) -> tuple[list[ProvenanceAction], bool]:
    """Actions of the active manifest and, depth first, of its ingredients' manifests.

    Returns ``(actions, capped)``; bounded by depth, by manifests visited (cycles cannot
    recur) and by :data:`MAX_ACTIONS` (AI declarations are kept first when capping).
    """
    manifests = store.get("manifests")
    manifests = manifests if isinstance(manifests, dict) else {}
    actions: list[ProvenanceAction] = []
    seen: set[str] = set()
    capped = False

    def visit(label: Any, where: str, depth: int) -> None:
        nonlocal capped
        if not isinstance(label, str) or label in seen or label not in manifests:
            return
        if depth > MAX_INGREDIENT_DEPTH or len(seen) >= MAX_MANIFESTS:
            capped = True
            return
        seen.add(label)
        manifest = manifests[label]
        if not isinstance(manifest, dict):
            return
        actions.extend(_manifest_actions(manifest, where))
        for ing in manifest.get("ingredients") or []:
            if isinstance(ing, dict):
                title = _text(ing.get("title"), 64) or "untitled"
                visit(ing.get("active_manifest"), f"ingredient {title!r}", depth + 1)

    visit(store.get("active_manifest"), "active", 0)
    if len(actions) > MAX_ACTIONS:
        capped = True
        actions = sorted(actions, key=lambda a: (not a.declares_ai, a.manifest != "active"))
        actions = actions[:MAX_ACTIONS]
    return actions, capped


def _failures(results: Any, scope: str) -> list[ValidationIssue]:
    if not isinstance(results, dict):
        return []
    return [ValidationIssue(code=_text(f.get("code")) or "?", explanation=_text(f.get("explanation")), scope=scope)
            for f in results.get("failure") or [] if isinstance(f, dict)]


def _validation(store: dict) -> tuple[list[ValidationIssue], set[str]]:
    """c2pa's failure codes (active manifest, then ingredient deltas) and the success codes."""
    results = store.get("validation_results")
    if not isinstance(results, dict):
        # Older stores carry only a flat list of failures.
        legacy = store.get("validation_status") or []
        return _failures({"failure": legacy}, "active manifest"), set()
    active = results.get("activeManifest") or {}
    errors = _failures(active, "active manifest")
    for delta in results.get("ingredientDeltas") or []:
        if isinstance(delta, dict):
            scope = f"ingredient {_text(delta.get('ingredientAssertionURI'), 128)}"
            errors += _failures(delta.get("validationDeltas"), scope)
    success = {str(s.get("code")) for s in active.get("success") or [] if isinstance(s, dict)}
    return errors, success


def interpret_store(store: dict, *, trust_anchors_configured: bool, location: C2paStore | None = None,
                    c2pa_version: str | None = None) -> ProvenanceFinding:
    """Turn c2pa's manifest store JSON (``Reader.json()``, parsed) into a finding.

    Pure: no I/O. ``location`` is where :func:`find_c2pa_store` saw the store, if it did.
    """
    manifests = store.get("manifests")
    label = store.get("active_manifest")
    active = manifests.get(label) if isinstance(manifests, dict) and isinstance(label, str) else None
    errors, success = _validation(store)
    state = _text(store.get("validation_state"), 32)
    if not isinstance(active, dict):
        return _finding("invalid", location, trust_anchors_configured, c2pa_version, validation_state=state,
                        validation_errors=tuple(errors[:MAX_ERRORS]),
                        reason="the manifest store names no readable active manifest")
    if state in ("Valid", "Trusted", "Invalid"):
        status = "invalid" if state == "Invalid" else "valid"
    else:  # no state reported: any failure other than an untrusted signer invalidates
        status = "invalid" if any(e.code != "signingCredential.untrusted" for e in errors) else "valid"
    credential = {e.code for e in errors if e.code.startswith("signingCredential.")}
    if state == "Trusted" or "signingCredential.trusted" in success:
        trusted: bool | None = True
    elif not trust_anchors_configured or credential - {"signingCredential.untrusted"}:
        # no anchors, or a credential that failed other checks (expired, revoked, invalid),
        # which c2pa also reports as untrusted: whether it chains to an anchor is not
        # established (review of session 45: an expired certificate issued by the anchor
        # was said not to chain to it)
        trusted = None
    else:
        trusted = False
    actions, capped = _walk_actions(store)
    # the asset's own actions only (module docstring): capping keeps these first
    declares_ai = any(a.declares_ai and a.manifest == "active" for a in actions)
    truncated = (["actions"] if capped else []) + (["validation_errors"] if len(errors) > MAX_ERRORS else [])
    return _finding(
        status, location, trust_anchors_configured, c2pa_version,
        declares_ai=declares_ai, trusted=trusted, signer=_signer(active),
        claim_generator=_claim_generator(active), actions=tuple(actions), validation_state=state,
        validation_errors=tuple(errors[:MAX_ERRORS]), truncated=tuple(truncated),
    )


def _finding(status: str, location: C2paStore | None, anchors: bool, c2pa_version: str | None,
             **kw: Any) -> ProvenanceFinding:
    """Build a finding, deriving ``applicable``, ``says_ai`` and ``explanation``."""
    kw.setdefault("declares_ai", False)
    base = ProvenanceFinding(
        status=status, applicable=status in ("valid", "invalid"),
        says_ai=status == "valid" and kw["declares_ai"],
        manifest_source=location.source if location else None,
        manifest_bytes=location.size if location else None,
        trust_anchors_configured=anchors, c2pa_version=c2pa_version, **kw,
    )
    return _with_explanation(base)


def _invalid_causes(codes: list[str]) -> list[tuple[str, bool]]:
    """What c2pa's failure codes of an invalid manifest mean, in words, each with whether it
    unbinds the manifest from this audio (C2PA 2.1 "Standard status codes"). A certificate that
    expired or was revoked says nothing about the audio having changed, and must not read so."""
    out: list[tuple[str, bool]] = []
    if any(c.startswith("assertion.") and c.endswith("Hash.mismatch") for c in codes):
        out.append(("the audio or its tags were changed after signing, or the manifest was "
                    "copied from another file", True))
    if any(c.startswith(("signingCredential.", "timeStamp.")) and c != "signingCredential.untrusted"
           for c in codes):
        out.append(("its signing certificate or time stamp does not check out (expired, revoked or "
                    "otherwise invalid), so its signature cannot be relied on", False))
    if any(c.startswith("claimSignature.") for c in codes):
        out.append(("its signature does not match its claim: the manifest was altered after "
                    "signing", False))
    if not out:
        out.append(("the audio or its tags were changed after signing, or the manifest was "
                    "damaged or copied from another file", True))
    return out


def _with_explanation(f: ProvenanceFinding) -> ProvenanceFinding:
    if f.status == "absent":
        text = ("No C2PA manifest was found. Provenance gives no evidence either way: most music "
                "carries none, and a manifest is easily stripped.")
        if f.reason:
            text += f" ({f.reason})"
    elif f.status == "unreadable":
        text = (f"The file could not be checked for a C2PA manifest: {f.reason}. Provenance gives "
                "no evidence either way.")
    else:
        who = f.signer.describe() if f.signer else "an unknown signer"
        gen = f" with claim generator {f.claim_generator!r}" if f.claim_generator else ""
        ai = [a for a in f.actions if a.declares_ai]
        own = [a for a in ai if a.manifest == "active"]
        after = ""
        if f.status == "valid":
            if f.declares_ai and own:
                a = own[0]
                text = (f"A valid C2PA manifest signed by {who}{gen} declares that the audio was made "
                        f"with generative AI: action {a.action!r} ({a.manifest} manifest) has digital "
                        f"source type {_source_term(a.digital_source_type)!r}.")
            elif ai:
                a = ai[0]
                done = ", ".join(sorted({x.action for x in f.actions if x.manifest == "active"}))
                text = (f"A valid C2PA manifest signed by {who}{gen} records {done or 'no actions'}; "
                        "its own actions declare no generative AI, but the manifest of an "
                        f"{a.manifest} does: action {a.action!r} has digital source type "
                        f"{_source_term(a.digital_source_type)!r}.")
                after = (" That declaration is the word of the ingredient's signer, which is not "
                         "checked against a trust list, and an ingredient may only have been an "
                         "input: evidence of AI short of proof.")
            else:
                done = ", ".join(sorted({a.action for a in f.actions})) or "no actions"
                text = (f"A valid C2PA manifest signed by {who}{gen} records {done} and does not "
                        "declare generative AI. That is not proof of human authorship: anyone can "
                        "sign a manifest.")
            if f.trusted is True:
                trust = (" The signer chains to a configured trust anchor; whether its "
                         "certificate has been revoked is not looked up (scans run offline).")
            elif f.trusted is None:
                trust = (" Signature valid, signer not verified against a trust list (none "
                         "configured): the signer's name is only what its certificate claims.")
            else:
                trust = (" The signer does not chain to any configured trust anchor: its identity "
                         "is unverified.")
            text += trust + after
        else:
            codes = ", ".join(dict.fromkeys(e.code for e in f.validation_errors
                                            if e.code != "signingCredential.untrusted"))
            causes: list[tuple[str, bool]] = []
            if f.reason and not codes:  # c2pa could not even parse the store
                where = f" ({f.manifest_source})" if f.manifest_source else ""
                text = (f"A C2PA manifest store is embedded{where} but cannot be parsed: it is "
                        f"damaged, or was stripped leaving only its container ({f.reason}).")
            else:
                causes = _invalid_causes([e.code for e in f.validation_errors])
                codes = codes or "c2pa reports it invalid"
                text = (f"A C2PA manifest is present but does not validate ({codes}): "
                        + "; ".join(c for c, _ in causes) + ".")
            text += " An invalid manifest is no evidence either way."
            if ai:
                unbound = any(bound for _, bound in causes)
                text += (" It declares generative AI" + ("" if f.declares_ai else " (in an ingredient)")
                         + (", but that declaration is no longer bound to this audio." if unbound
                            else ", but a declaration in a manifest that does not validate is not "
                                 "relied on."))
            if f.signer:
                text += f" It names {who} as signer{gen}."
    return replace(f, explanation=_text(text, MAX_VALUE_CHARS) or "")


# --- reading ---------------------------------------------------------------------------------


def load_trust_anchors(trust_anchors: str | bytes | os.PathLike | None) -> str | None:
    """PEM text of the trust anchors, validated; None when none are configured."""
    if trust_anchors is None:
        return None
    if isinstance(trust_anchors, bytes):
        pem = trust_anchors.decode("ascii", "replace")
    elif isinstance(trust_anchors, str) and "-----BEGIN" in trust_anchors:
        pem = trust_anchors
    else:
        try:
            # a regular file of bounded size: a FIFO or /dev/zero given here must not hang
            # the scan before it starts (issue 23); a root bundle is well under 16 MiB
            pem = read_regular(trust_anchors, max_bytes=16 << 20).decode("ascii", "replace")
        except OSError as exc:
            raise ConfigError(f"trust anchors {str(trust_anchors)!r}: cannot be read "
                              f"({exc.strerror or exc})") from exc
    from cryptography import x509

    try:
        certs = x509.load_pem_x509_certificates(pem.encode("ascii", "replace"))
    except ValueError as exc:
        raise ConfigError(f"trust anchors {str(trust_anchors)[:80]!r}: not a PEM certificate bundle "
                          f"({exc})") from exc
    if not certs:  # pragma: no cover - cryptography raises on an empty bundle
        raise ConfigError(f"trust anchors {str(trust_anchors)[:80]!r}: no certificate in the bundle")
    return pem


def _c2pa_error_kind(exc: Exception) -> str:
    """The Rust error name c2pa-python puts before its messages ("Verify: ..."), else ''."""
    head = str(exc).split(":", 1)[0].strip()
    return head if head.isidentifier() else ""


def _read_here(path: str, anchors_pem: str | None, *, max_manifest_bytes: int,
               max_file_bytes: int, locate: bool = True) -> ProvenanceFinding:
    """Read and interpret the manifest in this process. Never raises for a bad file."""
    anchors = anchors_pem is not None
    location = find_c2pa_store(path) if locate else None
    if location is not None and location.size > max_manifest_bytes:
        return _finding("unreadable", location, anchors, None,
                        reason=f"the embedded manifest store is {location.size} bytes, over the "
                               f"{max_manifest_bytes}-byte limit; it was not parsed")
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        return _finding("unreadable", location, anchors, None, reason=_text(f"the file cannot be read ({exc})"))
    if size > max_file_bytes:
        return _finding("unreadable", location, anchors, None,
                        reason=f"the file is {size} bytes, over the {max_file_bytes}-byte limit for "
                               "C2PA validation (c2pa holds the whole file in memory)")
    try:
        import c2pa
    except ImportError as exc:  # pragma: no cover - c2pa-python is a locked dependency
        return _finding("unreadable", location, anchors, None, reason=_text(f"c2pa-python is not available ({exc})"))
    version = _text(c2pa.sdk_version(), 32)
    settings: dict[str, Any] = {
        # Offline and deterministic: never follow a URL found in an untrusted file.
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True},
    }
    if anchors:
        settings["trust"] = {"trust_anchors": anchors_pem}
    try:
        with c2pa.Context.from_dict(settings) as context, c2pa.Reader(path, context=context) as reader:
            raw = reader.json()
        store = json.loads(raw)
    except Exception as exc:  # noqa: BLE001 - every c2pa (Rust) failure becomes a finding
        return _error_finding(exc, location, anchors, version)
    if not isinstance(store, dict):
        return _finding("invalid", location, anchors, version, reason="c2pa returned no manifest store")
    return interpret_store(store, trust_anchors_configured=anchors, location=location, c2pa_version=version)


def _error_finding(exc: Exception, location: C2paStore | None, anchors: bool,
                   version: str | None) -> ProvenanceFinding:
    kind = _c2pa_error_kind(exc)
    msg = _text(str(exc) or type(exc).__name__)
    if kind == "ManifestNotFound" and location is None:
        return _finding("absent", None, anchors, version)
    if kind == "NotSupported" and location is None:
        # No C2PA binding exists for the format (Ogg, Opus, ...): nothing could be embedded.
        return _finding("absent", None, anchors, version,
                        reason="C2PA defines no way to embed a manifest in this format")
    if kind == "RemoteManifest":
        return _finding("unreadable", location, anchors, version,
                        reason=f"the manifest is remote and is not fetched ({msg})")
    if location is not None or kind in _MANIFEST_ERRORS:
        return _finding("invalid", location, anchors, version, reason=f"c2pa: {msg}")
    return _finding("unreadable", location, anchors, version, reason=msg)


def read_provenance(
    path: str | os.PathLike,
    *,
    trust_anchors: str | bytes | os.PathLike | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    isolate: bool = True,
    max_manifest_bytes: int = MAX_MANIFEST_BYTES,
    max_file_bytes: int = MAX_FILE_BYTES,
    locate: bool = True,
) -> ProvenanceFinding:
    """Read and validate the C2PA manifest of ``path``; see the module docstring.

    ``locate=False`` skips finding where the store sits (:func:`~musicbrain_cli.audio.metadata.
    find_c2pa_store`, whose ID3 walk is mutagen's, quadratic in the frame count) for a file
    whose tag reader already ran out of time on it: c2pa still reads and validates the file,
    and the finding names no location.

    ``trust_anchors``: a PEM bundle (text, bytes, or a path to a ``.pem`` file) of root
    certificates whose signers count as trusted; None reports ``trusted=None``.
    ``isolate=True`` runs c2pa in a child process killed after ``timeout_s`` seconds;
    ``isolate=False`` runs it here (no protection from hangs or crashes inside c2pa).

    Raises :class:`InputError` for a path that is not a readable file and
    :class:`ConfigError` for unusable trust anchors; a bad *file* never raises, it gives
    ``status="unreadable"`` or ``"invalid"`` with the reason.
    """
    from musicbrain_cli.audio.intake import check_path

    p = str(check_path(path))
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s!r}")
    anchors_pem = load_trust_anchors(trust_anchors)
    if not isolate:
        return _read_here(p, anchors_pem, max_manifest_bytes=max_manifest_bytes,
                          max_file_bytes=max_file_bytes, locate=locate)
    return _read_isolated(p, anchors_pem, timeout_s=timeout_s, max_manifest_bytes=max_manifest_bytes,
                          max_file_bytes=max_file_bytes, locate=locate)


def _read_isolated(path: str, anchors_pem: str | None, *, timeout_s: float, max_manifest_bytes: int,
                   max_file_bytes: int, locate: bool = True) -> ProvenanceFinding:
    anchors = anchors_pem is not None
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    memory_mb = WORKER_BASE_MEMORY_MB + 2 * (min(size, max_file_bytes) >> 20)
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    root = str(Path(__file__).resolve().parents[2])  # import this very package in the child
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    request = json.dumps({"path": path, "trust_anchors_pem": anchors_pem,
                          "max_manifest_bytes": max_manifest_bytes, "max_file_bytes": max_file_bytes,
                          "locate": bool(locate)})
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "musicbrain_cli.audio.provenance", "--max-memory-mb", str(memory_mb)],
            input=request.encode(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=env, timeout=timeout_s, close_fds=True, check=False,
        )
    except subprocess.TimeoutExpired:
        return _finding("unreadable", None, anchors, None,
                        reason=f"C2PA validation took longer than {timeout_s:g} s; the reader process was killed")
    if proc.returncode == 0:
        try:
            return ProvenanceFinding.from_dict(json.loads(proc.stdout))
        except (ValueError, TypeError, KeyError):
            pass
    if proc.returncode < 0:
        import signal

        how = f"was killed by {signal.Signals(-proc.returncode).name}"
    else:
        how = f"exited with status {proc.returncode}"
    return _finding("unreadable", None, anchors, None,
                    reason=f"the C2PA reader process {how} (hostile or corrupt file?)")


def _child_main(argv: list[str]) -> int:
    """``python -m musicbrain_cli.audio.provenance``: one JSON request on stdin, one finding on stdout."""
    if "--max-memory-mb" in argv:
        import resource

        cap = int(argv[argv.index("--max-memory-mb") + 1]) << 20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    out = os.fdopen(os.dup(1), "w")  # own the real stdout; anything else printed goes to stderr
    os.dup2(2, 1)
    req = json.loads(sys.stdin.read())
    anchors = req.get("trust_anchors_pem") is not None
    try:
        finding = _read_here(req["path"], req.get("trust_anchors_pem"),
                             max_manifest_bytes=int(req["max_manifest_bytes"]),
                             max_file_bytes=int(req["max_file_bytes"]),
                             locate=bool(req.get("locate", True)))
    except MemoryError:
        finding = _finding("unreadable", None, anchors, None,
                           reason="C2PA validation needed more memory than the reader may use")
    out.write(json.dumps(finding.to_dict()))
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
