from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable
from typing import Any

import pytest

from scanner.detectors import ContentScanner, build_detectors
from scanner.detectors.known import KnownValue
from scanner.models import Hit, sha256_hex

SECRET = b"chunk-boundary-secret-0123456789"


def scanner(chunk: int) -> ContentScanner:
    return ContentScanner(build_detectors([KnownValue("s", "whole", SECRET)]), chunk_size=chunk)


@pytest.mark.parametrize("chunk", [4096, 16384, 65536])
@pytest.mark.parametrize("shift", range(-40, 41, 7))
def test_a_match_across_a_chunk_boundary_is_found_once_with_its_line(chunk: int, shift: int) -> None:
    sc = scanner(chunk)
    size = sc.chunk_size
    lines = b"filler line\n" * 2000
    pos = size + shift  # the secret straddles (or sits near) the first boundary
    data = (lines * (2 * size // len(lines) + 2))[:pos] + SECRET + b"\n" + lines[:size]
    hits = [h for h in sc.scan_stream(io.BytesIO(data)) if h.rule_id == "known-secret"]
    assert len(hits) == 1, hits
    assert hits[0].line == data[:pos].count(b"\n") + 1
    assert hits[0].secret_sha256 == sha256_hex(SECRET)


def test_every_occurrence_in_a_large_stream_is_found() -> None:
    sc = scanner(4096)
    block = b"x" * 3000 + SECRET + b"\n"
    hits = [h for h in sc.scan_stream(io.BytesIO(block * 50)) if h.rule_id == "known-secret"]
    assert [h.line for h in hits] == list(range(1, 51))


def test_overlap_is_at_least_the_longest_match() -> None:
    sc = scanner(1024)
    assert sc.chunk_size >= sc.overlap >= 16384  # private keys are long


def test_weaker_evidence_on_the_same_value_is_dropped() -> None:
    sc = ContentScanner(build_detectors([]))
    hits = sc.scan_bytes(b"aws_secret_access_key = " + b"AbCdEfGh12/+" * 3 + b"AbCd\n")
    assert [h.rule_id for h in hits] == ["aws-secret-access-key"]


def test_mask_replaces_matches() -> None:
    sc = scanner(4096)
    masked = sc.mask("RUN echo " + SECRET.decode() + " > /x")
    assert SECRET.decode() not in masked and "<redacted>" in masked


def test_patterns_inside_base64_blobs_are_found() -> None:
    import base64

    token = "ghp_" + "Zq8" * 12
    pem = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + b"Ab9" * 30 + b"\n-----END RSA PRIVATE KEY-----\n"
    manifest = (
        "apiVersion: v1\nkind: Secret\ndata:\n"
        f"  token: {base64.b64encode(token.encode()).decode()}\n"
        f"  tls.key: {base64.b64encode(pem).decode()}\n"
    ).encode()
    hits = ContentScanner(build_detectors([])).scan_bytes(manifest)
    got = {(h.rule_id, h.encoding, h.line) for h in hits}
    assert ("github-token", "base64", 4) in got
    assert ("private-key-rsa", "base64", 5) in got


def test_hashes_and_binary_base64_are_not_decoded_into_noise() -> None:
    import base64
    import hashlib
    import os

    record = b"".join(
        b"pkg/mod%d.py,sha256=%s,1234\n"
        % (i, base64.urlsafe_b64encode(hashlib.sha256(b"%d" % i).digest()).rstrip(b"="))
        for i in range(200)
    )
    blob = b"data:image/png;base64," + base64.b64encode(os.urandom(3000))
    assert ContentScanner(build_detectors([])).scan_bytes(record + blob) == []


@pytest.mark.parametrize(
    "text",
    [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "GITHUB_TOKEN=ghp_" + "x" * 36,
        "DB_PASSWORD=your_password_here_please",
        "DB_PASSWORD=changeme-in-production",
        "STRIPE_SECRET_KEY=sk_live_" + "0123456789abcdefghijklmn",  # no Stripe key: the .env value is a placeholder
    ],
)
def test_examples_and_placeholders_are_downgraded_not_dropped(text: str) -> None:
    from scanner.models import Severity

    hits = ContentScanner(build_detectors([])).scan_bytes(text.encode())
    assert hits, "an example is still reported"
    assert all(h.severity is Severity.LOW and h.confidence == "low" and "example" in h.description for h in hits)


def test_known_secrets_are_never_downgraded() -> None:
    from scanner.models import Severity

    value = b"my-example-secret-value"
    hits = ContentScanner(build_detectors([KnownValue("k", "whole", value)])).scan_bytes(b"x=" + value)
    assert [(h.rule_id, h.severity, h.confidence) for h in hits if h.rule_id == "known-secret"] == [
        ("known-secret", Severity.CRITICAL, "high")
    ]


def test_real_looking_values_keep_their_severity() -> None:
    from scanner.models import Severity

    hits = ContentScanner(build_detectors([])).scan_bytes(b"aws_access_key_id = AKIAQ3EGRHC7XW5JZT2L\n")
    assert [(h.rule_id, h.severity) for h in hits] == [("aws-access-key-id", Severity.HIGH)]


@pytest.mark.parametrize(
    ("path", "downgraded"),
    [
        ("usr/share/doc/libxmlsec1-dev/examples/rsakey.pem", True),
        ("app/node_modules/axios/README.md", True),
        ("usr/lib/python3/site-packages/botocore/data/iam/2010-05-08/examples-1.json", True),
        ("srv/app/tests/fixtures/keys.env", True),
        ("srv/app/config/production.env", False),
        ("root/.aws/credentials", False),
        ("opt/app/app.war!/WEB-INF/classes/application.yml", False),
    ],
)
def test_findings_in_docs_and_tests_are_downgraded(path: str, downgraded: bool) -> None:
    from scanner.models import Severity

    data = b"GITHUB_TOKEN=ghp_" + b"Zq8w" * 9 + b"\n"
    hits = [h for h in ContentScanner(build_detectors([])).scan_bytes(data, path=path) if h.rule_id == "github-token"]
    assert len(hits) == 1
    assert (hits[0].severity is Severity.LOW) is downgraded
    known = ContentScanner(build_detectors([KnownValue("k", "whole", b"ghp_" + b"Zq8w" * 9)])).scan_bytes(
        data, path=path
    )
    assert all(h.severity is Severity.CRITICAL for h in known if h.rule_id == "known-secret")


def test_a_gated_detector_finds_nothing_without_an_event() -> None:
    """The content scanner skips a detector of the shared pass when the pass has no event for it
    (and the base64 decoding when no run was found): each must then find nothing, even in a
    window full of what it would find with its events."""
    from scanner.detectors.prefilter import PassDetector

    window = (
        b"password = 'q8Zr!v2Lp0xW#m4T'\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9KEYab\n"
        b"token: ghp_"
        + b"a1B2" * 9
        + b"\n"
        + b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n"
        b"mailchimp_key = 9f8e7d6c5b4a39281706f5e4d3c2b1a0-us12\n"
        b"SENDBIRD_API_TOKEN=q8Zr2v2Lp0xW7m4TzK1p\n"
    )
    scanner = ContentScanner(build_detectors([]))
    gated = [d for d in scanner.detectors if isinstance(d, PassDetector)]
    assert {type(d).__name__ for d in gated} == {
        "PatternDetector",
        "EntropyDetector",
        "DetectSecretsDetector",
        "VendorContextDetector",
        "KeystoreDetector",
    }
    keystore = b"\xfe\xed\xfe\xed" + struct.pack(">III", 2, 1, 1)  # a JKS whose first entry is a private key
    for d in gated:
        k = scanner._group[id(d)]
        what = type(d).__name__
        data = keystore if what == "KeystoreDetector" else window
        found = scanner._pass.scan(data)[k]
        assert found and list(d.find_events(data, "f", found)), what  # it does find with its events
        assert list(d.find_events(data, "f", [])) == [], what
    (detector,) = (d for d in gated if type(d).__name__ == "KeystoreDetector")
    assert not scanner._pass.scan(window)[scanner._group[id(detector)]]  # text does not wake it
    assert scanner.decoded.events(window) and not list(scanner.decoded.find(window, "f", []))


def test_a_known_secret_detector_without_secrets_is_left_out_and_could_find_nothing() -> None:
    """Without --secret the known-secret detector holds no literal: the content scanner does not
    call it (a call per window), and called it finds nothing; with a secret it is called."""
    from scanner.detectors.known import KnownSecretsDetector

    window = b"x " + SECRET + b" " + SECRET.hex().encode() + b"\n"
    bare = ContentScanner(build_detectors([]))
    (idle,) = (d for d in bare.detectors if isinstance(d, KnownSecretsDetector))
    assert idle not in [d for d, _ in bare._plans[0]] and idle not in bare._plans[1]
    assert list(idle.find(window, "f")) == []
    armed = scanner(4096)
    assert any(isinstance(d, KnownSecretsDetector) for d, _ in armed._plans[0])
    assert {h.encoding for h in armed.scan_window(window, "f") if h.detector == "known-secret"} == {"raw", "hex"}


def _windows(sc: ContentScanner, scan: Callable[[], list[Hit]]) -> tuple[list[Hit], list[tuple[bytes, int, int, int]]]:
    """What ``scan`` returns, and each window it scanned: its bytes, where its fresh part starts,
    its offset in the file and the lines before it."""
    windows: list[tuple[bytes, int, int, int]] = []
    real = sc._window_hits

    def record(window: bytes, found: list[Any], fresh: int, start: int, lines: Callable[[], int], *rest: Any) -> None:
        windows.append((window, fresh, start, lines()))
        real(window, found, fresh, start, lines, *rest)

    sc._window_hits = record  # type: ignore[method-assign]
    try:
        return scan(), windows
    finally:
        del sc._window_hits


@pytest.mark.parametrize("chunk", [4096, 40000])  # 4096: chunk_size is the overlap itself (17,000 bytes)
def test_a_held_file_is_scanned_as_a_stream_of_its_bytes(chunk: int) -> None:
    """scan_held (windows sliced from the bytes) finds what scan_stream finds in a stream of them:
    the same hits, lines and merges, with values on every side of each window's edges and of the
    overlaps, at lengths around the windows' ends, and with more than 4096 hits (the seen set is
    pruned)."""
    import base64

    sc = scanner(chunk)
    size, overlap = sc.chunk_size, sc.overlap
    aws = b"AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYzz9KEYab\n"
    blob = b"\n" + base64.b64encode(b"password = 'q8Zr!v2Lp0xW#m4T'\ntoken: " + SECRET + b"\n") + b"\n"
    line = b"filler line with words\n"
    edges = [size, 2 * size - overlap, 3 * size - 2 * overlap, 2 * size, 3 * size - overlap]
    lengths = {n + d for n in (size, 2 * size - overlap, 3 * size - overlap, 3 * size + 7) for d in (-1, 0, 1)}
    seen: set[str | None] = set()
    for length in sorted(lengths):
        body = bytearray((line * (length // len(line) + 1))[:length])
        for edge in edges:
            for at, value in ((edge - 40, SECRET), (edge - 10, aws), (edge - overlap - 20, blob), (edge + 3, SECRET)):
                if at >= 0 and at + len(value) <= length:
                    body[at : at + len(value)] = value
        data = bytes(body)
        held, held_windows = _windows(sc, functools.partial(sc.scan_held, data, "app/conf.env"))
        streamed, stream_windows = _windows(
            sc, functools.partial(sc.scan_stream, io.BytesIO(data), path="app/conf.env")
        )
        assert held == streamed and held_windows == stream_windows, length
        seen.update(h.encoding for h in held)
    assert {"raw", "base64"} <= seen  # the values were found, the blob's decoded too
    many = (SECRET + b"\n") * 6000 + aws
    held = sc.scan_held(many, "app/conf.env")
    assert held == sc.scan_stream(io.BytesIO(many), path="app/conf.env") and len(held) > 6000
    assert sc.scan_held(b"", "f") == [] and sc.scan_held(SECRET, "f") == sc.scan_stream(io.BytesIO(SECRET), path="f")


@pytest.mark.parametrize("limit", [4096 * 3, 4096 * 3 + 1, 4096 * 3 - 1])
def test_a_limit_ends_the_stream_at_that_byte_with_every_line_right(limit: int) -> None:
    sc = scanner(4096)
    size = sc.chunk_size
    line = b"x" * 60 + b"\n"
    data = line * (limit // len(line) + 200)
    ends = [limit - len(SECRET), limit - len(SECRET) - 1, limit - len(SECRET) + 1, size - 10, 2 * size + 5]
    for end in ends:  # a secret ending at the limit, one byte either side, and across boundaries
        body = data[:end] + SECRET + data[end + len(SECRET) :]
        hits = [h for h in sc.scan_stream(io.BytesIO(body), limit=limit) if h.rule_id == "known-secret"]
        expect = [body[:end].count(b"\n") + 1] if end + len(SECRET) <= limit else []
        assert [h.line for h in hits] == expect, end


@pytest.mark.parametrize("pending", [1, 5000, 40000, 1 << 30])
def test_lines_counted_only_when_a_hit_needs_them_are_right(pending: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The newlines before a window are counted when a hit asks (or when LINES_PENDING bytes of
    earlier windows wait): hits after windows with none, after several, and two in one window."""
    from scanner.detectors import content

    monkeypatch.setattr(content, "LINES_PENDING", pending)
    sc = scanner(4096)
    line = b"filler line with words\n"
    body = bytearray(line * 4000)  # ~90 KB: about 4 windows of the scanner's chunk
    places = [100, 30_000, 30_200, 60_000, len(body) - 200]
    for at in reversed(places):
        body[at:at] = SECRET
    data = bytes(body)
    hits = [h for h in sc.scan_stream(io.BytesIO(data)) if h.rule_id == "known-secret"]
    starts = [i for i in range(len(data)) if data.startswith(SECRET, i)]
    assert [h.line for h in hits] == [data[:i].count(b"\n") + 1 for i in starts]
    assert len(hits) == len(places)
