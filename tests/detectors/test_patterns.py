"""Table tests: every built-in rule has a positive and a negative case (its sample templates,
expanded with fresh random characters on every run), plus hand-written edge cases."""

from __future__ import annotations

import base64
import re
import zlib

import pytest

from scanner.detectors import ContentScanner
from scanner.detectors.detect_secrets_plugins import DetectSecretsDetector
from scanner.detectors.patterns import PatternDetector
from scanner.detectors.prefilter import pass_for
from scanner.detectors.rules import BUILTIN_RULES
from scanner.detectors.rules.model import base62, crc32_base62_checksum
from scanner.models import Severity
from tests.detectors.samples import expand

DETECTOR = PatternDetector()
RULES = {r.id: r for r in BUILTIN_RULES}


def found(text: str, path: str | None = None) -> set[str]:
    return {m.rule_id for m in DETECTOR.find(("x = 1\n" + text + "\n").encode(), path)}


def sample_path(rule) -> str | None:  # type: ignore[no-untyped-def]
    return rule.paths[0].replace("*", "app") if rule.paths else None


EXAMPLES = [(r, n) for r in BUILTIN_RULES for n in range(len(r.examples))]
NEGATIVES = [(r, n) for r in BUILTIN_RULES for n in range(len(r.negatives))]


@pytest.mark.parametrize(("rule", "n"), EXAMPLES, ids=lambda x: x.id if hasattr(x, "id") else str(x))
@pytest.mark.parametrize("run", range(8))
def test_rule_flags_its_examples(rule, n: int, run: int) -> None:  # type: ignore[no-untyped-def]
    text = expand(rule.examples[n])
    assert rule.id in found(text, sample_path(rule)), text


@pytest.mark.parametrize(("rule", "n"), NEGATIVES, ids=lambda x: x.id if hasattr(x, "id") else str(x))
def test_rule_ignores_its_negatives(rule, n: int) -> None:  # type: ignore[no-untyped-def]
    assert rule.id not in found(expand(rule.negatives[n]), sample_path(rule))


# --- mutations of every example: what a rule's shape promises beyond its own templates -----------

_END = r"\)?(?:\\b|\(\?!\[[^\]]*\]\))$"  # then \b or (?![...]): the token ends there
_TAIL_EXACT = re.compile(r"\[[^\]]*\]\{(\d+)\}" + _END)  # a fixed-length tail: [...]{n}
_TAIL_BOUNDED = re.compile(r"\[[^\]]*\]\{(\d+),(\d+)\}" + _END)  # a bounded tail: [...]{m,n}


def _alone(rule, text: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The secrets ``rule`` alone finds in ``text``."""
    return [m.secret for m in PatternDetector([rule]).find(("x = 1\n" + text + "\n").encode(), sample_path(rule))]


def _simple_prefix(rule) -> bool:  # type: ignore[no-untyped-def]
    """A vendor token found by its own prefix alone (no context, no path, no validator of its own)."""
    return (
        rule.word_start
        and rule.group == 0
        and not rule.paths
        and not rule.flags
        and rule.validate is None
        and rule.structure
        and "|" not in rule.regex
        and re.match(r"\\b[A-Za-z0-9]", rule.regex) is not None
    )


EXACT = [r for r in BUILTIN_RULES if _TAIL_EXACT.search(r.regex) and r.structure and "|" not in r.regex]
PREFIXED = [r for r in BUILTIN_RULES if _simple_prefix(r)]
BOUNDED = [r for r in BUILTIN_RULES if _TAIL_BOUNDED.search(r.regex) and r.structure and "|" not in r.regex]


@pytest.mark.parametrize("rule", EXACT, ids=lambda r: r.id)
def test_mutation_one_character_short(rule) -> None:  # type: ignore[no-untyped-def]
    """A fixed-length tail ({n}, then a boundary): the example less its last character is no token."""
    for template in rule.examples:
        text = expand(template)
        secrets = _alone(rule, text)
        assert secrets, text
        line = next(line for line in text.splitlines() if secrets[0].decode() in line)
        short = text.replace(line, line.replace(secrets[0].decode(), secrets[0].decode()[:-1]))
        assert all(len(s) != len(secrets[0]) - 1 for s in _alone(rule, short)), short


@pytest.mark.parametrize("rule", PREFIXED, ids=lambda r: r.id)
def test_mutation_glued_to_a_longer_token(rule) -> None:  # type: ignore[no-untyped-def]
    """A prefix anchored at a word start: the token glued to the end of another word is not found."""
    for template in rule.examples:
        text = expand(template)
        secret = _alone(rule, text)[0].decode()
        assert not _alone(rule, text.replace(secret, "Zq9" + secret)), text


@pytest.mark.parametrize("rule", PREFIXED, ids=lambda r: r.id)
def test_mutation_inside_a_url_or_a_string(rule) -> None:  # type: ignore[no-untyped-def]
    for template in rule.examples:
        secret = _alone(rule, expand(template))[0].decode()
        for text in (f"https://x.example/?k={secret}&v=1", f'"{secret}"', f"key: '{secret}'", f"TOKEN={secret}"):
            assert _alone(rule, text) == [secret.encode()], text


@pytest.mark.parametrize("rule", BOUNDED, ids=lambda r: r.id)
def test_mutation_longer_than_the_upper_bound(rule) -> None:  # type: ignore[no-untyped-def]
    """A bounded tail ({m,n}, then a boundary): a run longer than n is not one token of the format."""
    m = _TAIL_BOUNDED.search(rule.regex)
    assert m is not None
    upper = int(m.group(2))
    for template in rule.examples:
        secret = _alone(rule, expand(template))[0].decode()
        longer = secret + expand("{l" + str(upper + 1) + "}")  # the tail is now over its bound
        assert _alone(rule, longer) == [], longer


def test_at_least_150_rules_each_with_examples_negatives_and_a_reference() -> None:
    assert len(BUILTIN_RULES) >= 150
    for rule in BUILTIN_RULES:
        assert rule.examples and rule.negatives, rule.id
        assert rule.sample == rule.examples[0] and rule.negative == rule.negatives[0], rule.id
        assert rule.vendor and rule.reference.startswith("https://"), rule.id
        assert all(k == k.lower() for k in rule.keywords), rule.id
        assert rule.keywords, rule.id


def test_builtin_regexes_compile_with_their_groups() -> None:
    """At run time their regexes are compiled lazily; here every one is checked as the loader would."""
    from scanner.detectors.rules.loader import builtin_rules

    assert [r.id for r in builtin_rules(check_regexes=True)] == [r.id for r in BUILTIN_RULES]


def test_rule_ids_are_unique() -> None:
    ids = [r.id for r in BUILTIN_RULES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(
    ("rule_id", "text", "should_flag"),
    [
        ("aws-access-key-id", "XAKIA" + "ABCDEFGHIJKLMNOP" + "X", False),
        ("url-password", "https://example.com/path:with@colon", False),
        ("url-password", "redis://:s3cr3tpass@cache:6379/0", False),  # no user part: not this rule's shape
        ("private-key-rsa", "-----BEGIN RSA PRIVATE KEY-----\n" + "A" * 40, False),  # no body, no footer: not a key
        ("stripe-live-key", "sk_test_" + "a1B2" * 6, False),
        ("dotenv-secret", "API_TOKEN=os.environ['X']", False),
        ("dotenv-secret", "SECRET_KEY=$(cat /run/secrets/key)", False),
        ("ini-password", "password = %(pw)s", False),
        ("json-secret-field", '"token": "${TOKEN}"', False),
        ("private-key-openssh", '_SK_START = b"-----BEGIN OPENSSH PRIVATE KEY-----"', False),  # code, not a key
        (
            "private-key-dsa",
            '"-----BEGIN DSA PRIVATE KEY-----<a very long private key string>-----END DSA PRIVATE KEY-----"',
            False,
        ),
        ("dotenv-secret", "OID_PRIVATE_KEY_USAGE_PERIOD = ExtensionOID.PRIVATE_KEY_USAGE_PERIOD", False),
        ("dotenv-secret", '_DEFAULT_TOKEN = "_sa_default"', False),
    ],
)
def test_edge_cases(rule_id: str, text: str, should_flag: bool) -> None:
    path = sample_path(RULES[rule_id])
    assert (rule_id in found(text, path)) is should_flag


@pytest.mark.parametrize(
    ("rule_id", "path", "text"),
    [
        ("ini-password", "etc/app.conf", "password = hunter2hunter2"),
        ("netrc-password", "root/.netrc", "machine h login u password hunter2hunter2"),
        ("json-secret-field", "terraform.tfstate", '"password": "hunter2hunter2"'),
    ],
)
def test_path_bound_rules_only_in_their_files(rule_id: str, path: str, text: str) -> None:
    assert rule_id in found(text, path)
    assert rule_id not in found(text, "usr/lib/app/module.js")
    assert rule_id not in found(text, None)


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("mssql+pyodbc://scott:tiger@ms_2008/db", "demo credential"),
        ("mssql+pyodbc://scott:tiger^5HHH@mssql2017:1433/test", "demo credential"),
        ("https://user:pass1234@sub.example.net:8080", "demo credential"),
        ("https://abc:xyz7q@example.com/", "example host"),
        (
            "https://x.blob.core.windows.net/c?sp=r&st=2023-12-20T14:54:52Z&se=2023-12-20T22:54:52Z&sv=2021-06-08&sig="
            + "aBBKDWQvyuVcTPH9EBp%2FXTI9E%2F%2Fmq171%2BZU178wcwqU%3D",
            "expired",
        ),
    ],
)
def test_demo_credentials_and_expired_tokens_are_downgraded(text: str, why: str) -> None:
    matches = [m for m in DETECTOR.find(text.encode()) if m.rule_id in ("url-password", "azure-sas-token")]
    assert matches and all(m.downgrade and why in m.downgrade for m in matches)
    hits = [h for h in ContentScanner([DETECTOR]).scan_bytes(text.encode()) if h.rule_id == matches[0].rule_id]
    assert hits and all(
        h.severity is Severity.LOW and h.downgraded_from is Severity.HIGH and why in (h.downgrade_reason or "")
        for h in hits
    )


def test_real_looking_url_password_stays_high() -> None:
    (m,) = [
        m
        for m in DETECTOR.find(b"postgres://billing:Xq7vP2mZ9tLw@db.internal:5432/billing")
        if m.rule_id == "url-password"
    ]
    assert m.severity is Severity.HIGH


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


def test_a_rule_hyperscan_cannot_compile_runs_gated_by_its_keywords() -> None:
    from scanner.detectors.rules.model import Rule

    # a bounded repeat this large is "too large" for Hyperscan, even as a prefilter; Python's re runs it
    rule = Rule("big", "a long token", r"tok_[a-z0-9]{8,50000}", ("tok_",), Severity.HIGH, "", "")
    detector = PatternDetector([rule])
    assert [m.rule_id for m in detector.find(b"x tok_ab12cd34ef y")] == ["big"]
    assert pass_for([detector.expressions()]).scan(b"")[0] == [(0, -1, -1)]  # "may match anywhere", in every window
    # in the content scanner's shared pass too, beside the rules Hyperscan can compile
    scanner = ContentScanner([PatternDetector([rule, *BUILTIN_RULES[:3]])])
    assert [h.rule_id for h in scanner.scan_bytes(b"x tok_ab12cd34ef y")] == ["big"]
    gated = Rule("gated", "its keyword is absent", r"tok_[a-z0-9]{8,50000}", ("never-here",), Severity.HIGH, "", "")
    assert list(PatternDetector([gated]).find(b"x tok_ab12cd34ef y")) == []
