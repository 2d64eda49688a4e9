"""Pattern detector: declarative rules, a Hyperscan prefilter, regexes only where they can match."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..models import Severity
from .interface import Match
from .prefilter import PassDetector, prefilter_expression
from .rules import BUILTIN_RULES, Rule
from .rules.model import random_shaped

_WORD = [chr(c).isalnum() or c == ord("_") for c in range(128)] + [False] * 128


class PatternDetector(PassDetector):
    """Rules as data; Hyperscan tells which rules can match a window, their regexes confirm."""

    name = "pattern"

    def __init__(self, rules: Iterable[Rule] = BUILTIN_RULES) -> None:
        self._rules = list(rules)
        # Python regexes are compiled when their rule first has a candidate: most rules never do in
        # an image, and compiling all of them was a sixth of every run's start-up
        self._compiled: list[re.Pattern[bytes] | None] = [None] * len(self._rules)
        self.max_match_len = max((rule.max_len for rule in self._rules), default=1)
        self._expressions = [
            prefilter_expression(rule.prefilter or (rule.regex[2:] if rule.word_start else rule.regex), rule.flags)
            for rule in self._rules
        ]

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules)

    def _regex(self, index: int) -> re.Pattern[bytes]:
        regex = self._compiled[index]
        if regex is None:
            regex = self._compiled[index] = self._rules[index].compile()
        return regex

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        lowered: bytes | None = None
        ungated = {i for i, start, _ in events if start < 0}
        for index in sorted({i for i, _, _ in events}):
            rule = self._rules[index]
            if rule.paths and not rule.applies_to(path):
                continue
            if index in ungated and rule.keywords:  # no Hyperscan gate: the keywords are it
                lowered = data.lower() if lowered is None else lowered
                if not any(k.encode() in lowered for k in rule.keywords):
                    continue
            for m in self._regex(index).finditer(data):
                if rule.word_start and m.start() > 0 and _WORD[data[m.start() - 1]]:
                    continue
                secret = m.group(rule.group)
                if not secret or (rule.validate is not None and not rule.validate(secret)):
                    continue
                if rule.structure and not random_shaped(secret):
                    continue  # a table, a run, the alphabet: not a token of any vendor
                severity, confidence = rule.severity, rule.confidence
                if not rule.structure and confidence == "high":
                    confidence = "medium"  # a free-form value in its context: a vendor's format says more
                proven = rule.verify is not None and rule.verify(secret)
                if proven:  # a checksum that holds proves the format
                    severity, confidence = Severity.CRITICAL, "high"
                yield Match(
                    rule_id=rule.id,
                    severity=severity,
                    description=rule.description,
                    start=m.start(rule.group),
                    end=m.end(rule.group),
                    secret=secret,
                    confidence=confidence,
                    proven=proven,
                    downgrade=rule.downgrade(m.group(0)) if rule.downgrade is not None and not proven else None,
                )
