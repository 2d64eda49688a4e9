"""Vendor context: a random-looking literal assigned to a name that says whose credential it is.

Many vendors' keys have no distinctive prefix (a 32-character hex string, a 40-character base62
string): only the name they are stored under tells what they are.  ``SENDBIRD_API_TOKEN=...``,
``mixpanel.apiSecret: ...``, ``twilioAuthToken = "..."``, or ``"mixpanel": {"secret": "..."}``
name both a vendor and a credential.  This detector reports such a value under the vendor's name
(``vendor-context-<vendor>``) instead of the generic ``high-entropy-assignment``.

Cheap by construction: the entropy detector already finds every literal assigned to a secret-like
name (one Hyperscan pass over the credential words, then its literal rules and its entropy bar);
this detector asks it for those assignments (:meth:`EntropyDetector.assignments`, computed once
per window for both) and only then looks for a vendor name, with one Hyperscan literal database of
the vendor names over the few bytes of that name and of the key that encloses it.

Severity: **high**, confidence medium.  The value passes the same bar as an entropy finding (a
literal, not code, not a placeholder or words, random for its alphabet and length), and the name
says it is a credential of a named service, which grants access to that service's account: what
the pattern rules report as high for a vendor token.  Confidence stays medium: the vendor is known
by the name, not proven by the value's format.  A vendor's own pattern rule on the same value
leads (content.py's strength order), and the entropy finding folds into this one as ``also``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..models import Severity
from .entropy import KEY_GATE, KEY_GATE_REGEX, NAME_GATE, Assignment, EntropyDetector
from .interface import Match
from .prefilter import PassDetector, pass_for

# The entropy detector's names include api/access/private/auth keys but not a bare "key" or "auth"
# (MIXPANEL_KEY, backblaze.applicationKey, TWILIO_AUTH): too common a word for entropy alone, not
# next to a vendor's name.  This gate finds them: the word right before an operator and the first
# characters of a value, reported where it ends every time; the word is found back from there (a
# start of match from Hyperscan, SOM, costs a fifth more of the whole pass).
_KEY_BACK = re.compile(KEY_GATE_REGEX + rb"\Z", re.IGNORECASE)
_KEY_WORD = re.compile(rb"key|auth", re.IGNORECASE)

# the whole name a value is assigned to: the secret-like word with what surrounds it
_NAME_BEFORE = 64
_NAME_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_NAME_AFTER = re.compile(rb"[A-Za-z0-9_.\-]{0,40}")
# a key that opens a section the assignment is inside, on the same line or one of the two lines
# before: `"mixpanel": {`, `mixpanel:` alone on its line (YAML), `[mixpanel]` (INI, TOML)
_OPENER = re.compile(
    rb"""["']?([A-Za-z][\w.\-]{2,60})["']?\s*(?::|=>?)\s*\{"""
    rb"""|^[ \t\-]*["']?([A-Za-z][\w.\-]{2,60})["']?[ \t]*:[ \t]*\r?$"""
    rb"""|^[ \t]*\[+["']?([A-Za-z][\w.\-"]{2,60})["']?\]+[ \t]*\r?$""",
    re.MULTILINE,
)
_LOOKBACK_LINES = 3
# a credential word may follow a vendor name with no separator (mixpanelsecret, twilioauthtoken)
_CREDENTIAL_START = (b"api", b"key", b"token", b"secret", b"pass", b"pwd", b"auth", b"cred", b"access", b"private")


@dataclass(frozen=True, slots=True)
class Vendor:
    name: str  # the spelling as it is matched (lower case, `_` for any separator)
    display: str
    slug: str
    strict: bool  # must stand as a word of the name (short, or an ordinary English word)


def _slug(display: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", display.lower().replace("&", "and").replace("+", "plus")).strip("-")


def parse_vendors(text: str) -> list[Vendor]:
    """The vendors of ``vendors.txt``: ``name[, other ...] = Display Name`` a line, ``~`` before
    a name that is an ordinary word, ``#`` comments."""
    out = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        names, sep, display = line.partition(" = ")
        if not sep or not display.strip():
            raise ValueError(f"vendors.txt: not `name = Display`: {line!r}")
        display = display.strip()
        for name in names.split(","):
            name = name.strip()
            word = name.startswith("~")
            name = name.lstrip("~")
            if not re.fullmatch(r"[a-z0-9_]+", name) or len(name.replace("_", "")) < 4:
                raise ValueError(f"vendors.txt: bad name {name!r}")
            out.append(Vendor(name, display, _slug(display), word or len(name) < 8))
    return out


@cache
def builtin_vendors() -> tuple[Vendor, ...]:
    text = resources.files("scanner.detectors.rules").joinpath("data/vendors.txt").read_text("utf-8")
    return tuple(parse_vendors(text))


class VendorContextDetector(PassDetector):
    """Names the vendor of an entropy-bar literal assigned to a vendor's credential name."""

    name = "vendor-context"
    max_match_len = 600

    def __init__(self, entropy: EntropyDetector | None = None, vendors: tuple[Vendor, ...] | None = None) -> None:
        self._entropy = entropy or EntropyDetector()
        self._expressions = [NAME_GATE, KEY_GATE]
        self._vendors = builtin_vendors() if vendors is None else vendors
        self._names = pass_for([[(re.escape(v.name.encode()), 0) for v in self._vendors]])

    @property
    def vendors(self) -> tuple[Vendor, ...]:
        return self._vendors

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        if not events:
            return
        gated = {i for i, _, _ in events}
        found = self._entropy.assignments(data, path) if 0 in gated else []
        if 1 in gated:
            found = found + self._keyed(data, path, events, {a.start for a in found})
        for a in found:
            vendor = self.vendor_of(data, a)
            if vendor is None or self._word_in_vendor(data, a, vendor):
                continue
            yield Match(
                rule_id=f"vendor-context-{vendor.slug}",
                severity=Severity.HIGH,
                description=f"{vendor.display} credential (by its name)",
                start=a.start,
                end=a.start + len(a.value),
                secret=a.value,
                confidence="medium",
            )

    def _keyed(
        self, data: bytes, path: str | None, events: list[tuple[int, int, int]], seen: set[int]
    ) -> list[Assignment]:
        """Literals assigned to a name ending in a bare "key" or "auth" (the key gate's events)."""
        out = []
        for end in sorted({end for i, _, end in events if i == 1 and end >= 0}):
            back = _KEY_BACK.search(data, max(0, end - 48), end)
            word = _KEY_WORD.match(data, back.start()) if back is not None else None
            if word is None:
                continue
            at = word.start()
            literal = self._entropy.literal_at(data, word.end(), path)
            if literal is None or literal[0] in seen:
                continue
            seen.add(literal[0])
            out.append(Assignment(at, word.end(), *literal))
        return out

    def vendor_of(self, data: bytes, a: Assignment) -> Vendor | None:
        """The vendor the name of ``a`` says, or the key that encloses it (None: no vendor)."""
        start = a.name_start
        floor = max(0, start - _NAME_BEFORE)
        while start > floor and data[start - 1] in _NAME_CHARS:
            start -= 1
        end = _NAME_AFTER.match(data, a.name_end)
        name = data[start : end.end() if end else a.name_end]
        found = self._lookup(name)
        if found is not None:
            return found
        line_start = start
        for _ in range(_LOOKBACK_LINES):
            line_start = data.rfind(b"\n", 0, max(0, line_start - 1)) + 1
            if line_start == 0:
                break
        if not self._names.scan(_normal(data[line_start:start]))[0]:
            return None  # no vendor's name in those lines: no key there names one (most assignments)
        openers = list(_OPENER.finditer(data, line_start, start))
        if not openers:
            return None
        key = next(g for g in openers[-1].groups() if g is not None)
        return self._lookup(key)

    @staticmethod
    def _word_in_vendor(data: bytes, a: Assignment, vendor: Vendor) -> bool:
        """Whether the credential word is only a part of the vendor's own name (1PASSWORD_REQUEST_ID,
        SUPERTOKENS_API_URL): the name then says which vendor, not that the value is a credential."""
        word = data[a.name_start : a.name_end].lower()
        start = a.name_start
        while start > 0 and data[start - 1] in _NAME_CHARS:
            start -= 1
        end = _NAME_AFTER.match(data, a.name_end)
        name = _normal(data[start : end.end() if end else a.name_end])
        spelled = vendor.name.encode()
        if word not in spelled:
            return False
        rest = name.replace(spelled, b" ", 1)
        return not any(w in rest for w in _CREDENTIAL_START)

    def _lookup(self, name: bytes) -> Vendor | None:
        text = _normal(name)
        hits = self._names.scan(text)[0]
        best: Vendor | None = None
        for i, _, e in hits:
            vendor = self._vendors[i]
            s = e - len(vendor.name)
            if vendor.strict and not (_word_start(name, s) and _word_end(name, text, e)):
                continue
            if best is None or len(vendor.name) > len(best.name):
                best = vendor  # the longest name: mongodb_atlas over mongodb
        return best


def _normal(name: bytes) -> bytes:
    """A name as vendors.txt spells it: lower case, ``_`` for ``-`` and ``.``."""
    return name.lower().replace(b"-", b"_").replace(b".", b"_")


def _word_start(name: bytes, s: int) -> bool:
    if s == 0 or not name[s - 1 : s].isalnum():
        return True
    return name[s - 1 : s].islower() and name[s : s + 1].isupper()  # camelCase: twilioAuth, myTwilio


def _word_end(name: bytes, text: bytes, e: int) -> bool:
    if e >= len(name) or not name[e : e + 1].isalnum():
        return True
    if name[e - 1 : e].islower() and name[e : e + 1].isupper():
        return True
    return text.startswith(_CREDENTIAL_START, e)
