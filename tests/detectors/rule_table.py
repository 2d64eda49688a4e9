"""Every built-in rule with its family, vendor, examples and negatives, for tests and benchmarks.

The rules of ``scanner/detectors/rules/data/*.toml`` (one file per vendor family) are read here,
and those the built-in rule set does not hold yet are made into rules (with the loader,
``scanner.detectors.rules.loader``, when there is one; else by the same mapping), so that a family
file counts before and after the loader is merged.  The rules of the Python modules (cloud, code,
saas, keys) have one example and one negative each (``sample``, ``negative``).
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.detectors.rules import BUILTIN_RULES, Rule, model
from scanner.models import Severity

DATA = Path(model.__file__).with_name("data")


@dataclass(frozen=True)
class Case:
    rule: Rule
    family: str
    vendor: str
    examples: tuple[str, ...]
    negatives: tuple[str, ...]


def _all_of(checks: tuple[Callable[[bytes], bool], ...]) -> Callable[[bytes], bool] | None:
    if not checks:
        return None
    return lambda value: all(check(value) for check in checks)


def _rule_of(doc: dict[str, Any], path: Path) -> Rule:
    try:
        loader: Any = importlib.import_module("scanner.detectors.rules.loader")
    except ImportError:
        loader = None
    if loader is not None:
        return loader.rule_from(doc, str(path), builtin=True)  # type: ignore[no-any-return]
    named = {"not_placeholder": model.not_placeholder, "docker_auth": model.docker_auth}
    named["twitter_bearer"] = model.twitter_bearer
    validators = doc.get("validators", ["random_shaped"])
    checks = [named[v] for v in validators if v != "random_shaped"]
    downgrades = {"demo_url": model.demo_url, "demo_basic_auth": model.demo_basic_auth}
    downgrades["expired_sas"] = model.expired_sas
    return Rule(
        id=doc["id"],
        description=doc["description"],
        regex=doc["regex"],
        keywords=tuple(doc["keywords"]),
        severity=Severity(doc["severity"]),
        sample=doc["examples"][0],
        negative=doc["negatives"][0],
        group=doc.get("group", 0),
        flags=re.IGNORECASE if doc.get("ignore_case") else 0,
        validate=_all_of(tuple(checks)),
        verify=model.crc32_base62_checksum if doc.get("verify") == "crc32_base62" else None,
        downgrade=downgrades[doc["downgrade"]] if "downgrade" in doc else None,
        max_len=doc.get("max_len", 512),
        confidence=doc.get("confidence", "high"),
        paths=tuple(doc.get("paths", ())),
        prefilter=doc.get("prefilter"),
        structure="random_shaped" in validators,
    )


def _module_family() -> dict[str, str]:
    out = {}
    for family in ("cloud", "code", "saas", "keys"):
        try:
            module = importlib.import_module(f"scanner.detectors.rules.{family}")
        except ImportError:
            continue
        for rule in getattr(module, family.upper(), ()):
            out[rule.id] = family
    return out


def cases(files: list[Path] | None = None) -> list[Case]:
    """Every built-in rule (and every rule of the family files) as a table case."""
    builtin = {rule.id: rule for rule in BUILTIN_RULES}
    out: list[Case] = []
    seen: set[str] = set()
    for path in sorted(DATA.glob("*.toml")) if files is None else files:
        data = tomllib.loads(path.read_text("utf-8"))
        for doc in data["rules"]:
            rule = builtin.get(doc["id"]) or _rule_of(doc, path)
            out.append(Case(rule, data["family"], doc["vendor"], tuple(doc["examples"]), tuple(doc["negatives"])))
            seen.add(rule.id)
    if files is not None:
        return out
    families = _module_family()
    for rule in BUILTIN_RULES:
        if rule.id not in seen:
            vendor = rule.id.split("-")[0]
            out.append(Case(rule, families.get(rule.id, "builtin"), vendor, (rule.sample,), (rule.negative,)))
    return out


def all_rules(table: list[Case]) -> tuple[Rule, ...]:
    """The built-in rules and those of the family files the built-in set does not hold yet."""
    ids = {rule.id for rule in BUILTIN_RULES}
    return BUILTIN_RULES + tuple(c.rule for c in table if c.rule.id not in ids)


def where(rule: Rule) -> str:
    """A path the rule applies to (its first glob made a file name), else a neutral text file."""
    if rule.paths:
        return "app/" + rule.paths[0].replace("*/", "").replace("*", "app")
    return "app/notes.txt"
