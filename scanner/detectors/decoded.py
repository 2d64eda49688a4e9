"""Secrets inside base64 blobs: a kubeconfig's ``client-key-data``, a Kubernetes Secret's
``data:`` values, a ``.dockerconfigjson``, an env var holding a base64 PEM.

Runs of base64 in a window are decoded when the result is mostly text, and the text is scanned by
the other detectors (not the known-secret one: it already looks for every base64 alignment of
every known value).  A match is reported at the run's place with ``encoding`` ``base64``.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import contextlib
import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import replace

import hyperscan

from .interface import Detector, Match

MIN_RUN = 24  # 18 bytes decoded: shorter blobs cannot hold most formats anyway
MAX_RUN = 1 << 20
MAX_RUNS_PER_WINDOW = 2000
_HEX = re.compile(rb"^[0-9a-fA-F]+$")


_DIGITS = b"0123456789"
_TEXT = bytes([9, 10, 13, *range(32, 127)])
_SEP = b"\n\x00\n"  # between decoded texts: a line break and a byte no text (<= 15 % binary) token holds


def _mixed(run: bytes) -> bool:
    """Base64 of text has upper and lower case letters and digits; paths and words do not."""
    return run.upper() != run and run.lower() != run and len(run.translate(None, _DIGITS)) != len(run)


def _decode(run: bytes) -> bytes | None:
    if len(run) > MAX_RUN or _HEX.match(run) or not _mixed(run):
        return None  # hex digests and words decode to noise
    text = run.rstrip(b"=")
    try:
        decoded = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    if not decoded:
        return None
    binary = len(decoded.translate(None, _TEXT))  # bytes that are not printable text
    return decoded if binary <= 0.15 * len(decoded) else None


class Base64Decoded:
    """Runs the given detectors over the decoded text of base64 runs in a window."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = [d for d in detectors if d.name != "known-secret"]
        # a run and the byte that ends it: one report per run, with its start (SOM)
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=[rb"[A-Za-z0-9+/]{%d,}={0,2}[^A-Za-z0-9+/=]" % MIN_RUN],
            ids=[0],
            elements=1,
            flags=hyperscan.HS_FLAG_SOM_LEFTMOST,
        )

    def _runs(self, data: bytes) -> list[tuple[int, int]]:
        runs: list[tuple[int, int]] = []

        def on_match(pattern: int, start: int, end: int, flags: int, context: object) -> bool | None:
            runs.append((start, end - 1))
            return True if len(runs) >= MAX_RUNS_PER_WINDOW else None  # True stops the scan

        with contextlib.suppress(hyperscan.ScanTerminated):
            self._db.scan(data + b"\n", match_event_handler=on_match)
        return runs

    def find(self, data: bytes, path: str | None = None) -> Iterator[tuple[Detector, Match]]:
        if not self.detectors:
            return
        spans, texts = [], []
        for start, end in self._runs(data):
            decoded = _decode(data[start:end])
            if decoded is not None:
                spans.append((start, end))
                texts.append(decoded)
        if not texts:
            return
        # One pass of each detector over all the decoded texts of the window, joined by a separator
        # no token crosses: thousands of tiny scans cost more than the bytes they read.  A match
        # that does cross it is an artifact of the joining, and could hide a real match behind it:
        # then that detector reads each text alone, as it would without the joining.
        joined = _SEP.join(texts)
        offsets = list(itertools.accumulate((len(t) + len(_SEP) for t in texts[:-1]), initial=0))
        for detector in self.detectors:
            found = []
            for m in detector.find(joined, path):
                k = bisect.bisect_right(offsets, m.start) - 1
                if m.end > offsets[k] + len(texts[k]):
                    found = [(k, m) for k, text in enumerate(texts) for m in detector.find(text, path)]
                    break
                found.append((k, m))
            for k, m in found:
                yield detector, replace(m, start=spans[k][0], end=spans[k][1], encoding="base64")
