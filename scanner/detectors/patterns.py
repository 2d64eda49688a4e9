"""Pattern detector: declarative rules, a Hyperscan prefilter, regexes only where they can match."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..models import Severity
from .anchored import anchored_forms, head_region, value_starts
from .entropy import KEY_GATE, NAME_GATE
from .interface import Match
from .prefilter import PassDetector, pass_for, prefilter_expression
from .rules import BUILTIN_RULES, Rule
from .rules.model import random_shaped

_WORD = [chr(c).isalnum() or c == ord("_") for c in range(128)] + [False] * 128


class PatternDetector(PassDetector):
    """Rules as data; Hyperscan tells which rules can match a window, their regexes confirm.

    A rule anchored on an assignment (anchored.py) has no expression of its own: it waits for the
    two assignment gates, the last two expressions, and is tried at the values they find."""

    name = "pattern"

    def __init__(self, rules: Iterable[Rule] = BUILTIN_RULES) -> None:
        self._rules = list(rules)
        # Python regexes are compiled when their rule first has a candidate: most rules never do in
        # an image, and compiling all of them was a sixth of every run's start-up
        self._compiled: list[re.Pattern[bytes] | None] = [None] * len(self._rules)
        self.max_match_len = max((rule.max_len for rule in self._rules), default=1)
        anchored = anchored_forms(self._rules)
        self._anchored = [a for a in anchored if a is not None]
        self._plain = [i for i, a in enumerate(anchored) if a is None]
        self._expressions = [
            prefilter_expression(rule.prefilter or (rule.regex[2:] if rule.word_start else rule.regex), rule.flags)
            for rule in (self._rules[i] for i in self._plain)
        ]
        if self._anchored:
            self._name_gate = len(self._expressions)
            self._expressions += [NAME_GATE, KEY_GATE]
            self._heads = pass_for([[prefilter_expression(a.prefix, a.rule.flags) for a in self._anchored]])
            self._reach = max(a.reach for a in self._anchored)

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def _regex(self, index: int) -> re.Pattern[bytes]:
        regex = self._compiled[index]
        if regex is None:
            regex = self._compiled[index] = self._rules[index].compile()
        return regex

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        if not events:
            return
        lowered: bytes | None = None
        plain = len(self._plain)
        gated = {i for i, _, _ in events}
        ungated = {self._plain[i] for i, start, _ in events if start < 0 and i < plain}
        anchored = self._anchored_matches(data, path, events) if max(gated) >= plain else {}
        for index in sorted({self._plain[i] for i in gated if i < plain} | anchored.keys()):
            rule = self._rules[index]
            if index in anchored:
                yield from anchored[index]
                continue
            if rule.paths and not rule.applies_to(path):
                continue
            if index in ungated and rule.keywords:  # no Hyperscan gate: the keywords are it
                lowered = data.lower() if lowered is None else lowered
                if not any(k.encode() in lowered for k in rule.keywords):
                    continue
            for m in self._regex(index).finditer(data):
                if rule.word_start and m.start() > 0 and _WORD[data[m.start() - 1]]:
                    continue
                found = _match(rule, m.group(rule.group), m.start(rule.group), m.end(rule.group), m.group(0))
                if found is not None:
                    yield found

    def _anchored_matches(
        self, data: bytes, path: str | None, events: list[tuple[int, int, int]]
    ) -> dict[int, list[Match]]:
        """The anchored rules' matches in a window where an assignment gate fired, by rule."""
        key = self._name_gate + 1
        names = any(i == self._name_gate for i, _, _ in events)
        key_ends = [end for i, _, end in events if i == key and end >= 0]
        if any(i >= self._name_gate and start < 0 for i, start, _ in events):  # a gate Hyperscan lacks
            names, key_ends = True, [m.end() for m in re.finditer(b"(?i)" + KEY_GATE[0], data)]
        out: dict[int, list[Match]] = {}
        seen: set[tuple[int, int]] = set()
        for start in value_starts(data, names, key_ends):
            lo = head_region(data, start, self._reach)
            flagged = {i for i, _, _ in self._heads.scan(data[lo:start])[0]}
            for k in sorted(flagged):
                a = self._anchored[k]
                if (a.index, start) in seen or (a.rule.paths and not a.rule.applies_to(path)):
                    continue
                head_re, value_re = a.regexes()
                head = head_re.search(data, head_region(data, start, a.reach), start)
                if head is None:
                    continue
                value = value_re.match(data, start)
                if value is None:
                    continue
                seen.add((a.index, start))
                found = _match(a.rule, value.group(1), start, value.end(1), data[head.start() : value.end()])
                if found is not None:
                    out.setdefault(a.index, []).append(found)
        return out


def _match(rule: Rule, secret: bytes, start: int, end: int, whole: bytes) -> Match | None:
    """A rule's match of ``secret`` at [start, end) (``whole``: all the rule's regex matched), when
    its validators take it."""
    if not secret or (rule.validate is not None and not rule.validate(secret)):
        return None
    if rule.structure and not random_shaped(secret):
        return None  # a table, a run, the alphabet: not a token of any vendor
    severity, confidence = rule.severity, rule.confidence
    if not rule.structure and confidence == "high":
        confidence = "medium"  # a free-form value in its context: a vendor's format says more
    proven = rule.verify is not None and rule.verify(secret)
    if proven:  # a checksum that holds proves the format
        severity, confidence = Severity.CRITICAL, "high"
    return Match(
        rule_id=rule.id,
        severity=severity,
        description=rule.description,
        start=start,
        end=end,
        secret=secret,
        confidence=confidence,
        proven=proven,
        downgrade=rule.downgrade(whole) if rule.downgrade is not None and not proven else None,
    )
