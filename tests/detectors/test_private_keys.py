"""Private keys in every layout people put them in, with real keys generated here (never committed):
canonical PEM, one line, spaces for newlines, escaped inside a JSON / YAML / .env / shell string,
CRLF, base64 of the PEM. A header alone is not a key."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from scanner.detectors import ContentScanner
from scanner.detectors.patterns import PatternDetector
from scanner.models import Severity

DETECTOR = PatternDetector()


def _rsa() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())


def _rsa_encrypted() -> bytes:  # traditional OpenSSL encryption: Proc-Type and DEK-Info headers
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.BestAvailableEncryption(b"pw"))


def _ec() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.TraditionalOpenSSL, ser.NoEncryption())


def _pkcs8() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.NoEncryption())


def _pkcs8_encrypted() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.PKCS8, ser.BestAvailableEncryption(b"pw-pw-pw"))


def _openssh() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption())


KEYS: dict[str, tuple[Callable[[], bytes], str]] = {
    "rsa": (_rsa, "private-key-rsa"),
    "rsa-encrypted": (_rsa_encrypted, "private-key-rsa"),
    "ec": (_ec, "private-key-ec"),
    "pkcs8": (_pkcs8, "private-key-pkcs8"),
    "pkcs8-encrypted": (_pkcs8_encrypted, "private-key-pkcs8-encrypted"),
    "openssh": (_openssh, "private-key-openssh"),
}


def _json(pem: str) -> str:  # a GCP service-account key file
    return json.dumps({"type": "service_account", "private_key_id": "0" * 8, "private_key": pem}, indent=2)


LAYOUTS: dict[str, Callable[[str], str]] = {
    "canonical": lambda pem: pem,
    "one-line": lambda pem: pem.replace("\n", ""),
    "spaces": lambda pem: pem.replace("\n", " "),
    "json-escaped": _json,
    "yaml-escaped": lambda pem: 'tls_key: "' + pem.replace("\n", "\\n") + '"',
    "dotenv-escaped": lambda pem: "PRIVATE_KEY='" + pem.replace("\n", "\\n") + "'",
    "shell-escaped": lambda pem: "export KEY=\"$(printf '" + pem.replace("\n", "\\n") + "')\"",
    "crlf": lambda pem: pem.replace("\n", "\r\n"),
    "crlf-escaped": lambda pem: '{"key": "' + pem.replace("\n", "\\r\\n") + '"}',
}


@pytest.mark.parametrize("kind", KEYS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_key_is_found_in_every_layout(kind: str, layout: str) -> None:
    make, rule_id = KEYS[kind]
    text = "config:\n" + LAYOUTS[layout](make().decode()) + "\nend\n"
    matches = [m for m in DETECTOR.find(text.encode()) if m.rule_id == rule_id]
    assert len(matches) == 1, text
    assert matches[0].severity is Severity.CRITICAL
    assert matches[0].secret.rstrip().endswith(b"PRIVATE KEY-----")


@pytest.mark.parametrize("kind", ["rsa", "openssh", "pkcs8"])
def test_base64_of_a_pem_is_decoded_and_found(kind: str) -> None:
    make, rule_id = KEYS[kind]
    encoded = base64.b64encode(make()).decode()
    for text in (f"TLS_KEY={encoded}\n", f'{{"key": "{encoded}"}}\n'):
        hits = ContentScanner([PatternDetector()]).scan_bytes(text.encode())
        assert rule_id in {h.rule_id for h in hits}, text[:80]
        assert all(h.severity is Severity.CRITICAL for h in hits if h.rule_id == rule_id)


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PRIVATE KEY-----",
        "-----BEGIN RSA PRIVATE KEY-----\n-----END RSA PRIVATE KEY-----",
        'PEM_HEADER = "-----BEGIN PRIVATE KEY-----"\nPEM_FOOTER = "-----END PRIVATE KEY-----"',
        'pem = "-----BEGIN PRIVATE KEY-----\\n" + body + "\\n-----END PRIVATE KEY-----\\n"',
        'pem = "-----BEGIN PRIVATE KEY-----" + body + "-----END PRIVATE KEY-----"',
        'header = f"-----BEGIN {kind} PRIVATE KEY-----"',
        '"-----BEGIN RSA PRIVATE KEY-----<a very long private key string>-----END RSA PRIVATE KEY-----"',
        '"private_key": "-----BEGIN PRIVATE KEY-----\\n...\\n-----END PRIVATE KEY-----\\n"',
        "if line.startswith('-----BEGIN OPENSSH PRIVATE KEY-----'):\n    return parse(line)\n",
        "-----BEGIN PUBLIC KEY-----\n" + "A" * 64 + "\n-----END PUBLIC KEY-----",
    ],
)
def test_a_header_alone_is_not_a_key(text: str) -> None:
    assert not [m for m in DETECTOR.find(text.encode()) if m.rule_id.startswith("private-key")], text


@pytest.mark.parametrize(
    "body", ["Proc-Type: 4 x y z\n" * 3000, " " * 50000, "\\n" * 20000, ("A" * 63 + " ") * 2000, "A" * 100000]
)
def test_a_header_and_no_footer_stays_cheap(body: str) -> None:
    """A header, then a long run the body's alphabet allows and no footer: no backtracking blow-up."""
    import time

    start = time.perf_counter()
    assert not list(DETECTOR.find(("-----BEGIN PRIVATE KEY-----" + body).encode() * 3))
    assert time.perf_counter() - start < 1.0
