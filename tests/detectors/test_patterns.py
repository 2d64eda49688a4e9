"""Table tests: every built-in rule has positives and negatives.  Token values are assembled at
run time from their documented format so that nothing committed looks like a live credential."""

from __future__ import annotations

import base64
import string

import pytest

from scanner.detectors.detect_secrets_plugins import DetectSecretsDetector
from scanner.detectors.patterns import PatternDetector
from scanner.detectors.rules import BUILTIN_RULES

A = string.ascii_letters + string.digits


def tok(n: int, alphabet: str = A, seed: int = 7) -> str:
    return "".join(alphabet[(i * seed + 3) % len(alphabet)] for i in range(n))


B32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
HEX = "0123456789abcdef"
PEM = "-----BEGIN {k}PRIVATE KEY-----\n" + tok(64) + "\n" + tok(40) + "==\n-----END {k}PRIVATE KEY-----"

CASES: list[tuple[str, str, bool]] = [
    ("aws-access-key-id", "key = AKIA" + tok(16, B32), True),
    ("aws-access-key-id", "ASIA" + tok(16, B32), True),
    ("aws-access-key-id", "AKIA" + tok(15, B32), False),
    ("aws-access-key-id", "XAKIA" + tok(16, B32) + "X", False),
    ("aws-secret-access-key", "aws_secret_access_key = " + tok(40, A + "/+"), True),
    ("aws-secret-access-key", 'AWS_SECRET_ACCESS_KEY="' + tok(40, A + "/+") + '"', True),
    ("aws-secret-access-key", "aws_secret_access_key = " + tok(39), False),
    ("aws-session-token", "aws_session_token = " + tok(120, A + "/+") + "==", True),
    ("aws-session-token", "aws_session_token = " + tok(40), False),
    ("google-api-key", "AIza" + tok(35, A + "_-"), True),
    ("google-api-key", "AIza" + tok(20), False),
    ("gcp-service-account", '"private_key_id": "' + tok(40, HEX) + '"', True),
    ("azure-storage-key", "AccountKey=" + tok(86, A + "+/") + "==;", True),
    ("azure-storage-key", "AccountKey=short==", False),
    ("digitalocean-token", "dop_v1_" + tok(64, HEX), True),
    ("digitalocean-token", "dop_v1_" + tok(10, HEX), False),
    ("github-token", "ghp_" + tok(36), True),
    ("github-token", "token: ghs_" + tok(36), True),
    ("github-token", "ghp_" + tok(20), False),
    ("github-fine-grained-pat", "github_pat_" + tok(82, A + "_"), True),
    ("github-fine-grained-pat", "github_pat_" + tok(30), False),
    ("gitlab-token", "glpat-" + tok(20, A + "_-"), True),
    ("gitlab-token", "glrt-" + tok(24), True),
    ("gitlab-token", "glpat-short", False),
    ("npm-token", "npm_" + tok(36), True),
    ("npm-token", "npm_install_" + tok(10), False),
    ("npmrc-auth-token", "//registry.npmjs.org/:_authToken=" + tok(30), True),
    ("npmrc-auth-token", "//registry.npmjs.org/:_authToken=${NPM_TOKEN}", False),
    ("pypi-token", "pypi-AgEIcHlwaS5vcmc" + tok(60, A + "_-"), True),
    ("pypi-token", "pypi-AgEIcHlwaS5vcmc" + tok(10), False),
    ("dockerhub-pat", "dckr_pat_" + tok(27, A + "_-"), True),
    ("dockerhub-pat", "dckr_pat_" + tok(5), False),
    ("docker-config-auth", '"auth": "' + base64.b64encode(b"robot:" + tok(20).encode()).decode() + '"', True),
    ("docker-config-auth", '"auth": "' + base64.b64encode(b"no-colon-here").decode() + '"', False),
    ("slack-token", "xoxb-" + tok(12, "0123456789") + "-" + tok(24), True),
    ("slack-token", "xoxz-" + tok(20), False),
    ("slack-webhook", "https://hooks.slack.com/services/T" + tok(8, B32) + "/B" + tok(8, B32) + "/" + tok(24), True),
    ("slack-webhook", "https://hooks.slack.com/services/", False),
    ("stripe-live-key", "sk_live_" + tok(24), True),
    ("stripe-live-key", "sk_test_" + tok(24), False),
    ("stripe-test-key", "sk_test_" + tok(24), True),
    ("sendgrid-key", "SG." + tok(22, A + "_-") + "." + tok(43, A + "_-"), True),
    ("sendgrid-key", "SG." + tok(10), False),
    ("openai-key", "sk-proj-" + tok(24) + "T3BlbkFJ" + tok(24), True),
    ("openai-key", "sk-" + tok(40), False),
    ("anthropic-key", "sk-ant-api03-" + tok(90, A + "_-"), True),
    ("anthropic-key", "sk-ant-api03-" + tok(20), False),
    ("huggingface-token", "hf_" + tok(34, string.ascii_letters), True),
    ("huggingface-token", "hf_" + tok(10), False),
    ("vault-token", "hvs." + tok(24, A + "_-"), True),
    ("vault-token", "hvs.short", False),
    ("shopify-token", "shpat_" + tok(32, HEX), True),
    ("shopify-token", "shpat_" + tok(10, HEX), False),
    ("private-key", PEM.format(k="RSA "), True),
    ("private-key", PEM.format(k=""), True),
    ("private-key", PEM.format(k="OPENSSH "), True),
    ("private-key", "-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----", False),
    ("putty-private-key", "PuTTY-User-Key-File-3: ssh-ed25519", True),
    ("jwt", "eyJ" + tok(20, A + "_-") + ".eyJ" + tok(30, A + "_-") + "." + tok(30, A + "_-"), True),
    ("jwt", "eyJhbGciOi.notajwt", False),
    ("url-password", "postgres://app:" + tok(16) + "@db.internal:5432/app", True),
    ("url-password", "https://user:${PASSWORD}@example.com", False),
    ("url-password", "https://example.com/path:with@colon", False),
    ("basic-auth-header", "Authorization: Basic " + base64.b64encode(b"u:" + tok(12).encode()).decode(), True),
    ("basic-auth-header", "Authorization: Basic notbase64!", False),
    ("bearer-token-header", "Authorization: Bearer " + tok(32), True),
    ("bearer-token-header", "Authorization: Bearer short", False),
    ("netrc-password", "machine github.com login bot password " + tok(20), True),
    ("netrc-password", "machine github.com login bot password changeme", False),
]


@pytest.mark.parametrize(
    ("rule_id", "text", "should_flag"), CASES, ids=[f"{c[0]}-{c[2]}-{i}" for i, c in enumerate(CASES)]
)
def test_rule_table(rule_id: str, text: str, should_flag: bool) -> None:
    found = {m.rule_id for m in PatternDetector().find(("x = 1\n" + text + "\n").encode())}
    assert (rule_id in found) is should_flag, found


def test_every_builtin_rule_has_a_positive_and_a_negative_case() -> None:
    ids = {r.id for r in BUILTIN_RULES}
    positives = {c[0] for c in CASES if c[2]}
    negatives = {c[0] for c in CASES if not c[2]}
    assert ids == positives, ids ^ positives
    assert ids - {"putty-private-key", "stripe-test-key", "gcp-service-account"} <= negatives


def test_rule_ids_are_unique_and_keywords_lowercase() -> None:
    ids = [r.id for r in BUILTIN_RULES]
    assert len(ids) == len(set(ids))
    for rule in BUILTIN_RULES:
        assert all(k == k.lower() for k in rule.keywords), rule.id
        rule.compile()


def test_matched_span_is_the_secret_group() -> None:
    secret = tok(40, A + "/+")
    data = f"aws_secret_access_key = {secret}\n".encode()
    (m,) = [m for m in PatternDetector().find(data) if m.rule_id == "aws-secret-access-key"]
    assert data[m.start : m.end] == secret.encode() == m.secret


@pytest.mark.parametrize(
    ("text", "rule_id"),
    [
        ("cloudant_password='" + tok(64, HEX) + "'", "ds-cloudant"),
        ("artifactory: AKC" + tok(60), "ds-artifactory"),
        ("mailchimp = " + tok(32, HEX) + "-us12", "ds-mailchimp"),
    ],
)
def test_detect_secrets_plugins_as_a_rule_source(text: str, rule_id: str) -> None:
    found = list(DetectSecretsDetector().find(f"a\n{text}\nb\n".encode()))
    assert rule_id in {m.rule_id for m in found}
    for m in found:
        assert f"a\n{text}\nb\n".encode()[m.start : m.end] == m.secret


def test_detect_secrets_plugins_quiet_on_plain_text() -> None:
    assert list(DetectSecretsDetector().find(b"an apple a day keeps the doctor away\n" * 100)) == []
