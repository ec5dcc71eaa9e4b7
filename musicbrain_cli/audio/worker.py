"""The decoder child process: reads headers and tags and decodes files on request, streaming
float32 blocks back.

Run as ``python -m musicbrain_cli.audio.worker [--max-memory-mb N]`` by
:mod:`musicbrain_cli.audio.intake`; not a user command. Isolation is the point: FFmpeg parses
hostile bytes here, so a crash (SIGSEGV), a hang or a memory blow-up costs this process,
never the caller. The parent enforces the deadline and kills this process; this process
caps its own address space (``RLIMIT_AS``) so a hostile allocation fails here.

Protocol. Requests are JSON lines on stdin, handled one at a time::

    {"op": "probe",  "path": "/abs/file"}
    {"op": "tags",   "path": "/abs/file"}
    {"op": "decode", "path": "/abs/file", "sample_rate": 22050, "block_samples": 220500,
     "timeout_s": 600.0, "native_samples": 0}

Replies are messages on stdout, each ``type (1 byte) | length (uint64 LE) | payload``:
``F`` stream facts (JSON), ``M`` the file's tags and C2PA store location
(:func:`musicbrain_cli.audio.metadata.read_tags`, JSON; mutagen parses untrusted bytes too, so it
runs here under the same deadline), ``B`` one mono float32 block (native little-endian bytes),
``N`` a chunk of the first ``native_samples`` mono samples at the stream's own rate (the
same bytes; only when asked), ``S`` decode statistics (JSON, ends a decode), ``E`` an error
(JSON ``{"type", "message", "share_decoded"}``, ends any request). The process exits when
stdin closes.
"""

from __future__ import annotations

import json
import os
import struct
import sys

HEADER = struct.Struct("<cQ")


def _send(out, kind: bytes, payload: bytes | memoryview) -> None:
    out.write(HEADER.pack(kind, len(payload)))
    out.write(payload)


def _send_json(out, kind: bytes, obj) -> None:
    _send(out, kind, json.dumps(obj).encode())


#: ``(what the child was doing, who failed)`` of a request, for its error messages; the
#: header and the samples are "decoding" by the "decoder".
_DOING = {"tags": ("reading the tags", "tag reader")}


def _handle(request: dict, out) -> None:
    from musicbrain_cli.audio import decode as core
    from musicbrain_cli.errors import MusicBrainError

    path = request.get("path", "?")
    doing, who = _DOING.get(request.get("op"), ("decoding", "decoder"))
    try:
        if request["op"] == "probe":
            _send_json(out, b"F", core.probe_facts(path).to_dict())
        elif request["op"] == "tags":
            from musicbrain_cli.audio import metadata

            _send_json(out, b"M", metadata.read_tags(path))
        elif request["op"] == "decode":
            gen = core.decode_blocks(
                path,
                sample_rate=int(request["sample_rate"]),
                block_samples=int(request["block_samples"]),
                timeout_s=float(request["timeout_s"]),
                on_facts=lambda facts: _send_json(out, b"F", facts.to_dict()),
                native_samples=int(request.get("native_samples") or 0),
                on_native=lambda chunk: _send(out, b"N", memoryview(chunk.astype("<f4", copy=False)).cast("B")),
            )
            while True:
                try:
                    block = next(gen)
                except StopIteration as stop:
                    _send_json(out, b"S", stop.value.to_dict())
                    break
                _send(out, b"B", memoryview(block.astype("<f4", copy=False)).cast("B"))
        else:
            raise ValueError(f"unknown op {request['op']!r}")
    except MusicBrainError as exc:
        name = type(exc).__name__ if type(exc).__name__ in core.TRANSPORTABLE_ERRORS else "AudioDecodeError"
        _send_json(out, b"E", {"type": name, "message": str(exc),
                               "share_decoded": getattr(exc, "share_decoded", None)})
    except MemoryError as exc:
        _send_json(out, b"E", {"type": "AudioDecodeError", "message":
                               f"{path}: {doing} needed more memory than the decoder may use ({exc})",
                               "share_decoded": None})
    except Exception as exc:  # noqa: BLE001 - anything FFmpeg/PyAV throws becomes a typed error
        _send_json(out, b"E", {"type": "AudioDecodeError", "message":
                               f"{path}: {who} failed: {type(exc).__name__}: {exc}".replace("\n", " "),
                               "share_decoded": None})
    out.flush()


def main(argv: list[str]) -> int:
    if "--max-memory-mb" in argv:
        import resource

        cap = int(argv[argv.index("--max-memory-mb") + 1]) * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    # Own the real stdout for the protocol; anything else that prints goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    os.dup2(2, 1)
    # Import the decoder (PyAV, NumPy) and the tag reader (mutagen) once, before the first
    # request, so requests are fast.
    from musicbrain_cli.audio import decode as audio_decode  # noqa: F401
    from musicbrain_cli.audio import metadata as audio_metadata  # noqa: F401

    for line in sys.stdin:
        if line.strip():
            _handle(json.loads(line), out)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
