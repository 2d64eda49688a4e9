"""Built-in pattern rules, as data.

Each rule is written from the vendor's documented token format.  ``keywords`` are lower-case
literals of which at least one must occur (case-insensitively) in a window before the regex runs;
``group`` names the capture group holding the secret (0: the whole match).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..models import Severity

C, H, M, L = Severity.CRITICAL, Severity.HIGH, Severity.MEDIUM, Severity.LOW


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    description: str
    regex: str
    keywords: tuple[str, ...]
    severity: Severity
    group: int = 0
    flags: int = 0
    validate: Callable[[bytes], bool] | None = field(default=None, compare=False)
    max_len: int = 512

    @property
    def word_start(self) -> bool:
        """A leading \\b, checked in Python after the match so that the regex starts with a
        literal and the regex engine can skip ahead to it (a leading \\b makes it try every byte)."""
        return self.regex.startswith("\\b")

    def compile(self) -> re.Pattern[bytes]:
        regex = self.regex[2:] if self.word_start else self.regex
        return re.compile(regex.encode(), self.flags)


def _docker_auth(value: bytes) -> bool:
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    user, sep, password = decoded.partition(b":")
    return bool(sep and user and password)


_PLACEHOLDER = re.compile(
    rb"^(?:\$\{?\w+\}?|\{\{.*\}\}|<[^>]*>|%\w+%|\*+|x+|\.+|pass(?:word)?|secret|changeme|user|token)$",
    re.IGNORECASE,
)


def _not_placeholder(value: bytes) -> bool:
    return not _PLACEHOLDER.match(value)


_I = re.IGNORECASE
_B62 = "A-Za-z0-9"

BUILTIN_RULES: tuple[Rule, ...] = (
    # cloud providers
    Rule(
        "aws-access-key-id",
        "AWS access key id",
        r"\b((?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z2-7]{16})(?![A-Z0-9])",
        ("akia", "asia", "abia", "acca", "a3t"),
        H,
        group=1,
    ),
    Rule(
        "aws-secret-access-key",
        "AWS secret access key",
        r"aws_?secret_?(?:access_?)?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])",
        ("secret_access_key", "secretaccesskey", "secret_key", "secretkey"),
        C,
        group=1,
        flags=_I,
    ),
    Rule(
        "aws-session-token",
        "AWS session token",
        r"aws_?session_?token[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+=]{100,})",
        ("session_token", "sessiontoken"),
        H,
        group=1,
        flags=_I,
        max_len=2048,
    ),
    Rule("google-api-key", "Google API key", r"AIza[0-9A-Za-z_\-]{35}(?![0-9A-Za-z_\-])", ("aiza",), H),
    Rule(
        "gcp-service-account",
        "GCP service account private key id",
        r"\"private_key_id\"\s*:\s*\"([0-9a-f]{40})\"",
        ("private_key_id",),
        C,
        group=1,
    ),
    Rule(
        "azure-storage-key",
        "Azure storage account key",
        r"AccountKey=([A-Za-z0-9+/]{86}==)",
        ("accountkey",),
        C,
        group=1,
    ),
    Rule(
        "digitalocean-token", "DigitalOcean token", r"\bdo[por]_v1_[a-f0-9]{64}\b", ("dop_v1_", "doo_v1_", "dor_v1_"), H
    ),
    # source hosting and CI
    Rule(
        "github-token",
        "GitHub token",
        rf"\bgh[pousr]_[{_B62}]{{36,251}}\b",
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
        C,
    ),
    Rule(
        "github-fine-grained-pat",
        "GitHub fine-grained personal access token",
        rf"\bgithub_pat_[{_B62}_]{{82}}\b",
        ("github_pat_",),
        C,
    ),
    Rule(
        "gitlab-token",
        "GitLab token",
        r"\b(?:glpat|gloas|gldt|glrt|glptt|glft|glsoat|glcbt|glimt|glagent)-[0-9A-Za-z_\-]{20,}",
        ("glpat-", "gloas-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "glcbt-", "glimt-", "glagent-"),
        C,
    ),
    # package registries
    Rule("npm-token", "npm access token", rf"\bnpm_[{_B62}]{{36}}\b", ("npm_",), C),
    Rule(
        "npmrc-auth-token",
        "npm registry auth token in .npmrc",
        r"_authToken\s*=\s*[\"']?([^\s\"'$]{8,})",
        ("_authtoken",),
        H,
        group=1,
        validate=_not_placeholder,
    ),
    Rule("pypi-token", "PyPI upload token", r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_\-]{50,}", ("pypi-ageichlwas5vcmc",), C),
    Rule("dockerhub-pat", "Docker Hub personal access token", r"\bdckr_pat_[A-Za-z0-9_\-]{27,}", ("dckr_pat_",), C),
    Rule(
        "docker-config-auth",
        "registry credentials in a docker config.json",
        r"\"auth\"\s*:\s*\"([A-Za-z0-9+/]{6,}={0,2})\"",
        ('"auth"',),
        H,
        group=1,
        validate=_docker_auth,
    ),
    # messaging and SaaS
    Rule(
        "slack-token",
        "Slack token",
        r"\bxox[abposr]-[0-9A-Za-z\-]{10,250}",
        ("xoxa-", "xoxb-", "xoxp-", "xoxo-", "xoxs-", "xoxr-"),
        H,
    ),
    Rule(
        "slack-webhook",
        "Slack incoming webhook",
        r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9+/]{30,}",
        ("hooks.slack.com",),
        H,
    ),
    Rule(
        "stripe-live-key",
        "Stripe live secret or restricted key",
        r"\b(?:sk|rk)_live_[0-9A-Za-z]{24,247}\b",
        ("_live_",),
        C,
    ),
    Rule("stripe-test-key", "Stripe test secret key", r"\b(?:sk|rk)_test_[0-9A-Za-z]{24,247}\b", ("_test_",), L),
    Rule("sendgrid-key", "SendGrid API key", r"\bSG\.[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}\b", ("sg.",), H),
    Rule(
        "openai-key",
        "OpenAI API key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}T3BlbkFJ[A-Za-z0-9_\-]{20,}",
        ("t3blbkfj",),
        C,
    ),
    Rule("anthropic-key", "Anthropic API key", r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}", ("sk-ant-",), C),
    Rule("huggingface-token", "Hugging Face token", r"\bhf_[A-Za-z]{34}\b", ("hf_",), H),
    Rule("vault-token", "HashiCorp Vault token", r"\bhv[sbr]\.[A-Za-z0-9_\-]{24,}", ("hvs.", "hvb.", "hvr."), C),
    Rule(
        "shopify-token",
        "Shopify access token",
        r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",
        ("shpat_", "shpca_", "shppa_", "shpss_"),
        H,
    ),
    # keys, tokens, credentials in URLs and config files
    Rule(
        "private-key",
        "private key",
        r"-----BEGIN[ A-Z0-9]{0,32}PRIVATE KEY(?: BLOCK)?-----"
        r"(?:[\s\S]{0,16384}?-----END[ A-Z0-9]{0,32}PRIVATE KEY(?: BLOCK)?-----)?",
        ("private key",),
        C,
        max_len=17000,
    ),
    Rule("putty-private-key", "PuTTY private key", r"PuTTY-User-Key-File-\d: [\w-]+", ("putty-user-key-file",), C),
    Rule(
        "jwt",
        "JSON web token",
        r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{16,}",
        ("eyj",),
        M,
        max_len=8192,
    ),
    Rule(
        "url-password",
        "password embedded in a URL",
        r"://[^\s:/@\"'<>]{1,128}:([^\s:/@\"'<>]{3,128})@[A-Za-z0-9.\-\[\]]+",
        ("://",),
        H,
        group=1,
        validate=_not_placeholder,
    ),
    Rule(
        "basic-auth-header",
        "HTTP basic authorization header",
        r"authorization\s*:\s*basic\s+([A-Za-z0-9+/]{8,}={0,2})",
        ("basic",),
        H,
        group=1,
        flags=_I,
        validate=_docker_auth,
    ),
    Rule(
        "bearer-token-header",
        "HTTP bearer authorization header",
        r"authorization\s*:\s*bearer\s+([A-Za-z0-9._~+/\-]{16,}=*)",
        ("bearer",),
        H,
        group=1,
        flags=_I,
    ),
    Rule(
        "netrc-password",
        ".netrc / .git-credentials password",
        r"\bmachine\s+\S+\s+login\s+\S+\s+password\s+(\S{4,})",
        ("machine",),
        H,
        group=1,
        validate=_not_placeholder,
    ),
)
