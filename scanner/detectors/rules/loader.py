"""Rules as data: the TOML rule files of ``data/`` (one per vendor family), and users' own.

A file is ``family``, ``description`` and ``[[rules]]`` tables (the keys are listed below and in
docs/detection.md).  A built-in rule does not load without its vendor, the reference of its format,
at least one example (a template the tests expand, which the rule must flag) and one negative (which
it must not); a user's rule needs only an id and a regex.  Whatever is wrong with a file is refused
with the file and the rule id, never skipped.
"""

from __future__ import annotations

import contextlib
import functools
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...errors import RuleError
from ...models import Severity
from .model import DOWNGRADES, VALIDATORS, VERIFIERS, Rule, all_of

DATA = Path(__file__).with_name("data")

REQUIRED = frozenset(
    {"id", "vendor", "description", "regex", "keywords", "severity", "examples", "negatives", "reference"}
)
OPTIONAL = frozenset(
    {"group", "confidence", "ignore_case", "validators", "verify", "downgrade", "paths", "prefilter", "max_len"}
)
KNOWN = REQUIRED | OPTIONAL
USER_REQUIRED = frozenset({"id", "regex"})
USER_KNOWN = KNOWN | {"random"}  # the first custom-rule format's switch for the random_shaped check
SEVERITIES = {s.value: s for s in Severity}
CONFIDENCES = ("high", "medium")
_ID = re.compile(r"[a-z0-9][a-z0-9\-]*")


@functools.cache
def builtin_rules(*, check_regexes: bool = False) -> tuple[Rule, ...]:
    """Every rule of ``data/*.toml``, loaded once per process.  Their regexes are compiled when a
    rule first has a candidate (compiling them all here would double every run's start-up): the
    tests load them with ``check_regexes``, which refuses a bad regex or group as for a user's rule."""
    return load_files(sorted(DATA.glob("*.toml")), builtin=True, check_regexes=check_regexes)


def load_files(
    paths: Iterable[Path], *, builtin: bool = False, taken: Iterable[str] = (), check_regexes: bool = True
) -> tuple[Rule, ...]:
    """The rules of several files; an id may appear once across them all (and not in ``taken``)."""
    seen = dict.fromkeys(taken, "the built-in rules")
    rules: list[Rule] = []
    for path in paths:
        for rule in load_file(path, builtin=builtin, check_regexes=check_regexes):
            if rule.id in seen:
                raise RuleError(f"{path}: rule {rule.id!r}: duplicate id (also in {seen[rule.id]})")
            seen[rule.id] = str(path)
            rules.append(rule)
    return tuple(rules)


def load_file(path: Path, *, builtin: bool = False, check_regexes: bool = True) -> tuple[Rule, ...]:
    try:
        doc = _parsed(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleError(f"{path}: {type(exc).__name__}: {str(exc)[:160]}") from None
    if builtin and doc.get("family") != path.stem:
        raise RuleError(f"{path}: family must be the file's name, {path.stem!r}")
    unknown = set(doc) - {"family", "description", "rules"}
    if unknown:
        raise RuleError(f"{path}: unknown key(s) {', '.join(sorted(unknown))}")
    specs = doc.get("rules", [])
    if not isinstance(specs, list):
        raise RuleError(f"{path}: rules must be an array of tables ([[rules]])")
    return tuple(
        rule_from(
            spec,
            f"{path}: rule {spec.get('id', n) if isinstance(spec, dict) else n!r}",
            builtin=builtin,
            check_regexes=check_regexes,
        )
        for n, spec in enumerate(specs)
    )


def _parsed(text: str) -> dict[str, Any]:
    """A rule file's TOML, parsed.  tomllib is pure Python: the built-in files (some 14,000 lines)
    took 70 ms to parse on every run, so their parse is kept beside the compiled Hyperscan
    databases as JSON (a tenth of the time to read), under the SHA-256 of the file's text: a
    changed file is parsed again, and the JSON holds nothing but what the file says."""
    import hashlib
    import json

    from ...cache import default_dir, touch, write_atomically

    stored = default_dir().parent / "rules" / f"{hashlib.sha256(text.encode()).hexdigest()[:40]}.json"
    try:
        doc = json.loads(stored.read_text(encoding="utf-8"))
        if isinstance(doc, dict):
            touch(stored)
            return doc
    except (OSError, ValueError, RecursionError):
        pass
    doc = tomllib.loads(text)
    with contextlib.suppress(OSError):  # a read-only cache: parsed every time
        write_atomically(stored, json.dumps(doc).encode())
    return doc


def rule_from(spec: object, where: str, *, builtin: bool = False, check_regexes: bool = True) -> Rule:
    """One rule from its table.  ``builtin``: the strict form every shipped rule is held to."""
    if not isinstance(spec, dict):
        raise RuleError(f"{where}: must be a table")
    missing = (REQUIRED if builtin else USER_REQUIRED) - set(spec)
    if missing:
        raise RuleError(f"{where}: missing {', '.join(sorted(missing))}")
    unknown = set(spec) - (KNOWN if builtin else USER_KNOWN)
    if unknown:
        raise RuleError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    get = _Getter(spec, where)
    rule_id = get.text("id")
    if not (_ID.fullmatch(rule_id) if builtin else rule_id.strip()):
        raise RuleError(f"{where}: an id is lower-case letters, digits and dashes")
    examples, negatives = get.strings("examples"), get.strings("negatives")
    keywords = get.strings("keywords")
    if builtin:
        if not examples or not negatives:
            raise RuleError(f"{where}: needs at least one example and one negative")
        if not keywords:
            raise RuleError(f"{where}: needs at least one keyword")
        if not get.text("reference") or not get.text("vendor"):
            raise RuleError(f"{where}: needs its vendor and the reference of its format")
    if any(k != k.lower() for k in keywords):
        raise RuleError(f"{where}: keywords are lower-case")
    severity = SEVERITIES.get(get.text("severity", "high"))
    if severity is None:
        raise RuleError(f"{where}: severity must be one of {', '.join(SEVERITIES)}")
    confidence = get.text("confidence", "high")
    if confidence not in CONFIDENCES:
        raise RuleError(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}")
    if "validators" in spec:
        names = get.strings("validators")
    else:  # a vendor token is random; a user's own format is checked only if asked ("random")
        names = ["random_shaped"] if builtin or get.flag("random") else []
    checks = tuple(_named(VALIDATORS, name, "validator", where) for name in names if name != "random_shaped")
    verify = _named(VERIFIERS, get.text("verify"), "verify", where) if "verify" in spec else None
    downgrade = _named(DOWNGRADES, get.text("downgrade"), "downgrade", where) if "downgrade" in spec else None
    description = get.text("description", rule_id)
    rule = Rule(
        id=rule_id,
        description=description,
        regex=get.text("regex"),
        keywords=tuple(keywords),
        severity=severity,
        sample=examples[0] if examples else "",
        negative=negatives[0] if negatives else "",
        group=get.integer("group", 0),
        flags=re.IGNORECASE if get.flag("ignore_case") else 0,
        validate=all_of(checks),
        verify=verify,
        max_len=get.integer("max_len", 512),
        confidence=confidence,
        paths=tuple(get.strings("paths")),
        prefilter=get.text("prefilter") if "prefilter" in spec else None,
        downgrade=downgrade,
        structure="random_shaped" in names,
        vendor=get.text("vendor", ""),
        reference=get.text("reference", ""),
        examples=tuple(examples),
        negatives=tuple(negatives),
    )
    if rule.max_len < 1:
        raise RuleError(f"{where}: max_len must be positive")
    if check_regexes:
        _check_regexes(rule, where)
    return rule


def _check_regexes(rule: Rule, where: str) -> None:
    try:
        compiled = rule.compile()
    except re.error as exc:
        raise RuleError(f"{where}: bad regex: {exc}") from None
    if not 0 <= rule.group <= compiled.groups:
        raise RuleError(f"{where}: group {rule.group} but the regex has {compiled.groups}")
    if rule.prefilter is not None:
        try:
            re.compile(rule.prefilter.encode(), rule.flags)
        except re.error as exc:
            raise RuleError(f"{where}: bad prefilter: {exc}") from None


def _named(table: dict[str, Any], name: str, what: str, where: str) -> Any:
    if name not in table:
        raise RuleError(f"{where}: unknown {what} {name!r} (known: {', '.join(table)})")
    return table[name]


class _Getter:
    """Typed access to a rule's table: a wrong type is refused with the rule's place."""

    def __init__(self, spec: dict[str, Any], where: str) -> None:
        self.spec, self.where = spec, where

    def _get(self, key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = self.spec.get(key, default)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise RuleError(f"{self.where}: {key} has the wrong type ({type(value).__name__})")
        return value

    def text(self, key: str, default: str | None = None) -> str:
        return str(self._get(key, str, default))

    def integer(self, key: str, default: int) -> int:
        return int(self._get(key, int, default))

    def flag(self, key: str) -> bool:
        return bool(self._get(key, bool, False))

    def strings(self, key: str) -> list[str]:
        value = self._get(key, list, [])
        if not all(isinstance(v, str) for v in value):
            raise RuleError(f"{self.where}: {key} must be a list of strings")
        return list(value)
