"""Keystores holding a private key are key material (critical); truststores are not."""

from __future__ import annotations

import io
import struct

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from scanner.detectors import ContentScanner, build_detectors
from scanner.detectors.keystore import KeystoreDetector
from scanner.layers.nested import FileScanner
from scanner.models import Severity
from tests.support.tars import zip_of
from tests.support.token_server import self_signed


def _key_and_cert() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert: x509.Certificate = self_signed(key, "leakscan test")
    return key, cert


def _jks(entries: list[tuple[int, bytes]], magic: bytes = b"\xfe\xed\xfe\xed") -> bytes:
    """A JKS (version 2) keystore's bytes: (tag, payload) entries, as keytool lays them out."""
    out = magic + struct.pack(">II", 2, len(entries))
    for n, (tag, payload) in enumerate(entries):
        alias = f"entry{n}".encode()
        out += struct.pack(">I", tag) + struct.pack(">H", len(alias)) + alias + struct.pack(">q", 0)
        if tag == 1:  # protected key, then a certificate chain
            out += struct.pack(">I", len(payload)) + payload + struct.pack(">I", 0)
        else:  # certificate type, then the certificate
            out += struct.pack(">H", 5) + b"X.509" + struct.pack(">I", len(payload)) + payload
    return out + b"\x00" * 20  # the keyed digest


def _found(data: bytes, path: str = "app/keystore.p12") -> list[str]:
    return [
        h.rule_id
        for h in ContentScanner(build_detectors([])).scan_window(data, path)
        if h.severity is Severity.CRITICAL
    ]


def test_a_pkcs12_keystore_with_a_key_is_key_material() -> None:
    key, cert = _key_and_cert()
    for encryption in (serialization.BestAvailableEncryption(b"changeit"), serialization.NoEncryption()):
        p12 = pkcs12.serialize_key_and_certificates(b"app", key, cert, None, encryption)
        assert _found(p12) == ["keystore-private-key"]


def test_a_pkcs12_truststore_is_not() -> None:
    _, cert = _key_and_cert()
    p12 = pkcs12.serialize_key_and_certificates(None, None, None, [cert], serialization.NoEncryption())
    assert _found(p12) == []


def _keystore_hits(data: bytes) -> list[tuple[str, Severity]]:
    hits = ContentScanner(build_detectors([])).scan_window(data, "app/store.p12")
    return [(h.rule_id, h.severity) for h in hits if h.detector == "keystore"]


def _legacy(password: bytes) -> serialization.KeySerializationEncryption:
    """keytool's encryption before JDK 18 and OpenSSL 1.1's: SHA-1 PBE with 3DES."""
    builder = serialization.PrivateFormat.PKCS12.encryption_builder().kdf_rounds(2048)
    return (
        builder.key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC).hmac_hash(hashes.SHA1()).build(password)
    )


def test_an_encrypted_truststore_opened_with_a_default_password_is_not_reported() -> None:
    """Every certificate encrypted (nothing in sight): Java's "changeit" opens it, and it holds no key."""
    _, cert = _key_and_cert()
    for encryption in (serialization.BestAvailableEncryption(b"changeit"), _legacy(b"changeit")):
        p12 = pkcs12.serialize_key_and_certificates(None, None, None, [cert], encryption)
        assert b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x0a\x01\x03" not in p12  # no certBag in sight
        assert _keystore_hits(p12) == []


def test_a_keystore_no_default_password_opens_is_reported_as_unreadable() -> None:
    """What a scan cannot look into is said: medium, not critical (it may be a truststore)."""
    _, cert = _key_and_cert()
    for encryption in (serialization.BestAvailableEncryption(b"s3-Custom!pw"), _legacy(b"s3-Custom!pw")):
        p12 = pkcs12.serialize_key_and_certificates(None, None, None, [cert], encryption)
        assert _keystore_hits(p12) == [("keystore-encrypted", Severity.MEDIUM)]


def test_the_default_passwords_open_what_they_can() -> None:
    from scanner.detectors.keystore import _open_with_a_default_password

    key, cert = _key_and_cert()
    with_key = pkcs12.serialize_key_and_certificates(b"app", key, cert, None, _legacy(b"changeit"))
    trust = pkcs12.serialize_key_and_certificates(None, None, None, [cert], _legacy(b"password"))
    custom = pkcs12.serialize_key_and_certificates(b"app", key, cert, None, _legacy(b"Not-a-default-1"))
    assert _open_with_a_default_password(with_key) is True
    assert _open_with_a_default_password(trust) is False
    assert _open_with_a_default_password(custom) is None


def test_jks_and_jceks_with_a_key_are_key_material_and_a_truststore_is_not() -> None:
    _, cert = _key_and_cert()
    der = cert.public_bytes(serialization.Encoding.DER)
    assert _found(_jks([(2, der), (1, b"\x30\x82" + bytes(300))]), "app/keystore.jks") == ["keystore-private-key"]
    assert _found(_jks([(2, der), (3, b"\xac\xed")], magic=b"\xce\xce\xce\xce"), "app/k.jceks") == [
        "keystore-private-key"
    ]
    assert _found(_jks([(2, der), (2, der)]), "usr/lib/jvm/java-17/lib/security/cacerts") == []
    assert _found(_jks([(2, der)])[:30]) == []  # cut short: not a key


@pytest.mark.parametrize(
    "data",
    [
        b"\x30\x82\x01\x00\x02\x01\x03" + bytes(50),  # a PFX with no key bag
        b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x0a\x01\x02" * 3,  # the OID alone (libcrypto's tables)
        b"\x7fELF" + b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x0a\x01\x02",
        b"\xfe\xed\xfe\xed\x00\x00\x00\x07\x00\x00\x00\x01",  # an unknown JKS version
        b"",
    ],
)
def test_what_only_looks_like_a_keystore_is_not(data: bytes) -> None:
    assert list(KeystoreDetector().find(data)) == []


def test_a_keystore_inside_a_war_is_found_with_its_place() -> None:
    key, cert = _key_and_cert()
    p12 = pkcs12.serialize_key_and_certificates(b"app", key, cert, None, serialization.BestAvailableEncryption(b"x"))
    war = zip_of({"WEB-INF/classes/keystore.p12": p12, "index.html": b"<html></html>"})
    found, _, _ = FileScanner(ContentScanner(build_detectors([]))).scan(io.BytesIO(war), "opt/app.war", len(war))
    assert [(f.member, [h.rule_id for h in f.hits]) for f in found] == [
        ("WEB-INF/classes/keystore.p12", ["keystore-private-key"])
    ]
