"""Hostile layers: bombs, huge member counts, long names, time limits: a reported skip or an
incomplete scan (exit 3), never a crash, a hang or a clean result."""

from __future__ import annotations

import io
import resource
import tarfile
import time
import zlib

from scanner.detectors import ContentScanner, build_detectors
from scanner.walk import LayerWalker, WalkLimits
from tests.support.tars import compress, layer_tar


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
