from __future__ import annotations

import base64
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.detectors.buildargs import BuildArgDetector, SecretNameDetector
from scanner.detectors.entropy import _NAME, _NAME_PARTS, EntropyDetector, _names, shannon_entropy


@pytest.mark.parametrize(
    ("text", "should_flag"),
    [
        ("password = 'q8Zr!v2Lp0xW#m4T'", True),
        ("DB_PASSWORD=Zx81kfP0qLm2Vn7R", True),
        ('"client_secret": "9fK2mQ7xP1zL8vR3"', True),
        ("api_key: 4b9d6e2f8a1c7e3b5d9f0a2c4e6b8d1f", True),  # hex, in a secret-like context
        ("password = changeme", False),
        ("password = xxxxxxxxxxxxxxxx", False),
        ("token = ${GITHUB_TOKEN}", False),
        ("password = aaaaaaaaaaaaaaaa", False),  # no entropy
        ("sha256 = 4b9d6e2f8a1c7e3b5d9f0a2c4e6b8d1f", False),  # high entropy, no secret-like name
        ("Requires-Dist: requests (>=2.0)", False),
        ("password = YourPasswordHere", False),
    ],
)
def test_entropy_only_in_secret_like_context(text: str, should_flag: bool) -> None:
    assert bool(list(EntropyDetector().find(text.encode()))) is should_flag


def test_shannon_entropy() -> None:
    assert shannon_entropy(b"") == 0
    assert shannon_entropy(b"aaaa") == 0
    assert shannon_entropy(b"abcd") == 2


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("RUN |2 NPM_TOKEN=abc123 DEBUG=1 /bin/sh -c npm ci", [b"abc123"]),
        ("created_by=RUN |1 DB_PASSWORD=hunter2 /bin/sh -c x", [b"hunter2"]),
        ("|3 A=1 API_KEY=k-1 GH_PAT=p /bin/sh -c y", [b"k-1", b"p"]),
        ("RUN |1 VERSION=1.2.3 /bin/sh -c make", []),
        ("RUN echo TOKEN=abc", []),
        ("RUN |1 TOKEN= /bin/sh -c x", []),
    ],
)
def test_build_args_with_secret_like_names(text: str, values: list[bytes]) -> None:
    assert [m.secret for m in BuildArgDetector().find(text.encode())] == values


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("created_by=ENV DB_PASSWORD=Qx7vT2mLp9Zr4Kw8", [b"Qx7vT2mLp9Zr4Kw8"]),  # BuildKit
        ("created_by=/bin/sh -c #(nop)  ENV DB_PASSWORD=Qx7vT2mLp9Zr4Kw8", [b"Qx7vT2mLp9Zr4Kw8"]),  # classic
        ("created_by=ENV A=1 API_TOKEN=abc PATH=/usr/bin", [b"abc"]),
        ("created_by=/bin/sh -c #(nop)  ENV SERVICE_SECRET=two words", [b"two words"]),  # legacy ENV NAME value
        ("created_by=ENV X=a=b GH_PAT=c d ", [b"c d"]),
        ("created_by=ENV PATH=/usr/bin GPG_KEY=A035C8C19219BA82 LANG=C.UTF-8", []),
        ("created_by=ENV TOKEN=${TOKEN} PASSWORD_FILE=/run/secrets/db", []),
        ("created_by=ENV DB_PASSWORD=", []),  # cleared
        ("created_by=RUN echo ENV TOKEN=x", []),
        ("created_by=COPY ENV TOKEN=x /", []),
    ],
)
def test_env_steps_in_the_history_with_secret_like_names(text: str, values: list[bytes]) -> None:
    """An ENV step's values stay in the history when a later step clears the variable from the
    config's Env (``ENV DB_PASSWORD=`` after ``ENV DB_PASSWORD=...``): reported at high, as the
    config's Env would be, with the value's own span."""
    found = list(BuildArgDetector().find(text.encode()))
    assert [m.secret for m in found] == values
    assert all(m.rule_id == "metadata-secret-name" and m.severity == "high" for m in found)
    assert all(text.encode()[m.start : m.end] == m.secret for m in found)


@pytest.mark.parametrize(
    ("text", "flag"),
    [
        ("DEMO_PASSWORD=leakscan-demo-env-password", True),
        ("SERVICE_API_KEY=abc", True),
        ("org.example.registry-auth=robot:pw", True),
        ("GITHUB_TOKEN=x", True),
        ("org.opencontainers.image.authors=Jane <jane@example.com>", False),
        ("PASSWORD_FILE=/run/secrets/db", False),
        ("TOKEN_URL=https://auth.example.com/token", False),
        ("DB_PASSWORD=${DB_PASSWORD}", False),
        ("PATH=/usr/local/bin:/usr/bin", False),
        ("created_by=RUN echo hi", False),
        ("POSTGRES_HOST_AUTH_METHOD=trust", False),  # settings about a secret, not one
        ("TOKEN_EXPIRY=3600", False),
        ("AUTH_ENABLED=true", False),
        ("BASIC_AUTH=true", True),  # a switch: reported, at low (below)
    ],
)
def test_secret_like_names_in_metadata(text: str, flag: bool) -> None:
    assert bool(list(SecretNameDetector().find(text.encode()))) is flag


@pytest.mark.parametrize(
    "text",
    [
        "MYSQL_ALLOW_EMPTY_PASSWORD=yes",
        "created_by=ENV MYSQL_RANDOM_ROOT_PASSWORD=1",
        "created_by=RUN |1 BASIC_AUTH=false /bin/sh -c make",
        "BASIC_AUTH=Off",
    ],
)
def test_a_switch_under_a_secret_like_name_is_reported_at_low(text: str) -> None:
    """How the official images' variables read (MYSQL_ALLOW_EMPTY_PASSWORD=yes): still reported,
    so that nothing under a secret's name goes unseen, but not at a --fail-on high gate."""
    from scanner.detectors.buildargs import SWITCH_VALUE
    from scanner.detectors.content import ContentScanner

    found = [*SecretNameDetector().find(text.encode()), *BuildArgDetector().find(text.encode())]
    assert found and all(m.downgrade == SWITCH_VALUE for m in found)
    hits = ContentScanner([]).scan_bytes(text.encode(), metadata=True)
    assert hits and {h.severity.value for h in hits} == {"low"}
    assert all(h.downgrade_reason == SWITCH_VALUE for h in hits if h.rule_id != "high-entropy-assignment")


@pytest.mark.parametrize("text", ["DB_PASSWORD=yes2024", "created_by=ENV API_TOKEN=onion", "GITHUB_TOKEN=x"])
def test_a_value_that_only_starts_like_a_switch_is_not_lowered(text: str) -> None:
    found = [*SecretNameDetector().find(text.encode()), *BuildArgDetector().find(text.encode())]
    assert found and all(m.downgrade is None for m in found)


def test_a_long_token_is_not_too_repetitive_for_its_length() -> None:
    """Base64 carries at most 6 bits a character, so a bound that grows with log2(length) would
    refuse every value over 256 characters, however random: a long token was only reported when a
    window boundary happened to cut it short."""
    value = base64.b64encode(random.Random(7).randbytes(240)).decode()  # 320 characters
    found = list(EntropyDetector().find(f'"authorizationToken": "{value}"\n'.encode()))
    assert [m.rule_id for m in found] == ["high-entropy-assignment"]
    assert not list(EntropyDetector().find(f'token = "{"ab" * 160}"\n'.encode()))  # repetitive: still refused


_PIECES = [
    "pass", "passw", "password", "PassWord", "passwd", "passwor", "pwd", "PWD", "secret", "Secrets", "token",
    "TOKENS", "api", "api_key", "API-KEY", "api.key", "apikey", "api__key", "access", "access_key",
    "private-key", "auth", "Auth.Key", "authkey", "credential", "credentials", "CREDENTIALSS", "p", "s", "a",
    "c", "t", "_", "-", ".", "=", " ", "\n", "x", "key", "ord", "or", "d", "\xc4", "\xe9",
]  # fmt: skip


@given(st.lists(st.sampled_from(_PIECES), max_size=40))
@settings(max_examples=2000, deadline=None)
def test_names_are_exactly_what_the_regex_finds(pieces: list[str]) -> None:
    """_names (Hyperscan for the name literals, the regex only where one starts) against the
    regex's own finditer over the lower-cased text, on texts made of names in any case, their
    prefixes, overlaps and repeats, and bytes that are not ASCII."""
    text = "".join(pieces).encode("latin-1")
    lowered = text.lower()
    assert [m.span() for m in _names(text, lowered)] == [m.span() for m in _NAME.finditer(lowered)]


def test_each_name_regex_matches_exactly_its_listed_endings() -> None:
    """_names tries the regex only where a listed literal starts: each alternative's rest must
    match its listed endings and nothing else (every text of up to 4 of the characters involved)."""
    assert _NAME.pattern.split(b"|") == [start + rest for start, rest, _ in _NAME_PARTS]
    alphabet = b"keyords_-.x"
    texts = [b""]
    for _ in range(4):
        texts += [t + bytes([c]) for t in texts if len(t) == len(texts[-1]) for c in alphabet]
    texts = sorted(set(texts))
    for _, rest, endings in _NAME_PARTS:
        assert {t for t in texts if re.fullmatch(rest, t)} == set(endings), rest
