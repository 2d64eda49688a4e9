"""High-entropy values assigned to secret-like names (password, token, api_key, ...).

A bare high-entropy string is everywhere in an image (package hashes, base64 assets), so this
detector only looks at values on the right of an assignment to a key whose name says "secret".
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import hyperscan

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


# the rest of the name, the operator, and a value: quoted (the quote is group 1, and must close
# right after the value: a literal, not an expression), or bare where the format has bare values
_TAIL = re.compile(rb"[A-Za-z0-9_.\-]{0,40}[\"']?\s*(?::=|=>|=|:)[ \t]*([\"'`]?)([A-Za-z0-9+/=_\-.~!@#%^&*?]{12,512})")
_CAP = 512  # a quoted value this long is taken whole even when its closing quote lies beyond
_BARE_END = frozenset(b" \t\r\n,;}]#&")
_PLACEHOLDER = re.compile(
    rb"(?i)^(?:x+|\*+|\.+|(?:your|my|some|example|dummy|fake|test|sample)[_\-a-z]*|changeme\w*|none|null|true|false|undefined)$"
)
_WORDS = re.compile(rb"^_*[A-Za-z]+(?:[\-_.]+[A-Za-z]+)*[_()]*$")
_HEX = re.compile(rb"^[0-9a-fA-F]+$")
_UUID4 = re.compile(rb"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$")
_BASE62 = re.compile(rb"^[A-Za-z0-9]+$")
_BASE64 = re.compile(rb"^[A-Za-z0-9+/_\-]+=*$")
# code, not a value: an identifier chain or a module path (.models.v1_secret, r.password), a path
# of words (/run/secrets/db_password), an ALL-CAPS constant name
_CHAIN = re.compile(rb"^\.*[A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)+$")
_PATH = re.compile(rb"^[.~]?/?(?:[a-z0-9_.\-]+/)+[a-z0-9_.\-]*$")
_CONSTANT = re.compile(rb"^[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+$")
# camelCase, PascalCase and snake_case words, digit runs: how an identifier is made
_CLASSES = tuple(re.compile(c) for c in (rb"[a-z]", rb"[A-Z]", rb"[0-9]", rb"[^\w]"))
_PIECES = re.compile(rb"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")

# Files whose values are expressions unless quoted: source code.  In every other file (config
# formats, shell, .env, text), and in metadata (Env, labels), a bare value is a value.
_CODE = frozenset(
    (
        *(".py", ".pyi", ".pyx", ".pyc", ".pyo", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".mts", ".cts"),
        *(".vue", ".svelte", ".map", ".java", ".class", ".kt", ".kts", ".scala", ".groovy", ".go", ".rb", ".php"),
        *(".c", ".h", ".cc", ".cpp", ".cxx", ".hh", ".hpp", ".cs", ".fs", ".rs", ".swift", ".m", ".mm", ".lua"),
        *(".pl", ".pm", ".r", ".dart", ".ex", ".exs", ".erl", ".clj", ".jl", ".coffee"),
    )
)


def _is_code(path: str | None) -> bool:
    if path is None:
        return False
    name = path.rpartition("!/")[2].rpartition("/")[2].lower()
    dot = name.rfind(".")
    return dot > 0 and name[dot:] in _CODE


def wordlike(value: bytes) -> bool:
    """An identifier or words (clientSecretValue, Ed25519PrivateKey, default_token_name): made of
    letter runs averaging three letters or more, with few digits.  A random value of the same
    alphabet breaks into runs of one or two letters."""
    pieces = _PIECES.findall(value)
    letters = [p for p in pieces if not p.isdigit()]
    covered = sum(len(p) for p in pieces)
    if not letters or covered < 0.8 * len(value):
        return False
    digits = covered - sum(len(p) for p in letters)
    return sum(len(p) for p in letters) / len(letters) >= 3.2 and digits <= 0.25 * len(value)


def not_a_value(value: bytes) -> str | None:
    """Why ``value`` is code, a name or a placeholder rather than a secret (None: it may be one)."""
    if _PLACEHOLDER.match(value) or value.isdigit():
        return "placeholder"
    if _CHAIN.match(value) or _CONSTANT.match(value) or _PATH.match(value):
        return "identifier"
    if not _HEX.match(value) and (_WORDS.match(value) or wordlike(value)):
        return "words"
    return None


def entropy_needed(value: bytes) -> tuple[str, float]:
    """The value's alphabet and the Shannon entropy a random value of it and of its length
    reaches with room to spare: 0.85 of log2(the characters it can hold), hex at least 3.0."""
    n = len(value)
    if _HEX.match(value):
        return "hex", max(3.0, 0.8 * math.log2(min(n, 16)))
    kind, size = ("base62", 62) if _BASE62.match(value) else ("base64", 64) if _BASE64.match(value) else ("text", 90)
    return kind, max(3.0, 0.85 * math.log2(min(n, size)))


def shannon_entropy(data: bytes) -> float:
    if not data:
        return 0.0
    n = len(data)
    return -sum(c / n * math.log2(c / n) for c in Counter(data).values())


# The assignment gates, in the content scanner's shared pass: a secret-like name, an operator and a
# value (reported once per window: the entropy detector then lists every name itself), and a name
# ending in a bare "key" or "auth" before an operator and the first characters of a value (reported
# where each ends; the vendor-context detector's).  The pattern detector's rules anchored on an
# assignment (anchored.py) wait for the same two: the pass compiles each once.
NAME_GATE = prefilter_expression("(?:" + _NAME.pattern.decode() + ")" + _TAIL.pattern.decode(), re.IGNORECASE)
KEY_GATE_REGEX = rb"""(?:key|auth)["']?[ \t]*(?::=|=>|=|:)[ \t]*["'`]?[A-Za-z0-9+/=_\-.~]{12}"""
KEY_GATE = (KEY_GATE_REGEX, hyperscan.HS_FLAG_CASELESS)
KEY_GATE_VALUE = 12  # the value characters a key gate event ends after

_tails_memo = threading.local()


def tails(data: bytes) -> list[tuple[int, int, re.Match[bytes]]]:
    """Every secret-like name in ``data`` followed by an operator and a value: the name's start
    and end and the tail's match (value in group 2).  The entropy detector and the anchored
    rules ask for the same window one after the other: the last window's answer is kept (per
    thread), so the name pass is made once."""
    memo = _tails_memo
    if getattr(memo, "data", None) is data:
        found: list[tuple[int, int, re.Match[bytes]]] = memo.found
        return found
    found = []
    for name in _names(data, data.lower()):
        m = _TAIL.match(data, name.end())
        if m is not None:
            found.append((name.start(), name.end(), m))
    memo.data, memo.found = data, found
    return found


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


@dataclass(frozen=True, slots=True)
class Assignment:
    """A literal assigned to a secret-like name: where the name's secret-like word lies, where the
    value starts, the value (plaintext: it stays in the detectors) and its alphabet."""

    name_start: int
    name_end: int
    start: int
    value: bytes
    kind: str

    def __repr__(self) -> str:  # never the plaintext
        return f"Assignment(name_start={self.name_start}, start={self.start}, kind={self.kind!r})"


class EntropyDetector(PassDetector):
    name = "entropy"
    max_match_len = 600

    def __init__(self, threshold: float = 3.5, hex_threshold: float = 3.0) -> None:
        self.threshold = threshold
        self.hex_threshold = hex_threshold
        self._expressions = [NAME_GATE]
        self._memo = threading.local()

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        if not events:
            return
        for a in self.assignments(data, path):
            if a.kind == "uuid":
                continue
            yield Match(
                rule_id="high-entropy-assignment",
                severity=Severity.MEDIUM,
                description=f"high-entropy value assigned to a secret-like name ({a.kind})",
                start=a.start,
                end=a.start + len(a.value),
                secret=a.value,
                confidence="low",
            )

    def assignments(self, data: bytes, path: str | None) -> list[Assignment]:
        """Every literal in ``data`` assigned to a secret-like name that passes the entropy bar.
        The vendor-context detector asks for the same window right after (or before) this one:
        the last window's answer is kept (per thread), so the work is done once."""
        memo = self._memo
        if getattr(memo, "data", None) is data and memo.path == path:
            found: list[Assignment] = memo.found
            return found
        found = list(self._assignments(data, path))
        memo.data, memo.path, memo.found = data, path, found
        return found

    def _assignments(self, data: bytes, path: str | None) -> Iterator[Assignment]:
        code = _is_code(path)
        last_end = -1
        for name_start, name_end, m in tails(data):
            if name_start < last_end:
                continue
            last_end = m.end()
            value = self._literal(data, m, code)
            if value is None or not_a_value(value) is not None:
                continue
            kind = self.passes_bar(value)
            if kind is not None:
                yield Assignment(name_start, name_end, m.start(2), value, kind)

    def literal_at(self, data: bytes, at: int, path: str | None) -> tuple[int, bytes, str] | None:
        """The literal assigned right after a name ending at ``at`` (its start, itself, its alphabet)
        when it passes what :meth:`assignments` asks of a value."""
        m = _TAIL.match(data, at)
        if m is None:
            return None
        value = self._literal(data, m, _is_code(path))
        if value is None or not_a_value(value) is not None:
            return None
        kind = self.passes_bar(value)
        return None if kind is None else (m.start(2), value, kind)

    def passes_bar(self, value: bytes) -> str | None:
        """The value's alphabet when it is random enough for its alphabet and length (None: not).
        A random (version 4) UUID is random by construction but below the bar of its length: its
        kind is "uuid", which only the vendor-context detector takes (a UUID under a name is an
        id as often as a key: a vendor's name is needed too)."""
        if _UUID4.match(value):
            return "uuid"
        kind, needed = entropy_needed(value)
        needed = max(needed, self.hex_threshold if kind == "hex" else self.threshold if len(value) >= 16 else 0)
        if shannon_entropy(value) < needed:
            return None
        if kind != "hex" and sum(bool(c.search(value)) for c in _CLASSES) < 2:
            return None  # one class of characters (all lower case, all digits): a word, a number
        return kind

    @staticmethod
    def _literal(data: bytes, m: re.Match[bytes], code: bool) -> bytes | None:
        """The value when it is a literal: quoted and closed right after it (or too long to see its
        end), or bare where bare values are values (not source code) and ended by a separator."""
        quote, value, after = m.group(1), m.group(2), data[m.end() : m.end() + 1]
        if quote:
            if after == quote or len(value) == _CAP:
                return value
            return None
        if code or (after and after[0] not in _BARE_END):
            return None
        value = value.rstrip(b".,;")
        return value if len(value) >= 12 else None
