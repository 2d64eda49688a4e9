"""Binary keystores that hold a private key: PKCS#12 (.p12, .pfx, Java's default keystore type),
Java's JKS and JCEKS.  A keystore is key material whether or not its password is known (they are
attacked offline), so it is reported at critical, like a PEM key.

A truststore is not: every JVM image ships ``cacerts`` (trusted certificates only), and a
PKCS#12 file of certificates alone is common too.  So a keystore counts only when it holds a key:
- JKS (magic FE ED FE ED) and JCEKS (CE CE CE CE): their entries are walked, and a private-key
  entry (tag 1), or a JCEKS secret-key entry (tag 3), is what makes them key material;
- PKCS#12: a PFX (a DER SEQUENCE whose version is 3) that holds a key bag or a PKCS#8 shrouded key
  bag (OIDs 1.2.840.113549.1.12.10.1.1 and .2) where it can be seen, that is outside an encrypted
  SafeContents, which is where OpenSSL and Java's keytool put the key.  A PFX whose every
  SafeContents is encrypted (no bag in sight) is opened with the default passwords (Java's
  "changeit", none, empty): a key inside is critical, a truststore stays silent; when no default
  password opens it, it is reported at medium (``keystore-encrypted``): what it holds cannot be
  seen, and a scan that cannot look says so.

Only a file's first bytes say what it is, so only a window that starts a file (or a member of an
archive) is looked at: a file read whole is one window, a streamed file's first window starts it.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import hyperscan

from ..models import Severity
from .interface import Match
from .prefilter import PassDetector

_JKS, _JCEKS = b"\xfe\xed\xfe\xed", b"\xce\xce\xce\xce"
_CERT_BAG = b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x0a\x01\x03"  # certBag
_ENCRYPTED_DATA = b"\x06\x09\x2a\x86\x48\x86\xf7\x0d\x01\x07\x06"  # id-encryptedData
_KEY_BAGS = (
    b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x0a\x01\x02",  # pkcs8ShroudedKeyBag
    b"\x06\x0b\x2a\x86\x48\x86\xf7\x0d\x01\x0c\x0a\x01\x01",  # keyBag
)
_HEAD = 512  # what the finding's hash and preview are made of: the keystore's first bytes
_MAX_ENTRIES = 4096


class KeystoreDetector(PassDetector):
    name = "keystore"
    max_match_len = _HEAD

    def __init__(self) -> None:
        # a window that starts like a keystore: in the shared pass, so that the other windows
        # (nearly all) cost nothing here
        self._expressions = [(rb"\A(?:\xfe\xed\xfe\xed|\xce\xce\xce\xce|\x30)", hyperscan.HS_FLAG_SINGLEMATCH)]

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        if not events:
            return
        head = data[:4]
        if head in (_JKS, _JCEKS):
            kind = "JKS" if head == _JKS else "JCEKS"
            if _java_keystore_has_key(data, jceks=head == _JCEKS):
                yield _match(data, f"Java {kind} keystore holding a private key")
        elif head[:1] == b"\x30" and _is_pfx(data):
            if any(bag in data for bag in _KEY_BAGS):
                yield _match(data, "PKCS#12 keystore holding a private key")
            elif _CERT_BAG not in data and _ENCRYPTED_DATA in data:  # every part encrypted: nothing in sight
                opened = _open_with_a_default_password(data)
                if opened is None:
                    yield _match(
                        data,
                        "PKCS#12 keystore encrypted whole with a password that is not a default one: whether "
                        "it holds a private key cannot be seen",
                        Severity.MEDIUM,
                    )
                elif opened:
                    yield _match(data, "PKCS#12 keystore holding a private key (opened with a default password)")


def _match(data: bytes, what: str, severity: Severity = Severity.CRITICAL) -> Match:
    return Match(
        rule_id="keystore-private-key" if severity is Severity.CRITICAL else "keystore-encrypted",
        severity=severity,
        description=f"{what} (key material: crackable offline without the keystore password)",
        start=0,
        end=min(len(data), _HEAD),
        secret=data[:_HEAD],
    )


# the passwords keystores are made with by default (Java's "changeit"), or without one
_DEFAULT_PASSWORDS = (b"changeit", b"", None, b"password", b"changeme")


def _open_with_a_default_password(data: bytes) -> bool | None:
    """Whether a PFX that shows nothing holds a private key, when a default password opens it
    (None: none does).  Java's truststores are made with "changeit", and keytool before JDK 18
    encrypted their certificates (RC2-40): opened, they hold no key and are not reported."""
    try:
        from cryptography.hazmat.primitives.serialization import pkcs12
    except ImportError:  # a dependency; without it nothing can be opened, and that is said
        return None
    for password in _DEFAULT_PASSWORDS:
        try:
            return pkcs12.load_pkcs12(data, password).key is not None
        except (ValueError, TypeError):
            continue
    return None


def _is_pfx(data: bytes) -> bool:
    """A DER SEQUENCE (short or long length) whose first element is INTEGER 3: PFX's version."""
    if len(data) < 8:
        return False
    first = data[1]
    at = 2 if first < 0x80 else 2 + (first & 0x7F)
    return first != 0x80 and (first & 0x7F) <= 4 and data[at : at + 3] == b"\x02\x01\x03"


def _java_keystore_has_key(data: bytes, *, jceks: bool) -> bool:
    """Walk a JKS / JCEKS keystore's entries (magic, version, count; each entry a tag, an alias,
    a date and its data) until a key entry; a damaged or cut keystore ends the walk (not a key)."""
    try:
        version, count = struct.unpack_from(">II", data, 4)
        if version not in (1, 2):
            return False
        at = 12
        for _ in range(min(count, _MAX_ENTRIES)):
            (tag,) = struct.unpack_from(">I", data, at)
            if tag == 1 or (jceks and tag == 3):
                return True
            if tag != 2:
                return False
            at = _skip_utf(data, at + 4) + 8  # alias, date
            if version == 2:
                at = _skip_utf(data, at)  # certificate type
            (length,) = struct.unpack_from(">I", data, at)
            at += 4 + length
    except struct.error:
        return False
    return False


def _skip_utf(data: bytes, at: int) -> int:
    length: int = struct.unpack_from(">H", data, at)[0]
    return at + 2 + length
