"""The rule type, its validators, and a rule set with user additions and removals."""

from __future__ import annotations

import base64
import binascii
import re
import tomllib
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ...errors import UsageError
from ...models import Severity

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW
I = re.IGNORECASE  # noqa: E741


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    regex: str
    keywords: tuple[str, ...]
    severity: Severity
    sample: str = ""
    negative: str = ""
    group: int = 0
    flags: int = 0
    validate: Callable[[bytes], bool] | None = field(default=None, compare=False)
    # a checksum or structure check that, when it passes, proves the format: severity critical
    verify: Callable[[bytes], bool] | None = field(default=None, compare=False)
    max_len: int = 512
    confidence: str = "high"  # "medium" for rules that match a value by the name it is assigned to

    @property
    def word_start(self) -> bool:
        """A leading \\b, checked in Python after the match so that the regex starts with a
        literal and the regex engine can skip ahead to it (a leading \\b makes it try every byte)."""
        return self.regex.startswith("\\b")

    def compile(self) -> re.Pattern[bytes]:
        regex = self.regex[2:] if self.word_start else self.regex
        return re.compile(regex.encode(), self.flags)


def R(
    id: str,
    description: str,
    regex: str,
    keywords: tuple[str, ...],
    severity: Severity,
    sample: str,
    negative: str,
    **kw: object,
) -> Rule:
    return Rule(id, description, regex, keywords, severity, sample, negative, **kw)  # type: ignore[arg-type]


# --- validators ----------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(
    rb"^(?:\$\{?\w+\}?|\{\{.*\}\}|<[^>]*>|%\w+%|\*+|x+|\.+|pass(?:word)?|secret|changeme|user|token|none|null)$",
    re.IGNORECASE,
)


def not_placeholder(value: bytes) -> bool:
    return not _PLACEHOLDER.match(value)


def docker_auth(value: bytes) -> bool:
    try:
        decoded = base64.b64decode(value + b"=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    return bool(sep and user and password)


_B62 = (
    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
)


def base62(n: int, alphabet: bytes = _B62[0], width: int = 6) -> bytes:
    out = b""
    while n:
        n, r = divmod(n, 62)
        out = alphabet[r : r + 1] + out
    return out.rjust(width, alphabet[:1])


def crc32_base62_checksum(token: bytes) -> bool:
    """GitHub's and npm's token formats: the last 6 characters are the base62 CRC32 of the 30
    random characters before them (github.blog, 2021-04-05 and 2021-09-23)."""
    body = token.rpartition(b"_")[2]
    if len(body) != 36:
        return False
    payload, check = body[:30], body[30:]
    crc = zlib.crc32(payload) & 0xFFFFFFFF
    return any(base62(crc, alphabet) == check for alphabet in _B62)


# --- a rule set ----------------------------------------------------------------------------------

SEVERITIES = {s.value: s for s in Severity}


@dataclass(frozen=True)
class RuleSet:
    rules: tuple[Rule, ...]
    detect_secrets: bool = True

    @classmethod
    def load(cls, builtin: Iterable[Rule], config: Path | None = None) -> RuleSet:
        """Built-in rules, with the [rules] table of a TOML config applied (see README)."""
        rules = {r.id: r for r in builtin}
        if config is None:
            return cls(tuple(rules.values()))
        try:
            doc = tomllib.loads(config.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise UsageError(f"--config {config}: {type(exc).__name__}: {str(exc)[:160]}") from None
        table = doc.get("rules", {})
        if not isinstance(table, dict):
            raise UsageError(f"--config {config}: [rules] must be a table")
        for rule_id in table.get("disable", []):
            if rule_id not in rules:
                raise UsageError(f"--config {config}: cannot disable unknown rule {rule_id!r}")
            del rules[rule_id]
        for n, spec in enumerate(table.get("custom", [])):
            rule = _custom_rule(spec, f"--config {config}: rules.custom[{n}]")
            if rule.id in rules:
                raise UsageError(f"--config {config}: rule id {rule.id!r} is already taken")
            rules[rule.id] = rule
        return cls(tuple(rules.values()), detect_secrets=bool(table.get("detect_secrets_plugins", True)))


def _custom_rule(spec: object, where: str) -> Rule:
    if not isinstance(spec, dict):
        raise UsageError(f"{where}: must be a table")
    missing = {"id", "regex"} - set(spec)
    if missing:
        raise UsageError(f"{where}: missing {', '.join(sorted(missing))}")
    severity = SEVERITIES.get(str(spec.get("severity", "high")))
    if severity is None:
        raise UsageError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    rule = Rule(
        id=str(spec["id"]),
        description=str(spec.get("description", spec["id"])),
        regex=str(spec["regex"]),
        keywords=tuple(str(k).lower() for k in spec.get("keywords", [])),
        severity=severity,
        group=int(spec.get("group", 0)),
        flags=I if spec.get("ignore_case") else 0,
    )
    try:
        compiled = rule.compile()
    except re.error as exc:
        raise UsageError(f"{where}: bad regex: {exc}") from None
    if rule.group > compiled.groups:
        raise UsageError(f"{where}: group {rule.group} but the regex has {compiled.groups}")
    return rule
