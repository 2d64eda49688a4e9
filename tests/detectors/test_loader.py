"""The rule loader: data files in the format of every family file, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from scanner.detectors import BUILTIN_RULES, RuleSet
from scanner.detectors.patterns import PatternDetector
from scanner.detectors.rules import loader, model
from scanner.errors import RuleError, UsageError
from tests.detectors.samples import expand

GOOD: dict[str, Any] = {
    "id": "acme-deploy-token",
    "vendor": "ACME",
    "description": "ACME deploy token",
    "regex": r"\bacme_([a-z0-9]{32})\b",
    "group": 1,
    "keywords": ["acme_"],
    "severity": "high",
    "examples": ["acme_{l32}"],
    "negatives": ["acme_{l8}"],
    "reference": "https://docs.acme.example/tokens",
}


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "'''" + str(value) + "'''"


def write(tmp_path: Path, *rules: dict[str, Any], family: str = "acme") -> Path:
    path = tmp_path / f"{family}.toml"
    text = f'family = "{family}"\ndescription = "test"\n'
    for rule in rules:
        text += "\n[[rules]]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in rule.items())
    path.write_text(text)
    return path


def test_a_good_file_loads(tmp_path: Path) -> None:
    (rule,) = loader.load_file(write(tmp_path, GOOD), builtin=True)
    assert (rule.vendor, rule.reference, rule.group, rule.structure) == ("ACME", GOOD["reference"], 1, True)
    assert rule.examples == ("acme_{l32}",) and rule.sample == "acme_{l32}"
    text = expand(rule.sample)
    assert [m.secret for m in PatternDetector([rule]).find(text.encode())] == [text[5:].encode()]


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


@pytest.mark.parametrize(
    ("rule", "why"),
    [
        (_without("examples"), "missing examples"),
        (_without("negatives"), "missing negatives"),
        ({**GOOD, "examples": []}, "at least one example"),
        ({**GOOD, "negatives": []}, "at least one example and one negative"),
        (_without("reference"), "missing reference"),
        ({**GOOD, "reference": ""}, "reference"),
        (_without("vendor"), "missing vendor"),
        ({**GOOD, "colour": "red"}, "unknown key(s) colour"),
        ({**GOOD, "validators": ["looks_fine"]}, "unknown validator 'looks_fine'"),
        ({**GOOD, "verify": "luhn"}, "unknown verify 'luhn'"),
        ({**GOOD, "downgrade": "maybe"}, "unknown downgrade 'maybe'"),
        ({**GOOD, "regex": "acme_(["}, "bad regex"),
        ({**GOOD, "group": 2}, "group 2 but the regex has 1"),
        ({**GOOD, "severity": "dire"}, "severity must be one of"),
        ({**GOOD, "confidence": "sure"}, "confidence must be one of"),
        ({**GOOD, "keywords": ["ACME_"]}, "keywords are lower-case"),
        ({**GOOD, "keywords": []}, "at least one keyword"),
        ({**GOOD, "id": "Acme_Token"}, "an id is lower-case"),
        ({**GOOD, "max_len": "long"}, "max_len has the wrong type"),
    ],
)
def test_the_loader_refuses(tmp_path: Path, rule: dict[str, Any], why: str) -> None:
    path = write(tmp_path, rule)
    with pytest.raises(RuleError) as caught:
        loader.load_files([path], builtin=True)
    assert why in caught.value.message
    assert str(path) in caught.value.message and f"rule {rule['id']!r}" in caught.value.message


def test_the_loader_refuses_a_duplicate_id(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="duplicate id"):
        loader.load_files([write(tmp_path, GOOD, GOOD)], builtin=True)
    other = {**GOOD, "id": "github-token"}
    with pytest.raises(RuleError, match="'github-token': duplicate id"):
        loader.load_files([write(tmp_path, other)], builtin=True, taken=(r.id for r in BUILTIN_RULES))


def test_the_family_is_the_file_name(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, family="acme")
    path.rename(tmp_path / "other.toml")
    with pytest.raises(RuleError, match="family must be the file's name"):
        loader.load_file(tmp_path / "other.toml", builtin=True)


def test_validators_map_onto_the_rule() -> None:
    doc = {**GOOD, "validators": ["random_shaped", "docker_auth"], "downgrade": "demo_url", "verify": "crc32_base62"}
    rule = loader.rule_from(doc, "x", builtin=True)
    assert rule.structure and rule.validate is model.docker_auth
    assert rule.verify is model.crc32_base62_checksum and rule.downgrade is model.demo_url
    free = loader.rule_from({**GOOD, "validators": ["not_placeholder"]}, "x", builtin=True)
    assert not free.structure and free.validate is model.not_placeholder
    both = loader.rule_from({**GOOD, "validators": ["not_placeholder", "docker_auth"]}, "x", builtin=True)
    assert both.validate is not None and not both.validate(b"notbase64!!")


def test_users_rules_in_the_new_format(tmp_path: Path) -> None:
    """[[rules.custom]] in the first format and in the rule files' format, and [rules] files."""
    user = {k: v for k, v in GOOD.items() if k not in ("examples", "negatives", "vendor", "reference")}
    write(tmp_path, {**user, "id": "acme-from-file"}, family="mine")
    config = tmp_path / "leakscan.toml"
    config.write_text(
        '[rules]\nfiles = ["mine.toml"]\n\n[[rules.custom]]\nid = "old-style"\nregex = "old_[0-9]{8}"\nrandom = true\n'
        '\n[[rules.custom]]\nid = "new-style"\nvendor = "ACME"\nregex = "new_([0-9]{8})"\ngroup = 1\n'
        'keywords = ["new_"]\nvalidators = ["not_placeholder"]\nreference = "https://docs.acme.example"\n'
    )
    rules = {r.id: r for r in RuleSet.load(BUILTIN_RULES, config).rules}
    assert rules["old-style"].structure and rules["old-style"].validate is None
    assert rules["new-style"].vendor == "ACME" and rules["new-style"].validate is model.not_placeholder
    assert rules["acme-from-file"].group == 1 and not rules["acme-from-file"].structure
    config.write_text('[[rules.custom]]\nid = "x"\nregex = "x"\nexamples = "not a list"\n')
    with pytest.raises(UsageError, match=r"rules.custom\[0\]: examples has the wrong type"):
        RuleSet.load(BUILTIN_RULES, config)
    config.write_text('[[rules.custom]]\nid = "github-token"\nregex = "x"\n')
    with pytest.raises(UsageError, match="already taken"):
        RuleSet.load(BUILTIN_RULES, config)


def test_builtin_rules_load_once() -> None:
    assert loader.builtin_rules() is loader.builtin_rules() and loader.builtin_rules() == BUILTIN_RULES
