"""Archives, compressed files and UTF-16 inside layers (hand-made; tests/engine builds them for real)."""

from __future__ import annotations

import base64
import bz2
import dataclasses
import functools
import gzip
import hashlib
import io
import lzma
import time
import zipfile

import pytest
import zstandard

from scanner.detectors import ContentScanner, build_detectors
from scanner.detectors.known import KnownValue
from scanner.layers.nested import FileScanner, NestedLimits, utf16_encoding
from tests.support.tars import tar_of, zip_of

SECRET = b"nested-test-secret-0451"


def scanner(**limits: int) -> FileScanner:
    return FileScanner(ContentScanner(build_detectors([KnownValue("n", "whole", SECRET)])), NestedLimits(**limits))


def members(data: bytes, path: str = "app/x", **limits: int) -> tuple[set[str | None], list[str]]:
    hits, skips, _ = scanner(**limits).scan(io.BytesIO(data), path)
    return {h.member for h in hits}, [s.reason for s in skips]


def test_jar_inside_war_is_opened_recursively() -> None:
    jar = zip_of({"META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n", "application.yml": b"token: " + SECRET})
    war = zip_of({"WEB-INF/lib/inner.jar": jar, "index.html": b"<html/>"}, zipfile.ZIP_STORED)
    found, skips = members(war, "app.war")
    assert found == {"WEB-INF/lib/inner.jar!/application.yml"}
    assert skips == []


@pytest.mark.parametrize(
    ("wrap", "name", "member"),
    [
        (lambda d: gzip.compress(d), "build.log.gz", "build.log"),
        (lambda d: bz2.compress(d), "dump.sql.bz2", "dump.sql"),
        (lambda d: lzma.compress(d), "notes.xz", "notes"),
        (lambda d: zstandard.ZstdCompressor().compress(d), "trace.zst", "trace"),
    ],
)
def test_single_compressed_files(wrap, name: str, member: str) -> None:  # type: ignore[no-untyped-def]
    found, _ = members(wrap(b"line\nkey=" + SECRET + b"\n"), name)
    assert found == {member}


def test_tgz_inside_zip_inside_tar() -> None:
    tgz = gzip.compress(tar_of({"./config/.env": b"X=" + SECRET}))
    z = zip_of({"bundle.tgz": tgz})
    t = tar_of({"deps/pkg.zip": z})
    found, _ = members(t, "opt/release.tar")
    assert found == {"deps/pkg.zip!/bundle.tgz!/bundle.tar!/config/.env"}


def test_depth_limit_is_reported_and_the_rest_scanned_as_bytes() -> None:
    data = b"k=" + SECRET
    for level in range(4):
        data = zip_of({f"level{level}.txt" if level == 0 else f"l{level}.zip": data}, zipfile.ZIP_STORED)
    found, skips = members(data, "deep.zip", max_depth=2)
    assert any("nested deeper than 2" in s for s in skips)
    assert found  # stored zips keep the secret visible as bytes


def test_corrupt_archive_is_a_reported_skip() -> None:
    data = gzip.compress(b"x" * 10000 + SECRET)
    _, skips = members(data[:-30] + b"\0" * 30, "broken.gz")
    assert any("could not be read in full" in s for s in skips)


def test_expansion_limit_is_reported() -> None:
    bomb = gzip.compress(bytes(5 << 20))
    _, skips = members(bomb, "bomb.gz", max_expanded=1 << 20)
    assert any("expands beyond" in s for s in skips)


def test_encrypted_zip_member_is_reported() -> None:
    data = bytearray(zip_of({"secret.txt": b"x"}, zipfile.ZIP_STORED))
    data[6] |= 1  # general purpose flag: encrypted (local header)
    cd = data.find(b"PK\x01\x02")
    data[cd + 8] |= 1  # and in the central directory
    _, skips = members(bytes(data), "enc.zip")
    assert any("encrypted" in s for s in skips)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_text_is_decoded(encoding: str) -> None:
    text = ("Password for the service account\r\nvalue=" + SECRET.decode() + "\r\n").encode(encoding)
    found, _ = members(text, "C/creds.txt")
    assert found == {None}


def test_utf16_detection() -> None:
    assert utf16_encoding("hello world, this is some text!!".encode("utf-16-le")) == "utf-16-le"
    assert utf16_encoding("hello world, this is some text!!".encode("utf-16-be")) == "utf-16-be"
    assert utf16_encoding(b"\xff\xfe" + "x".encode("utf-16-le")) == "utf-16"
    assert utf16_encoding(b"plain ascii text that is long enough to look at, really") is None
    assert utf16_encoding(bytes(range(256))) is None


def test_binary_files_are_scanned_as_bytes() -> None:
    elf = b"\x7fELF\x02\x01\x01" + bytes(500) + b"\0token\0" + SECRET + b"\0" + bytes(300)
    found, _ = members(elf, "usr/bin/tool")
    assert found == {None}


SMALL_FILES = [
    b"",
    b"token = ghp_" + b"Zq8w" * 9 + b"\n",
    ("caf\u00e9 token = ghp_" + "Zq8w" * 9 + "\n").encode("utf-16"),
    gzip.compress(b"aws = AKIA" + b"Q7ZP" * 4 + b"\n"),
    zip_of({"a/.env": b"GITHUB_TOKEN=ghp_" + b"Zq8w" * 9 + b"\n"}),
    tar_of({"etc/creds": b"export TOKEN=ghp_" + b"Zq8w" * 9 + b"\n"}),
    b"k: " + base64.b64encode(b"token: ghp_" + b"Zq8w" * 9) + b"\n" + b"x" * 600,
    bytes(range(256)) * 40,
]


@pytest.mark.parametrize("data", SMALL_FILES)
def test_a_small_file_read_whole_is_scanned_as_the_stream_would_be(data: bytes) -> None:
    files = scanner()
    whole = files.scan(io.BytesIO(data), "app/f", len(data))  # the one-window path
    streamed = files.scan(io.BytesIO(data), "app/f")  # no size: the stream path
    # a file read whole is also hashed (its package's record is checked against it); a stream is not
    assert all(f.digests == (hashlib.md5(data).hexdigest(), hashlib.sha1(data).hexdigest(),
                             hashlib.sha256(data).hexdigest()) for f in whole[0])  # fmt: skip
    assert ([dataclasses.replace(f, digests=None) for f in whole[0]], *whole[1:]) == streamed
    assert any(whole[0]) or not data or data.startswith(bytes(range(8)))  # the samples hold tokens
    content = files.content
    assert content.scan_window(data, "app/f") == content.scan_stream(io.BytesIO(data), path="app/f")


@pytest.mark.parametrize("wrap", [zip_of, tar_of])
def test_small_members_read_whole_are_scanned_as_the_stream_would_be(
    wrap: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wheel or a jar holds hundreds of small members: each is read whole and scanned as one
    window, with the same hits, skips and counts as the stream path (every kind of small file,
    an archive inside an archive included)."""
    from scanner.layers import nested

    members = {f"m/{i}": data for i, data in enumerate(SMALL_FILES)}
    members["deeper.zip"] = zip_of(dict(list(members.items())[:4]))
    archive = wrap(members)  # type: ignore[operator]
    files = scanner()
    whole = files.scan(io.BytesIO(archive), "app/lib.whl", len(archive))
    monkeypatch.setattr(nested, "WHOLE_MEMBER", -1)  # every member through the stream path
    streamed = files.scan(io.BytesIO(archive), "app/lib.whl", len(archive))
    assert whole == streamed
    # 8 members (the gzip, zip and tar ones counted by the file inside) and deeper.zip's 4
    assert whole[2] == 12 and any(whole[0])


@functools.cache
def _bomb() -> bytes:
    """100 MiB of zeros in a few KiB of zstd: over any member's budget in a small archive."""
    return zstandard.ZstdCompressor(level=3).compress(bytes(100 << 20))


@pytest.mark.parametrize("wrap", [zip_of, tar_of])
def test_a_bomb_member_costs_only_itself(wrap) -> None:  # type: ignore[no-untyped-def]
    """The sixth member blows its budget: a limit skip for it alone; the seventh is still scanned
    (zip: from its central directory; tar: the stream goes on after the member)."""
    files = {f"docs/{i}.txt": b"nothing here %d\n" % i for i in range(5)}
    files["data/bomb.bin.zst"] = _bomb()
    files["etc/app.env"] = b"KEY=" + SECRET + b"\n"
    start = time.monotonic()
    hits, skips, scanned = scanner().scan(io.BytesIO(wrap(files)), "opt/bundle")
    assert {h.member for h in hits} == {"etc/app.env"}
    assert [(s.where, s.limit) for s in skips] == [("opt/bundle!/data/bomb.bin.zst", True)]
    assert "decompression bomb" in skips[0].reason and "other members are" in skips[0].reason
    assert scanned == 6  # five docs and the env file; the bomb is a skip
    assert time.monotonic() - start < 30


@pytest.mark.parametrize("bombs", [12, 100])
def test_many_bomb_members_are_bounded_by_the_file_budget(bombs: int) -> None:
    """Each bomb may take at most half of what is left of the file's budget: a dozen of them still
    leave room for the member after them, and a hundred cost no more than the one budget (what no
    longer fits is a reported limit skip, never a silent one)."""
    files = {f"b{i}.zst": _bomb() for i in range(bombs)} | {"z/last.env": b"KEY=" + SECRET}
    data = zip_of(files)
    start = time.monotonic()
    hits, skips, _ = scanner().scan(io.BytesIO(data), "many.zip", len(data))
    assert time.monotonic() - start < 30
    assert skips and all(s.limit for s in skips)
    assert {s.where for s in skips} >= {f"many.zip!/b{i}.zst" for i in range(min(bombs, 20))}
    if bombs == 12:
        assert {h.member for h in hits} == {"z/last.env"} and len(skips) == 12
    else:
        assert hits or any(s.where in ("many.zip", "many.zip!/z/last.env") for s in skips)


def test_a_bomb_inside_a_nested_zip_costs_only_itself() -> None:
    inner = zip_of({"a.zst": _bomb(), "b.env": b"KEY=" + SECRET})
    outer = zip_of({"lib/inner.jar": inner, "README": b"hello"})
    hits, skips, _ = scanner().scan(io.BytesIO(outer), "app.war")
    assert {h.member for h in hits} == {"lib/inner.jar!/b.env"}
    assert [s.where for s in skips] == ["app.war!/lib/inner.jar!/a.zst"]


def test_zip_members_read_in_one_go_match_zipfile_on_damaged_zips(monkeypatch: pytest.MonkeyPatch) -> None:
    """A small member is read straight from the zip's bytes, and through zipfile only when anything
    is unusual: on zips damaged at random (headers, names, data, CRCs), hits, skips and counts are
    what zipfile alone gives."""
    import random

    from scanner.layers import nested

    inner = zip_of({"conf/db.properties": b"password=" + SECRET + b"\n", "x.txt": b"plain\n" * 40})
    members = {
        "WEB-INF/lib/a.jar": inner,
        "stored.txt": b"key: " + SECRET,
        "big.txt": b"line\n" * 3000 + SECRET,
        "caf\u00e9.txt": b"token " + SECRET,
    }
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            method = zipfile.ZIP_STORED if name.startswith("stored") else zipfile.ZIP_DEFLATED
            zf.writestr(name, data, compress_type=method)
    good = buf.getvalue()
    real = nested._member_bytes
    files = scanner()
    rng = random.Random(20)
    cases = [good] + [good[: rng.randrange(len(good))] for _ in range(20)]
    for _ in range(400):
        data = bytearray(good)
        for _ in range(rng.choice([1, 1, 2, 3])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(bytes(data))
    used = 0
    for case in cases:
        monkeypatch.setattr(nested, "_member_bytes", real)
        fast = files.scan(io.BytesIO(case), "app/x.war", len(case))
        monkeypatch.setattr(nested, "_member_bytes", lambda *_: None)
        slow = files.scan(io.BytesIO(case), "app/x.war", len(case))
        assert fast == slow
        used += fast != files.scan(io.BytesIO(good[:30]), "app/x.war", 30)
    assert used > 100  # most cases opened the zip and read members
    hits, skips, count = files.scan(io.BytesIO(good), "app/x.war", len(good))
    assert (
        count == 5 and not skips and {h.member for h in hits} >= {"stored.txt", "WEB-INF/lib/a.jar!/conf/db.properties"}
    )


def _gzip_cases() -> list[bytes]:
    """Gzip files as a venv holds them, and every way one can be unusual or damaged."""
    import random

    text = b"line\n" * 300 + b"token=" + SECRET + b"\n" + b"more\n" * 300
    one = gzip.compress(text)
    named = gzip.GzipFile  # a header with a file name and a timestamp
    buf = io.BytesIO()
    with named("conf.json", "wb", fileobj=buf, mtime=1) as f:
        f.write(text)
    cases = [
        one,
        buf.getvalue(),
        gzip.compress(b""),
        gzip.compress(b"first\n" * 3) + gzip.compress(text),  # two members: both are read
        one + bytes(16),  # zero padding after the member, which gzip readers allow
        one + b"trailing bytes",
        one[:-3],  # cut inside the trailer
        one[:40],  # cut inside the data
        one[:-8] + bytes([one[-8] ^ 1]) + one[-7:],  # a wrong CRC-32
        one[:-4] + bytes([one[-4] ^ 1]) + one[-3:],  # a wrong length
        gzip.compress(tar_of({"etc/app.env": b"KEY=" + SECRET})),  # an archive inside: the stream path
        gzip.compress(gzip.compress(text)),  # gzip in gzip
        gzip.compress(text.decode().encode("utf-16")),  # UTF-16 text inside
        gzip.compress(bytes(3 << 20) + SECRET),  # more than GUNZIP_WHOLE (made 2 MiB below)
        gzip.compress(text * 40),  # more than one window of the content scanner
        gzip.compress(b"word " * 300_000 + text),  # over WHOLE_MEMBER: its windows sliced from the inflated bytes
    ]
    rng = random.Random(23)
    for _ in range(150):
        data = bytearray(one)
        for _ in range(rng.choice([1, 2])):
            data[rng.randrange(len(data))] = rng.randrange(256)
        cases.append(bytes(data))
    return cases


def test_gzip_files_inflated_in_one_go_match_the_stream_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzip file read whole is inflated in one go when it inflates cleanly to plain content, and
    read through the gzip stream otherwise: on every case above (and a budget the file overruns),
    hits, skips and counts are what the stream path alone gives."""
    from scanner.layers import nested

    monkeypatch.setattr(nested, "GUNZIP_WHOLE", 2 << 20)
    real, real_stream = nested._gunzip, nested.decompressor
    streamed: list[str] = []

    def stream(kind: str, raw: object) -> object:
        streamed.append(kind)
        return real_stream(kind, raw)  # type: ignore[arg-type]

    monkeypatch.setattr(nested, "decompressor", stream)
    used = 0
    for limits in ({}, {"max_ratio": 1, "max_expanded": 1 << 20}):
        files = scanner(**limits)
        for case in _gzip_cases():
            streamed.clear()
            fast = files.scan(io.BytesIO(case), "usr/lib/x.json.gz", len(case))
            used += case[:3] == b"\x1f\x8b\x08" and streamed[:1] != ["gzip"]  # not read through a gzip stream
            monkeypatch.setattr(nested, "_gunzip", lambda *_: None)
            slow = files.scan(io.BytesIO(case), "usr/lib/x.json.gz", len(case))
            monkeypatch.setattr(nested, "_gunzip", real)
            assert fast == slow
    assert used > 10  # the clean cases took the one-go path
    streamed.clear()
    files.scan(io.BytesIO(tgz := gzip.compress(tar_of({"a.env": SECRET}))), "x.tgz", len(tgz))
    assert streamed[:1] == ["gzip"]  # an archive inside: its members' budgets count as it streams


def test_a_gzip_file_in_one_go_is_found_at_its_line() -> None:
    text = b"x\n" * 5000 + b"token=" + SECRET + b"\n"
    data = gzip.compress(text)
    hits, skips, count = scanner().scan(io.BytesIO(data), "a/b.log.gz", len(data))
    assert [(f.member, [h.line for h in f.hits]) for f in hits] == [("b.log", [5001])] and not skips and count == 1


def test_the_container_check_skips_only_heads_that_cannot_be_one() -> None:
    """_container looks at zip and compression magics only for the first bytes they start with, and
    at tar headers only in heads long enough: the same answer as asking every check of every head
    (each first byte with several tails, cut real archives, random heads)."""
    import random
    import tarfile

    from scanner.layers.nested import ZIP_MAGIC
    from scanner.layers.streams import looks_like_tar, sniff

    def every_check(head: bytes) -> str:
        kind = "zip" if head[:4] in ZIP_MAGIC else sniff(head)
        if kind == "none" and looks_like_tar(head) and head[:512] != bytes(512):
            kind = "tar"
        return "" if kind == "none" else kind

    real = [zip_of({"a": b"x"}), gzip.compress(b"x"), bz2.compress(b"x"), lzma.compress(b"x"), bytes(600)]
    real += [
        zstandard.ZstdCompressor().compress(b"x"),
        b"\x50\x2a\x4d\x18" + bytes(20),
        b"\x5f\x2a\x4d\x18" + bytes(20),
    ]
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
            tar.addfile(tarfile.TarInfo("a"))
        ustar = buf.getvalue()
        real += [ustar, ustar[:257] + bytes(8) + ustar[265:]]  # and as a v7 header: no magic
    # v7 headers (no magic) whose checksum holds, its field written as tar writers write it, and each
    # byte at the field's start (148), where _container asks looks_like_tar only for a few
    v7s = []
    for field in (b"%06o\x00 ", b"  %05o\x00", b"%07o\x00", b"\t%06o\x00", b"\x00%06o "):
        v7 = bytearray(ustar[:257] + bytes(8) + ustar[265:512])
        v7[148:156] = b" " * 8
        v7[148:156] = (field % sum(v7))[:8]
        v7s.append(bytes(v7))
    text = b"import os\n" * 60
    real += v7s
    real += [h[:148] + bytes([c]) + h[149:] for h in (v7s[0], v7s[1], text, bytes(512)) for c in range(256)]
    rng = random.Random(7)
    heads = [r[:n] for r in real for n in (0, 1, 3, 8, 261, 262, 511, 512)] + real
    heads += [bytes([c]) + tail for c in range(256) for tail in (b"", b"K\x03\x04", bytes(600))]
    heads += [rng.randbytes(rng.choice([1, 5, 262, 512])) for _ in range(3000)]
    kinds = [every_check(h[:512]) for h in heads]
    assert [FileScanner._container(h[:512]) for h in heads] == kinds
    assert set(kinds) == {"", "zip", "gzip", "bzip2", "xz", "zstd", "tar"}
    assert all(every_check(v7) == "tar" for v7 in v7s[:4])  # a NUL first: an empty field, no tar
