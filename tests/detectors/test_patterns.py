"""Table tests: every built-in rule has a positive and a negative case (its sample templates,
expanded with fresh random characters on every run), plus hand-written edge cases."""

from __future__ import annotations

import base64
import zlib

import pytest

from scanner.detectors.detect_secrets_plugins import DetectSecretsDetector
from scanner.detectors.patterns import PatternDetector
from scanner.detectors.rules import BUILTIN_RULES
from scanner.detectors.rules.model import base62, crc32_base62_checksum
from scanner.models import Severity
from tests.detectors.samples import expand

DETECTOR = PatternDetector()
RULES = {r.id: r for r in BUILTIN_RULES}


def found(text: str) -> set[str]:
    return {m.rule_id for m in DETECTOR.find(("x = 1\n" + text + "\n").encode())}


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: r.id)
@pytest.mark.parametrize("run", range(8))
def test_rule_flags_its_sample(rule, run: int) -> None:  # type: ignore[no-untyped-def]
    text = expand(rule.sample)
    assert rule.id in found(text), text


@pytest.mark.parametrize("rule", BUILTIN_RULES, ids=lambda r: r.id)
def test_rule_ignores_its_negative(rule) -> None:  # type: ignore[no-untyped-def]
    assert rule.id not in found(expand(rule.negative))


def test_at_least_150_rules_each_with_sample_and_negative() -> None:
    assert len(BUILTIN_RULES) >= 150
    for rule in BUILTIN_RULES:
        assert rule.sample and rule.negative, rule.id
        assert all(k == k.lower() for k in rule.keywords), rule.id
        assert rule.keywords, rule.id


def test_rule_ids_are_unique() -> None:
    ids = [r.id for r in BUILTIN_RULES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("rule_id", "text", "should_flag"),
    [
        ("aws-access-key-id", "XAKIA" + "ABCDEFGHIJKLMNOP" + "X", False),
        ("url-password", "https://example.com/path:with@colon", False),
        ("url-password", "redis://:s3cr3tpass@cache:6379/0", False),  # no user part: not this rule's shape
        ("private-key-rsa", "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 40, True),  # header alone is evidence
        ("stripe-live-key", "sk_test_" + "a1B2" * 6, False),
        ("dotenv-secret", "API_TOKEN=os.environ['X']", False),
        ("dotenv-secret", "SECRET_KEY=$(cat /run/secrets/key)", False),
        ("ini-password", "password = %(pw)s", False),
        ("json-secret-field", '"token": "${TOKEN}"', False),
    ],
)
def test_edge_cases(rule_id: str, text: str, should_flag: bool) -> None:
    assert (rule_id in found(text)) is should_flag


def test_matched_span_is_the_secret_group() -> None:
    secret = expand("{b40}")
    data = f"aws_secret_access_key = {secret}\n".encode()
    (m,) = [m for m in DETECTOR.find(data) if m.rule_id == "aws-secret-access-key"]
    assert data[m.start : m.end] == secret.encode() == m.secret


def _github_token(prefix: str = "ghp") -> str:
    payload = expand("{a30}")
    return f"{prefix}_{payload}{base62(zlib.crc32(payload.encode())).decode()}"


def test_github_checksum_proves_the_format() -> None:
    token = _github_token()
    assert crc32_base62_checksum(token.encode())
    assert not crc32_base62_checksum((token[:-1] + ("A" if token[-1] != "A" else "B")).encode())
    valid = [m for m in DETECTOR.find(token.encode()) if m.rule_id == "github-token"]
    invalid = [m for m in DETECTOR.find(("ghp_" + "a1B2c3" * 6).encode()) if m.rule_id == "github-token"]
    assert [m.severity for m in valid] == [Severity.CRITICAL]
    assert [m.severity for m in invalid] == [Severity.HIGH]


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("cloudant_password='" + "0123456789abcdef" * 4 + "'", "ds-cloudant"),
        ("artifactory: AKC" + "a1B2c3D4e5" * 6, "ds-artifactory"),
    ],
)
def test_detect_secrets_plugins_as_a_rule_source(text: str, rule_id: str) -> None:
    data = f"a\n{text}\nb\n".encode()
    got = list(DetectSecretsDetector().find(data))
    assert rule_id in {m.rule_id for m in got}
    for m in got:
        assert data[m.start : m.end] == m.secret


def test_detect_secrets_plugins_quiet_on_plain_text() -> None:
    assert list(DetectSecretsDetector().find(b"an apple a day keeps the doctor away\n" * 100)) == []


def test_docker_auth_validation() -> None:
    good = base64.b64encode(b"robot:" + expand("{a20}").encode()).decode()
    assert "docker-config-auth" in found(f'"auth": "{good}"')
