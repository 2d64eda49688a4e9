"""Pattern detector: declarative rules, a keyword prefilter, regexes only where a keyword occurs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import ahocorasick

from ..models import Severity
from .interface import Detector, Match
from .rules import BUILTIN_RULES, Rule

_WORD = [chr(c).isalnum() or c == ord("_") for c in range(128)] + [False] * 128


class PatternDetector(Detector):
    name = "pattern"

    def __init__(self, rules: Iterable[Rule] = BUILTIN_RULES) -> None:
        self._rules = [(rule, rule.compile(), tuple(k.encode() for k in rule.keywords)) for rule in rules]
        self.max_match_len = max((rule.max_len for rule, _, _ in self._rules), default=1)
        # one pass over the lower-cased window tells which keywords occur (instead of one scan per keyword)
        self._keywords = ahocorasick.Automaton()
        for rule in self.rules:
            for keyword in rule.keywords:
                self._keywords.add_word(keyword, keyword.encode())
        self._keywords.make_automaton()

    @property
    def rules(self) -> list[Rule]:
        return [rule for rule, _, _ in self._rules]

    def find(self, data: bytes) -> Iterator[Match]:
        present = {k for _, k in self._keywords.iter(data.lower().decode("latin-1"))}
        for rule, regex, keywords in self._rules:
            if keywords and not any(k in present for k in keywords):
                continue
            for m in regex.finditer(data):
                if rule.word_start and m.start() > 0 and _WORD[data[m.start() - 1]]:
                    continue
                secret = m.group(rule.group)
                if not secret or (rule.validate is not None and not rule.validate(secret)):
                    continue
                severity = rule.severity
                if rule.verify is not None:  # a checksum that holds proves the format
                    severity = Severity.CRITICAL if rule.verify(secret) else rule.severity
                yield Match(
                    rule_id=rule.id,
                    severity=severity,
                    description=rule.description,
                    start=m.start(rule.group),
                    end=m.end(rule.group),
                    secret=secret,
                )
