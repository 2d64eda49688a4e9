from __future__ import annotations

import io

import pytest

from scanner.detectors import ContentScanner, build_detectors
from scanner.detectors.known import KnownValue
from scanner.layers.walk import LayerWalker, WalkLimits, looks_like_tar, normalize, sniff
from scanner.models import EntryKind, sha256_hex
from tests.support.tars import compress, layer_tar

SECRET = b"walk-test-secret-value-0042"


def walker(**limits: int) -> LayerWalker:
    return LayerWalker(ContentScanner(build_detectors([KnownValue("w", "whole", SECRET)])), WalkLimits(**limits))


@pytest.mark.parametrize("kind", ["none", "gzip", "zstd"])
def test_walk_reads_every_file_and_computes_digests(kind: str) -> None:
    plain = layer_tar([("etc/", "dir"), ("etc/app.conf", b"x=" + SECRET + b"\n"), ("etc/other", b"clean\n")])
    blob = compress(plain, kind)
    scan = walker().walk(io.BytesIO(blob))
    assert scan.error is None
    assert scan.compression == kind
    assert scan.diff_id == "sha256:" + sha256_hex(plain)
    assert scan.blob_digest == "sha256:" + sha256_hex(blob)
    assert scan.size == len(plain) and scan.compressed_size == len(blob)
    assert scan.files_scanned == 2
    assert [(f.path, [h.line for h in f.hits]) for f in scan.files] == [("etc/app.conf", [1])]


def test_entry_kinds_whiteouts_links_and_devices() -> None:
    plain = layer_tar(
        [
            ("./a/", "dir"),
            ("./a/.wh..wh..opq", b""),
            ("./.wh.gone", b""),
            ("./a/s", ("sym", "/etc/passwd")),
            ("./a/h", ("hard", "./a/f")),
            ("./a/f", b"data"),
            ("./p", "fifo"),
            ("./.wh..wh.plnk", "dir"),
        ]
    )
    kinds = {e.path: e.kind for e in walker().walk(io.BytesIO(plain)).entries}
    assert kinds == {
        "a": EntryKind.DIR,
        "a/.wh..wh..opq": EntryKind.OPAQUE,
        ".wh.gone": EntryKind.WHITEOUT,
        "a/s": EntryKind.SYMLINK,
        "a/h": EntryKind.HARDLINK,
        "a/f": EntryKind.FILE,
        "p": EntryKind.OTHER,
        ".wh..wh.plnk": EntryKind.OTHER,
    }


def test_traversal_names_are_contained_and_reported() -> None:
    plain = layer_tar([("../../etc/evil", SECRET), ("/abs/path", b"ok")])
    scan = walker().walk(io.BytesIO(plain))
    assert {f.path for f in scan.files} == {"etc/evil"}
    assert {e.path for e in scan.entries} == {"etc/evil", "abs/path"}
    assert any("'..'" in s.reason for s in scan.skips)


@pytest.mark.parametrize("cut", [100, 700, 1500])
def test_truncated_layer_is_an_error_not_a_clean_result(cut: int) -> None:
    plain = layer_tar([("f", b"a" * 1000 + SECRET), ("g", b"b" * 2000)])
    scan = walker().walk(io.BytesIO(plain[:cut]))
    assert scan.error is not None


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_corrupt_compression_is_an_error(kind: str) -> None:
    blob = bytearray(compress(layer_tar([("f", b"x" * 5000)]), kind))
    blob[len(blob) // 2] ^= 0xFF
    blob[len(blob) // 2 + 1] ^= 0xFF
    scan = walker().walk(io.BytesIO(bytes(blob)))
    assert scan.error is not None


def test_size_limit_skip_is_reported() -> None:
    scan = walker(max_file_size=10).walk(io.BytesIO(layer_tar([("big", SECRET), ("small", b"tiny")])))
    assert scan.files == ()
    assert [(s.where, "max-file-size" in s.reason) for s in scan.skips] == [("big", True)]


def test_large_file_is_scanned_in_chunks_whole() -> None:
    data = b"z" * (5 << 20) + SECRET + b"\n"
    scan = walker().walk(io.BytesIO(layer_tar([("huge.bin", data)])))
    assert [f.path for f in scan.files] == ["huge.bin"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [("./a/b", "a/b"), ("/a/b/", "a/b"), ("a/../../b", "b"), ("a//b/./c", "a/b/c"), (".", "."), ("./", ".")],
)
def test_normalize(name: str, expected: str) -> None:
    assert normalize(name) == expected


def test_sniff_and_tar_detection() -> None:
    assert sniff(b"\x1f\x8b\x08\x00") == "gzip"
    assert sniff(b"\x28\xb5\x2f\xfd") == "zstd"
    assert sniff(b"\x50\x2a\x4d\x18\x00\x00\x00\x00") == "zstd"
    assert sniff(b"BZh9") == "bzip2"
    assert sniff(b"\xfd7zXZ\x00") == "xz"
    assert sniff(b"{}") == "none"
    assert looks_like_tar(layer_tar([("a", b"b")]))
    assert looks_like_tar(bytes(1024))
    assert not looks_like_tar(b'{"a": 1}' + bytes(600))


@pytest.mark.parametrize(
    ("form", "is_tar"),
    [
        ("%07o\0", True),
        (" %o\0", True),
        ("+%o\0", True),
        ("\t%06o\0", True),
        ("underscore", True),  # int("1_234", 8) reads it, as tarfile's int() does
        ("%06o9", False),  # not octal
        ("x%o\0", False),
        ("%o\0", "wrong-sum"),
    ],
)
def test_a_v7_header_is_recognised_by_its_checksum_as_int_reads_it(form: str, is_tar: bool | str) -> None:
    """An old (v7, no "ustar") header is a tar when its checksum field, read as int(field, 8)
    reads it, matches the header's bytes; a field int() refuses is not, without raising."""
    header = bytearray(layer_tar([("a", b"b")])[:512])
    header[257:265] = bytes(8)  # no ustar magic
    total = sum(header[:148]) + 8 * 32 + sum(header[156:])
    if is_tar == "wrong-sum":
        total += 1
    digits = f"{total:o}"
    text = digits[0] + "_" + digits[1:] + "\0" if form == "underscore" else form % total
    header[148:156] = text.encode().ljust(8, b"\0")[:8]
    assert looks_like_tar(bytes(header) + bytes(512)) is (is_tar is True)


def test_diff_id_covers_padding_after_the_end_of_archive_blocks() -> None:
    plain = layer_tar([("f", b"data")]) + bytes(3 << 20)  # writers may pad far past the end blocks
    scan = walker().walk(io.BytesIO(compress(plain, "gzip")))
    assert scan.error is None
    assert scan.diff_id == "sha256:" + sha256_hex(plain)
    assert scan.size == len(plain)


def test_normalize_agrees_with_the_general_rule_on_random_names() -> None:
    """normalize's shortcut for names already normal changes nothing."""
    import posixpath
    import random

    def general(name: str) -> str:
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        return posixpath.normpath("/" + name).lstrip("/") or "."

    rng = random.Random(5)
    parts = ["a", "bc", ".", "..", "", "/", "é", "\udcff", ".wh.x", "a.", ".a", " ", "\\"]
    names = ["".join(rng.choice(parts) for _ in range(rng.randint(0, 6))) for _ in range(20_000)]
    for name in [*names, "usr/lib/x.so", "a", "a/b.c/d"]:
        assert normalize(name) == general(name), name
