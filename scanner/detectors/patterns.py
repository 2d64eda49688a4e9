"""Pattern detector: declarative rules, a keyword prefilter, regexes only where a keyword occurs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .interface import Detector, Match
from .rules import BUILTIN_RULES, Rule


class PatternDetector(Detector):
    name = "pattern"

    def __init__(self, rules: Iterable[Rule] = BUILTIN_RULES) -> None:
        self._rules = [(rule, rule.compile(), tuple(k.encode() for k in rule.keywords)) for rule in rules]
        self.max_match_len = max((rule.max_len for rule, _, _ in self._rules), default=1)

    @property
    def rules(self) -> list[Rule]:
        return [rule for rule, _, _ in self._rules]

    def find(self, data: bytes) -> Iterator[Match]:
        lowered = data.lower()
        for rule, regex, keywords in self._rules:
            if keywords and not any(k in lowered for k in keywords):
                continue
            for m in regex.finditer(data):
                secret = m.group(rule.group)
                if not secret or (rule.validate is not None and not rule.validate(secret)):
                    continue
                yield Match(
                    rule_id=rule.id,
                    severity=rule.severity,
                    description=rule.description,
                    start=m.start(rule.group),
                    end=m.end(rule.group),
                    secret=secret,
                )
