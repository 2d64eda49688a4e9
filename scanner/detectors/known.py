"""Exact matching of the build secrets the user hands us, and of their encoded copies.

The values come from :mod:`scanner.detectors.known_values` (the ``--secret`` flags, parsed and
read).  Every value is matched raw and in each encoding, all at once with one Hyperscan literal
database.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import hyperscan

from ..models import Severity
from .interface import Detector, Match
from .known_values import (
    DEFAULT_MIN_LENGTH,
    KnownValue,
    SecretSpec,
    known_fingerprint,
    load_known_values,
    split_values,
)

__all__ = [  # the values' names too, as this module had them
    "DEFAULT_MIN_LENGTH",
    "KnownSecretsDetector",
    "KnownValue",
    "SecretSpec",
    "encodings_of",
    "known_fingerprint",
    "load_known_values",
    "split_values",
]

# --- encodings ---------------------------------------------------------------------------------


def _b64_aligned(value: bytes, alphabet: Callable[[bytes], bytes]) -> Iterator[tuple[str, bytes]]:
    """The base64 text that ``value`` yields wherever it sits in a longer blob.

    At byte offset k (mod 3) the value's first whole sextet starts at character 0, 2 or 3;
    characters that mix in neighbouring bytes are cut off at both ends.
    """
    for k, start in ((0, 0), (1, 2), (2, 3)):
        encoded = alphabet(b"\0" * k + value)
        full = ((k + len(value)) * 8) // 6
        piece = encoded[start:full]
        yield f"@{k}", piece


def _std_b64(v: bytes) -> bytes:
    return base64.b64encode(v)


def _url_b64(v: bytes) -> bytes:
    return base64.urlsafe_b64encode(v)


def _shell_double(v: bytes) -> bytes:
    return re.sub(rb'([\\"$`])', rb"\\\1", v)


def _shell_single(v: bytes) -> bytes:
    return v.replace(b"'", b"'\\''")


def encodings_of(value: bytes) -> Iterator[tuple[str, bytes]]:
    """Every (encoding name, encoded bytes) to look for.  Raw first."""
    yield "raw", value
    for name, fn in (("base64", _std_b64), ("base64url", _url_b64)):
        for suffix, piece in _b64_aligned(value, fn):
            yield f"{name}{suffix}" if suffix != "@0" else name, piece
    hx = binascii.hexlify(value)
    yield "hex", hx
    yield "hex-upper", hx.upper()
    quoted = urllib.parse.quote_from_bytes(value, safe=b"").encode()
    yield "url", quoted
    yield "url-lower", re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)
    yield "url-plus", urllib.parse.quote_plus(value, safe="").encode()
    yield "url-path", urllib.parse.quote_from_bytes(value, safe=b"/:@").encode()
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None:
        yield "json", json.dumps(text)[1:-1].encode()
        yield "json-unicode", json.dumps(text, ensure_ascii=False)[1:-1].encode()
    yield "shell-double", _shell_double(value)
    yield "shell-single", _shell_single(value)


FRAGMENT = 8  # base64 wrapped over lines is found through fragments of this many characters
FRAGMENT_STEP = 4


class KnownSecretsDetector(Detector):
    """One Hyperscan literal database over every value and every encoding of it: one pass over
    the bytes at a few GB/s, whatever the number of secrets.

    Base64 may be wrapped over lines (base64(1) at 76 columns, PEM at 64), which breaks the
    encoded text anywhere.  The database therefore also holds short fragments of every base64
    piece; a fragment hit is confirmed by joining the lines around it and looking for the whole
    piece there, so that only places that hold a fragment of a secret pay for the check.
    """

    name = "known-secret"

    def __init__(self, values: list[KnownValue], min_encoded_length: int = DEFAULT_MIN_LENGTH) -> None:
        # a literal's id -> what it stands for: a whole encoded value, or a fragment of a base64 piece
        self._full: dict[int, tuple[str, str, str, bytes]] = {}  # secret id, part, encoding, value
        self._frag: dict[int, tuple[int, bytes, str, str, str, bytes]] = {}  # offset, piece, + the same
        literals: list[bytes] = []
        seen: set[bytes] = set()
        longest = 0
        for kv in values:
            for encoding, encoded in encodings_of(kv.value):
                if len(encoded) < min_encoded_length or encoded in seen:
                    continue
                seen.add(encoded)
                self._full[len(literals)] = (kv.secret_id, kv.part, encoding, kv.value)
                literals.append(encoded)
                longest = max(longest, len(encoded) * 2)  # wrapped copies are longer than the piece
                if encoding.startswith("base64") and len(encoded) >= 2 * FRAGMENT:
                    for i in range(0, len(encoded) - FRAGMENT + 1, FRAGMENT_STEP):
                        self._frag[len(literals)] = (i, encoded, kv.secret_id, kv.part, encoding, kv.value)
                        literals.append(encoded[i : i + FRAGMENT])
        self._count = len(seen)
        self._db: hyperscan.Database | None = None
        if literals:
            import hyperscan  # here, not at the top: loading known values (a cached rescan) needs no matcher

            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(
                expressions=literals,
                ids=list(range(len(literals))),
                elements=len(literals),
                flags=hyperscan.HS_FLAG_SOM_LEFTMOST,
                literal=True,
            )
        self.max_match_len = max(longest, 1)
        self.fingerprint = known_fingerprint(values)

    @staticmethod
    def _confirm_wrapped(data: bytes, at: int, offset: int, piece: bytes) -> tuple[int, int] | None:
        """Where ``piece`` lies around ``data[at]`` once line breaks are removed, if it is wrapped."""
        margin = len(piece) // 4 + 8
        lo = max(0, at - offset - margin)
        hi = min(len(data), at + len(piece) - offset + margin)
        region = data[lo:hi]
        origin = [lo + i for i, c in enumerate(region) if c not in (10, 13)]
        joined = region.replace(b"\r", b"").replace(b"\n", b"")
        pos = joined.find(piece)
        if pos < 0:
            return None
        start, end = origin[pos], origin[pos + len(piece) - 1] + 1
        return (start, end) if b"\n" in data[start:end] else None

    def __len__(self) -> int:
        return self._count

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        if self._db is None or not data:
            return
        hits: list[tuple[int, int, int]] = []

        def on_match(entry: int, start: int, end: int, flags: int, context: object) -> None:
            hits.append((entry, start, end))

        self._db.scan(data, on_match)  # positional: keywords cost 0.3 us a call (prefilter.HsPass.events)
        found: list[tuple[int, int, str, str, str, bytes]] = []
        confirmed: set[tuple[bytes, int]] = set()
        for entry, start, end in hits:
            if entry in self._full:
                found.append((start, end, *self._full[entry]))
                continue
            offset, piece, secret_id, part, encoding, value = self._frag[entry]
            span = self._confirm_wrapped(data, start, offset, piece)
            if span is not None and (piece, span[0]) not in confirmed:
                confirmed.add((piece, span[0]))
                found.append((span[0], span[1], secret_id, part, f"{encoding}-wrapped", value))
        found.sort(key=lambda m: (m[0], -m[1]))
        covered: dict[tuple[str, str], int] = {}  # (secret id, encoding) -> end of the last kept match
        for start, end, secret_id, part, encoding, value in found:
            if covered.get((secret_id, encoding), -1) >= end:
                continue  # a line of a secret inside the whole secret: report the whole once
            covered[(secret_id, encoding)] = end
            yield Match(
                rule_id="known-secret",
                severity=Severity.CRITICAL,
                description=f"build secret {secret_id!r} ({part})",
                start=start,
                end=end,
                secret=value,
                secret_id=secret_id,
                encoding=encoding,
            )
