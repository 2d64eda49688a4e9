"""Hostile layers: bombs, huge member counts, long names, time limits: a reported skip or an
incomplete scan (exit 3), never a crash, a hang or a clean result."""

from __future__ import annotations

import gzip
import io
import resource
import tarfile
import time
import zlib
from pathlib import Path

from scanner import ScanOptions, scan_image
from scanner.cli import Policy
from scanner.detectors import ContentScanner, build_detectors
from scanner.layers.nested import NestedLimits
from scanner.layers.walk import LayerWalker, WalkLimits
from scanner.sources import TarballSource
from tests.support.tars import compress, docker_archive, layer_tar


def walker(**limits: object) -> LayerWalker:
    return LayerWalker(ContentScanner(build_detectors([])), WalkLimits(**limits))  # type: ignore[arg-type]


def _zeros_layer(size: int) -> bytes:
    """A gzip layer holding one file of ``size`` zero bytes, compressed without holding it whole."""
    header = tarfile.TarInfo("zeros")
    header.size = size
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    out = [comp.compress(header.tobuf(format=tarfile.GNU_FORMAT))]
    block = bytes(1 << 20)
    for _ in range(size // len(block)):
        out.append(comp.compress(block))
    out.append(comp.compress(bytes(1024)))  # end of archive
    out.append(comp.flush())
    return b"".join(out)


def test_gzip_bomb_layer_stops_at_the_ratio_limit() -> None:
    bomb = _zeros_layer(512 << 20)  # 512 MiB of zeros in ~500 KiB
    start = time.monotonic()
    scan = walker(max_ratio=100).walk(io.BytesIO(bomb))
    assert scan.error is not None and "decompression bomb" in scan.error
    assert time.monotonic() - start < 30


def test_absolute_layer_size_limit() -> None:
    scan = walker(max_layer_bytes=1 << 20).walk(io.BytesIO(layer_tar([("big", bytes(2 << 20))])))
    assert scan.error is not None and "expands beyond" in scan.error


def test_member_count_limit() -> None:
    scan = walker(max_members=100).walk(io.BytesIO(layer_tar([(f"f{i}", b"") for i in range(150)])))
    assert scan.error is not None and "more than 100 members" in scan.error


def test_long_names_are_reported_skips() -> None:
    scan = walker(max_path=100).walk(io.BytesIO(layer_tar([("a" * 300, b"x"), ("ok", b"y")])))
    assert scan.error is None
    assert any("name longer than 100" in s.reason for s in scan.skips)
    assert [e.path for e in scan.entries] == ["ok"]


def test_time_limit() -> None:
    scan = walker(deadline=time.monotonic() - 1).walk(io.BytesIO(layer_tar([("a", b"x")])))
    assert scan.error is not None and "time limit" in scan.error


def test_a_hundred_thousand_empty_files_in_bounded_time_and_memory() -> None:
    data = compress(layer_tar([(f"d/{i}", b"") for i in range(100_000)]), "gzip")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.monotonic()
    scan = walker().walk(io.BytesIO(data))
    assert scan.error is None and len(scan.entries) == 100_000
    assert time.monotonic() - start < 60
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024 < 200  # MB


def test_truncated_zstd_layer_is_an_error_not_a_shorter_clean_layer() -> None:
    blob = compress(layer_tar([("a", b"x" * 100_000), ("b", b"y" * 100_000)]), "zstd")
    scan = walker().walk(io.BytesIO(blob[: len(blob) - 10]))
    assert scan.error is not None


def test_zstd_bomb_stops_at_the_ratio_limit() -> None:
    import zstandard

    tar = layer_tar([("zeros", bytes(256 << 20))])
    bomb = zstandard.ZstdCompressor(level=19).compress(tar)
    scan = walker(max_ratio=100).walk(io.BytesIO(bomb))
    assert scan.error is not None and "decompression bomb" in scan.error


def test_a_zstd_bomb_never_decodes_much_in_one_call() -> None:
    """Reading the start of 512 MiB of zeros compressed to 16 KB (RLE blocks: 32,768 times their
    size) allocates tens of MiB, not the bomb: each call into the decoder gets a small slice."""
    import tracemalloc

    import zstandard

    from scanner.layers.streams import READ_SIZE, decompressor

    packer = zstandard.ZstdCompressor(level=19).compressobj()
    bomb = b"".join([*(packer.compress(bytes(1 << 24)) for _ in range(32)), packer.flush()])
    assert len(bomb) < 64 << 10
    tracemalloc.start()
    try:
        reader = decompressor("zstd", io.BufferedReader(io.BytesIO(bomb), READ_SIZE))
        assert reader.read(1 << 20) == bytes(1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 << 20, peak


def test_zip_bomb_inside_a_layer_stops_at_the_ratio_limit() -> None:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for i in range(4):  # 4 x 256 MiB of zeros in well under 1 MiB
            with zf.open(f"zeros{i}", "w", force_zip64=True) as member:
                block = bytes(1 << 20)
                for _ in range(256):
                    member.write(block)
    bomb = buf.getvalue()
    assert len(bomb) < 2 << 20
    start = time.monotonic()
    scan = walker(nested=NestedLimits(max_ratio=100)).walk(io.BytesIO(layer_tar([("app/bomb.zip", bomb)])))
    assert scan.error is None
    assert any("decompression bomb" in s.reason for s in scan.skips)
    assert time.monotonic() - start < 30
    # the default ratio (1100) lets a plain deflate of zeros (~1030) through, and the whole file is scanned
    scan = walker().walk(io.BytesIO(layer_tar([("app/bomb.zip", bomb)])))
    assert scan.error is None and scan.files_scanned == 4


def test_overlapping_zip_entries_are_refused_or_bounded() -> None:
    import struct
    import zipfile

    # one deflated local file, named by a thousand central-directory entries (Fifield-style overlap)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a", bytes(1 << 20))
    data = buf.getvalue()
    cd = data.index(b"PK\x01\x02")
    eocd = data.index(b"PK\x05\x06")
    entry = data[cd:eocd]
    entries = entry * 1000
    end = bytearray(data[eocd:])
    struct.pack_into("<HHII", end, 8, 1000, 1000, len(entries), cd)
    overlapped = data[:cd] + entries + bytes(end)
    start = time.monotonic()
    scan = walker().walk(io.BytesIO(layer_tar([("bomb.zip", overlapped)])))
    assert scan.error is None
    assert any("decompression bomb" in s.reason or "could not be read" in s.reason for s in scan.skips)
    assert time.monotonic() - start < 30


def test_a_hundred_level_nested_archive_stops_at_the_depth_limit_and_fails_the_run(tmp_path: Path) -> None:
    """gzip in gzip, 100 times: bounded time and memory, a limit skip, and exit 3 by default."""
    data = b"token=ghp_" + b"Zq8w" * 9
    for _ in range(100):
        data = gzip.compress(data, mtime=0)
    scan = walker().walk(io.BytesIO(layer_tar([("deep.gz", data)])))
    assert scan.error is None
    [skip] = scan.skips
    assert skip.limit and "nested deeper than 5" in skip.reason and skip.where.startswith("deep.gz!/")
    archive = tmp_path / "deep.tar"
    archive.write_bytes(docker_archive([layer_tar([("deep.gz", data)])]))
    report = scan_image(TarballSource(str(archive)), ScanOptions())
    assert not report.complete and any("nested deeper than 5" in p for p in report.problems)
    assert Policy().exit_code(report) == 3
    assert Policy(allow_incomplete=True).exit_code(report) == 0
