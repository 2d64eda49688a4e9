"""Rules anchored on an assignment: a vendor's name, a credential word, an operator, then a value.

About half of the built-in rules have no prefix of their own and match a value by what it is
assigned to (``(?:pipedrive)[\\w.\\-]{0,20}(?:key|token|secret|password)["']?[ \\t]*[:=][ \\t]*["']?
([0-9a-f]{40})(?![\\w\\-])``).  As Hyperscan prefilters in the shared pass their vendor names
(``sf``, ``box``, ``line``, ``close``...) occur all over an image's text, and together they were a
third of that pass's time.  Yet every match of one holds an assignment that the pass already looks
for: a credential word (token, secret, password; a name ending in "key"), an operator and twelve
value characters, the entropy and vendor-context detectors' gates (entropy.py).  So such a rule
leaves the shared pass: in a window where a gate fires, the value start of every assignment is
listed (the entropy detector's name pass, made once per window, and the key gate's events), and at
each one a small Hyperscan database of the rules' heads, over the few bytes before it, tells which
rules may end there; their head regex (ending where the value starts) and their value regex
(starting there) confirm.  A match is what the rule's whole regex matches: no more, no less.

A rule is anchored when its regex has that shape and the gates provably see every match of it
(:func:`anchored_form`): the credential word right before the operator is one the gates know, the
operator and its blanks are on one line (``["']?[ \\t]*[:=][ \\t]*["']?``), the value is at least
12 characters of the key gate's alphabet, and the head before the operator is bounded.  Any other
rule keeps its own prefilter in the shared pass.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any

from ..cache import default_dir, touch, write_atomically
from .entropy import KEY_GATE_VALUE, tails
from .rules.model import Rule

# the operator between the name and the value, as the rules write it; the value is group 1
_OPERATORS = ("""["']?[ \\t]*[:=][ \\t]*["']?(""", """[\\"']?[ \\t]*[:=][ \\t]*[\\"']?(""")
# credential words the gates see right before an operator: a word ending in "key" or "auth" (the
# key gate), or in a name the entropy detector's pass lists (followed by name characters at most:
# its tail takes them)
_WORD_ENDS = ("key", "auth", "token", "secret", "password", "passwd", "pwd")
_WORDS = frozenset((r"secret(?:_?key)?", r"secret[\w.\-]{0,8}"))
# the key gate's value alphabet, the narrower of the two gates'
_VALUE_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=_-.~")
_MIN_VALUE = 12  # the gates ask for 12 value characters
_MAX_HEAD = 200  # the longest name and word before the operator an anchored rule may match
_BLANKS = frozenset(b"\"' \t:=")  # what lies between a credential word and its value


@dataclass(slots=True)
class AnchoredRule:
    index: int  # the rule's place in the detector's list
    rule: Rule
    prefix: str  # the name and the credential word, before the operator (the head database's expression)
    head_regex: str  # ... and the operator: the regex up to where the value starts
    value_regex: str  # the value (group 1) and what must follow it
    reach: int  # the longest the prefix can be
    # compiled when the rule first has a candidate (most never do in an image: start-up time)
    _compiled: tuple[re.Pattern[bytes], re.Pattern[bytes]] | None = None

    def regexes(self) -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
        """The head, ending where the value starts (``\\Z`` at that end), and the value with what follows."""
        if self._compiled is None:
            flags = self.rule.flags
            self._compiled = (
                re.compile(self.head_regex.encode() + rb"\Z", flags),
                re.compile(self.value_regex.encode(), flags),
            )
        return self._compiled


def anchored_forms(rules: Sequence[Rule]) -> list[AnchoredRule | None]:
    """Each rule's anchored form (None: it keeps its prefilter).  Parsing ~800 regexes to show
    it costs a tenth of a second, paid by every run: the answers are kept on disk beside the
    compiled Hyperscan databases, keyed by the rules' exact regexes and this module's text, and
    read in a millisecond."""
    keys = [f"{r.regex}\0{r.flags}\0{r.group}\0{r.prefilter}" for r in rules]
    h = hashlib.sha256(Path(__file__).read_bytes())  # the analysis itself: a changed one is a miss
    h.update("\1".join(keys).encode("utf-8", "surrogateescape"))
    digest = h.hexdigest()[:40]
    path = default_dir().parent / "hyperscan" / f"anchored-{digest}.json"
    try:
        known = json.loads(path.read_text("utf-8"))
        if not isinstance(known, list) or len(known) != len(rules):
            raise ValueError(path)
        touch(path)
        return [
            None if k is None else _form(i, rule, int(k[0]), int(k[1]), int(k[2]))
            for i, (rule, k) in enumerate(zip(rules, known, strict=True))
        ]
    except (OSError, ValueError, TypeError, IndexError):
        pass
    forms = [anchored_form(i, rule) for i, rule in enumerate(rules)]
    shapes = [None if f is None else [len(f.prefix), len(f.head_regex), f.reach] for f in forms]
    write_atomically(path, json.dumps(shapes).encode())
    return forms


def _form(index: int, rule: Rule, prefix_end: int, head_end: int, reach: int) -> AnchoredRule:
    regex = rule.regex
    if not 0 < prefix_end <= head_end < len(regex) or regex[head_end] != "(":
        raise ValueError(rule.id)
    if not any(regex[: head_end + 1].endswith(op) for op in _OPERATORS):
        raise ValueError(rule.id)
    return AnchoredRule(index, rule, regex[:prefix_end], regex[:head_end], regex[head_end:], reach)


def anchored_form(index: int, rule: Rule) -> AnchoredRule | None:
    """``rule`` as an anchored rule, or None when the gates cannot be shown to see its every match."""
    if rule.group != 1 or rule.prefilter or rule.word_start or rule.flags & ~re.IGNORECASE:
        return None
    regex = rule.regex
    found = [(regex.find(op), op) for op in _OPERATORS if regex.count(op) == 1]
    if len(found) != 1 or found[0][0] <= 0:
        return None
    at, op = found[0]
    prefix = regex[:at]
    rest = regex[at + len(op) - 1 :]
    close = _group_end(rest)
    if close is None or not _word_ok(prefix):
        return None
    try:
        parsed_prefix = sre_parse.parse(prefix, rule.flags)
        parsed_value = sre_parse.parse(rest[: close + 1], rule.flags)
        reach = parsed_prefix.getwidth()[1]
    except (re.error, OverflowError):
        return None
    if parsed_prefix.state.groups > 1 or reach > _MAX_HEAD:  # the value must be group 1
        return None
    if parsed_value.getwidth()[0] < _MIN_VALUE or not _within(parsed_value, _VALUE_CHARS):
        return None
    return AnchoredRule(index, rule, prefix, regex[: at + len(op) - 1], rest, reach)


def _group_end(text: str) -> int | None:
    """The index of the ")" that closes the group ``text`` opens, skipping escapes and classes."""
    depth, i, in_class = 0, 0, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if text[i + 1 : i + 2] == "]":
                i += 1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return None


def _word_ok(prefix: str) -> bool:
    """Whether the prefix ends in credential words the gates know (a group of them, or one)."""
    if prefix.endswith(")"):
        start = _group_start(prefix)
        if start is None:
            return False
        inner = prefix[start:]
        if not inner.startswith("(?:"):
            return False
        words = _top_alternatives(inner[3:-1])
    else:
        m = re.search(r"[a-z_]+$", prefix)
        if m is None:
            return False
        words = [m.group(0)]
    return bool(words) and all(w in _WORDS or _ends_in_word(w) for w in words)


def _ends_in_word(alternative: str) -> bool:
    """Whether every text ``alternative`` matches ends with one of the gates' words: it ends with
    one, as literal characters (not escaped)."""
    return any(alternative.endswith(end) and not alternative[: -len(end)].endswith("\\") for end in _WORD_ENDS)


def _group_start(text: str) -> int | None:
    """Where the group that ``text`` ends with opens."""
    for start in range(len(text) - 1, -1, -1):
        opens = text[start] == "(" and (start == 0 or text[start - 1] != "\\")
        if opens and _group_end(text[start:]) == len(text) - start - 1:
            return start
    return None


def _top_alternatives(text: str) -> list[str]:
    out, depth, cur, i = [], 0, "", 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            cur += text[i : i + 2]
            i += 2
            continue
        if c in "([":
            depth += 1
        elif c in ")]":
            depth -= 1
        if c == "|" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += c
        i += 1
    out.append(cur)
    return out


def _within(parsed: Any, allowed: frozenset[int]) -> bool:
    """Whether every character the parsed pattern can match is in ``allowed`` (both cases of a
    letter count as one: the alphabet holds both)."""
    for op, av in parsed:
        name = str(op)
        if name == "LITERAL":
            if av not in allowed:
                return False
        elif name == "IN":
            for o, a in av:
                kind = str(o)
                if kind == "LITERAL":
                    if a not in allowed:
                        return False
                elif kind == "RANGE":
                    if any(c not in allowed for c in range(a[0], a[1] + 1)):
                        return False
                elif kind == "CATEGORY":
                    if str(a) not in ("CATEGORY_DIGIT", "CATEGORY_WORD"):
                        return False
                else:
                    return False
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            if not _within(av[2], allowed):
                return False
        elif name in ("SUBPATTERN", "ATOMIC_GROUP"):
            if not _within(av[-1], allowed):
                return False
        elif name == "BRANCH":
            if not all(_within(branch, allowed) for branch in av[1]):
                return False
        else:  # any character, a negated class, an assertion, a back reference: not shown
            return False
    return True


def value_starts(data: bytes, names: bool, key_ends: list[int]) -> list[int]:
    """Where the values of the window's assignments start: after each secret-like name's tail
    (``names``: the name gate fired) and 12 characters before each key gate event.  A value that
    starts with "=" right after a ":" is listed both ways (``:=`` is an operator too)."""
    starts = {m.start(2) for _, _, m in tails(data)} if names else set()
    starts.update(end - KEY_GATE_VALUE for end in key_ends)
    starts.update([s - 1 for s in starts if s > 0 and data[s - 1] == 61])
    return sorted(starts)


def head_region(data: bytes, start: int, reach: int) -> int:
    """Where a head ending at ``start`` can begin: back over the operator, its blanks and quotes,
    then the longest name and word an anchored rule matches."""
    at = start
    while at > 0 and data[at - 1] in _BLANKS:
        at -= 1
    return max(0, at - reach)
