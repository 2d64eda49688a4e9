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
    ],
)
def test_secret_like_names_in_metadata(text: str, flag: bool) -> None:
    assert bool(list(SecretNameDetector().find(text.encode()))) is flag


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
