"""High-entropy values assigned to secret-like names (password, token, api_key, ...).

A bare high-entropy string is everywhere in an image (package hashes, base64 assets), so this
detector only looks at values on the right of an assignment to a key whose name says "secret".
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator

from ..models import Severity
from .interface import Match
from .prefilter import PassDetector, caseless_literal, pass_for, prefilter_expression

# Stage 1 finds a secret-like word in the lower-cased window; stage 2 matches the assignment that
# follows it.  (One regex with a leading name pattern backtracks at every position: 8 MB/s.)
# Each name: its literal start, the rest of its regex, and every text that rest matches.  A name is
# one of the literals they make: _names finds those with a Hyperscan pass, and tries the regex only
# where one starts (tests check each rest matches exactly its endings).
_SEP_KEY = (b"key", b"_key", b"-key", b".key")
_NAME_PARTS: list[tuple[bytes, bytes, tuple[bytes, ...]]] = [
    (b"passw", rb"(?:or)?d", (b"d", b"ord")),
    (b"passwd", b"", (b"",)),
    (b"pwd", b"", (b"",)),
    (b"secret", b"", (b"",)),
    (b"token", b"", (b"",)),
    (b"api", rb"[_\-.]?key", _SEP_KEY),
    (b"access", rb"[_\-.]?key", _SEP_KEY),
    (b"private", rb"[_\-.]?key", _SEP_KEY),
    (b"auth", rb"[_\-.]?key", _SEP_KEY),
    (b"credential", b"s?", (b"", b"s")),
]
_NAME = re.compile(b"|".join(start + rest for start, rest, _ in _NAME_PARTS))
NAME_LITERALS = sorted({start + ending for start, _, endings in _NAME_PARTS for ending in endings})
_LITERALS = pass_for([[caseless_literal(lit) for lit in NAME_LITERALS]])


_TAIL = re.compile(rb"[A-Za-z0-9_.\-]{0,40}[\"']?\s*(?::=|=>|=|:)\s*[\"']?([A-Za-z0-9+/=_\-.~!@#%^&*?]{12,256})")
_PLACEHOLDER = re.compile(
    rb"(?i)^(?:x+|\*+|\.+|(?:your|my|some|example|dummy|fake|test|sample)[_\-a-z]*|changeme\w*|none|null|true|false|undefined)$"
)
_WORDS = re.compile(rb"^_*[A-Za-z]+(?:[\-_.]+[A-Za-z]+)*[_()]*$")
_HEX = re.compile(rb"^[0-9a-fA-F]+$")


def shannon_entropy(data: bytes) -> float:
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


def _names(data: bytes, lowered: bytes) -> Iterator[re.Match[bytes]]:
    """What ``_NAME.finditer(lowered)`` gives, several times faster.  sre tries the alternation at
    every p, s, t, a or c of the window (a quarter of its letters: 48 MB/s); here one Hyperscan
    pass lists where each name literal ends, so where it starts (a superset of where a name can
    match), and the regex is only tried there, left to right, past the end of the last match."""
    starts = sorted({end - len(NAME_LITERALS[i]) for i, _, end in _LITERALS.scan(data)[0]})
    last = 0
    for at in starts:
        if at < last:
            continue
        m = _NAME.match(lowered, at)
        if m is not None:  # a name is never empty: the next search starts at its end
            yield m
            last = m.end()


class EntropyDetector(PassDetector):
    name = "entropy"
    max_match_len = 400

    def __init__(self, threshold: float = 3.5, hex_threshold: float = 3.0) -> None:
        self.threshold = threshold
        self.hex_threshold = hex_threshold
        name_then_value = "(?:" + _NAME.pattern.decode() + ")" + _TAIL.pattern.decode()
        self._expressions = [prefilter_expression(name_then_value, re.IGNORECASE)]

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        if not events:
            return
        lowered = data.lower()
        last_end = -1
        for name in _names(data, lowered):
            if name.start() < last_end:
                continue
            m = _TAIL.match(data, name.end())
            if m is None:
                continue
            last_end = m.end()
            value = m.group(1).rstrip(b"\"',;")
            if len(value) < 12 or _PLACEHOLDER.match(value):
                continue
            is_hex = bool(_HEX.match(value))
            limit = self.hex_threshold if is_hex else self.threshold
            if shannon_entropy(value) < limit:
                continue
            if not is_hex and (_WORDS.match(value) or value.isdigit()):
                continue  # identifiers and words joined by - _ . ("quoted-string", "Content-Type")
            if shannon_entropy(value) < 0.75 * math.log2(min(len(value), 64)):
                continue  # too repetitive for its length (base64 holds 6 bits a character at most: capped)
            yield Match(
                rule_id="high-entropy-assignment",
                severity=Severity.MEDIUM,
                description=f"high-entropy value assigned to a secret-like name ({'hex' if is_hex else 'text'})",
                start=m.start(1),
                end=m.start(1) + len(value),
                secret=value,
                confidence="low",
            )
