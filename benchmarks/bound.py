"""The least time a complete scan of the benchmark image can take on this machine, printed as
figures: the work in C that a scan with every detector on cannot skip, with no Python around it,
spread over every core without loss.

    python benchmarks/bound.py [--mb 300] [--src DIR] [--secrets 20]

It builds the same one-layer image as throughput.py (an uncompressed layer of real files), then
times, in one process:

- reading the layer from the page cache (readinto, one buffer);
- SHA-256 of the layer: its diff_id is checked, because the layer cache is keyed by it;
- leakscan's own Hyperscan databases over every regular file's bytes: the shared pass (rule,
  detect-secrets and entropy gates), the base64 gate and runs, and the known-secret literals of
  ``--secrets`` secrets (20, as throughput.py passes them; 0 as peers.py runs leakscan: no pass).
  The bytes go in 1 MiB blocks regardless of file boundaries, so the cost per call (a few
  microseconds from Python, for 28,000 files) is left out;
- inflating every archive or compressed file inside the layer (zip members, gzip, bzip2, xz, zstd;
  deflate by ISA-L, the fastest inflater here), and the same passes over what comes out.

The sum, divided by the cores, is a lower bound on a scan's wall time: it leaves out the tar
headers, finding the files, the per-file calls, every confirmation in Python, the processes' start
and the report.  It prints the bound as MB/s of layer data and as a ratio to throughput.py's read
floor, next to the issue's targets (300 MB/s, ratio 1.5).  Not a timed test.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import io
import lzma
import os
import struct
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import zstandard
from isal import igzip, isal_zlib

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput import build_archive, build_layer, read_floor  # noqa: E402

from scanner.detectors import ContentScanner, SecretSpec, build_detectors, load_known_values  # noqa: E402
from scanner.layers.limits import NestedLimits  # noqa: E402
from scanner.layers.nested import FileScanner  # noqa: E402
from scanner.layers.streams import GZIP_ERRORS  # noqa: E402

BLOCK = 1 << 20
MAX_DEPTH = NestedLimits().max_depth  # archives inside archives, as deep as the scanner opens them


def _inflated(data: bytes, depth: int = 0) -> list[tuple[str, bytes]]:
    """What a nested file holds, decompressed: (how, bytes) for each member or stream, deeper
    archives included.  Python finds the members; only the decompression calls are timed."""
    if depth >= MAX_DEPTH:
        return []
    kind = FileScanner._container(data[:512])
    out: list[tuple[str, bytes]] = []
    if kind == "zip":
        try:
            zf = zipfile.ZipFile(io.BytesIO(data))
            infos = zf.infolist()
        except (zipfile.BadZipFile, ValueError):
            return []
        for info in infos:
            at = info.header_offset
            name_len, extra_len = struct.unpack("<HH", data[at + 26 : at + 30])
            start = at + 30 + name_len + extra_len
            raw = data[start : start + info.compress_size]
            if info.compress_type == zipfile.ZIP_DEFLATED:
                out.append(("inflate", raw))
            elif info.compress_type == zipfile.ZIP_STORED:
                out.append(("stored", raw))
            elif info.compress_type == zipfile.ZIP_BZIP2:
                out.append(("bzip2", raw))
            elif info.compress_type == zipfile.ZIP_LZMA:
                out.append(("stored", zf.read(info)))  # rare; not timed
    elif kind in ("gzip", "bzip2", "xz", "zstd"):
        out.append((kind, data))
    elif kind == "tar":
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar:
                f = tar.extractfile(m) if m.isreg() else None
                if f is not None:
                    out.append(("stored", f.read()))
    return out


_DECOMPRESS: dict[str, Callable[[bytes], bytes]] = {
    "inflate": lambda raw: isal_zlib.decompress(raw, -15),
    "gzip": igzip.decompress,
    "bzip2": bz2.decompress,
    "xz": lzma.decompress,
    "zstd": lambda raw: zstandard.ZstdDecompressor().decompressobj().decompress(raw),
    "stored": lambda raw: raw,
}


_DAMAGED: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    ValueError,
    lzma.LZMAError,
    zstandard.ZstdError,
    *GZIP_ERRORS,
)


def _nested(data: bytes, clock: dict[str, float], depth: int = 0) -> list[bytes]:
    """Every decompressed member of a nested file (deeper ones too), timing the decompression."""
    texts = []
    for how, raw in _inflated(data, depth):
        start = time.perf_counter()
        try:
            plain = _DECOMPRESS[how](raw)
        except _DAMAGED:
            continue
        clock["inflate"] += time.perf_counter() - start
        if FileScanner._container(plain[:512]):
            texts.extend(_nested(plain, clock, depth + 1))
        else:
            texts.append(plain)
    return texts


def _passes(content: ContentScanner, known_values: bool) -> list[Callable[[bytes], object]]:
    """The Hyperscan calls a window gets from leakscan's own databases, as the scanner makes them."""
    known = content.detectors[0]
    passes: list[Callable[[bytes], object]] = [
        content._pass.scan,  # rule prefilters, detect-secrets' and the entropy gates
        content.decoded.events,  # base64: the gate, then the runs where it fired
    ]
    if known_values:
        passes.append(lambda block: list(known.find(block, None)))  # the known secrets and their encodings
    return passes


def _scan_blocks(blocks: list[bytes], passes: list[Callable[[bytes], object]]) -> float:
    start = time.perf_counter()
    for block in blocks:
        for scan in passes:
            scan(block)
    return time.perf_counter() - start


def _blocks(blobs: list[bytes]) -> Iterator[bytes]:
    """The blobs' bytes joined, in BLOCK-sized pieces."""
    buf = bytearray()
    for blob in blobs:
        buf += blob
        while len(buf) >= BLOCK:
            yield bytes(buf[:BLOCK])
            del buf[:BLOCK]
    if buf:
        yield bytes(buf)


def measure(layer: Path, known: Path | None) -> dict[str, float]:
    specs = [SecretSpec.parse(f"id=k,src={known}")] if known is not None else []
    content = ContentScanner(build_detectors(load_known_values(specs)))
    content.scan_bytes(b"warm up: compile and load the databases 0123456789abcdefghijABCDEFGHIJ")
    clock = dict.fromkeys(("read", "sha256", "files", "inflate", "nested"), 0.0)
    size = layer.stat().st_size
    buf = bytearray(size)
    with layer.open("rb") as f:
        start = time.perf_counter()
        f.readinto(buf)
        clock["read"] = time.perf_counter() - start
    data = bytes(buf)
    del buf
    start = time.perf_counter()
    hashlib.sha256(data).digest()
    clock["sha256"] = time.perf_counter() - start

    plain: list[bytes] = []
    nested: list[bytes] = []
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for m in tar:
            if not m.isreg():
                continue
            blob = data[m.offset_data : m.offset_data + m.size]
            if FileScanner._container(blob[:512]):
                nested.extend(_nested(blob, clock))
            else:
                plain.append(blob)
    passes = _passes(content, known is not None)
    for key, blobs in (("files", plain), ("nested", nested)):
        blocks = list(_blocks(blobs))
        clock[key] = min(_scan_blocks(blocks, passes) for _ in range(3))
    clock["nested_mb"] = sum(map(len, nested)) / 1e6
    return clock


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--src", default=os.path.dirname(os.__file__))
    ap.add_argument("--secrets", type=int, default=20, help="known secrets passed (0: none, as peers.py runs leakscan)")
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        size, nfiles = build_layer(Path(args.src), args.mb * 1_000_000, layer)
        archive = Path(tmp) / "image.tar"
        build_archive(layer, "none", archive)
        known: Path | None = Path(tmp) / "known.env" if args.secrets else None
        if known is not None:
            known.write_text("".join(f"KEY_{i}=benchmark-known-secret-{i:04d}\n" for i in range(args.secrets)))
        mb = size / 1e6
        floor = min(read_floor(archive) for _ in range(3))
        clock = measure(layer, known)
    work = [
        ("read the layer from the page cache", clock["read"]),
        ("SHA-256 of the layer (the diff_id is checked)", clock["sha256"]),
        (f"Hyperscan passes over every file ({mb:.0f} MB)", clock["files"]),
        ("inflating the archives inside the layer", clock["inflate"]),
        (f"Hyperscan passes over what they hold ({clock['nested_mb']:.0f} MB)", clock["nested"]),
    ]
    total = sum(sec for _, sec in work)
    print(f"image: {mb:.0f} MB of files ({nfiles} files) in one uncompressed layer; {args.secrets} known secrets")
    print("work in C that a complete scan cannot skip, one process (best of 3 for the passes):")
    for name, sec in work:
        print(f"  {name:58s} {sec:6.2f} s")
    print(f"  {'in all':58s} {total:6.2f} s")
    best = total / cores
    print(f"spread over {cores} cores without loss, no Python at all: {best:.2f} s = {mb / best:.0f} MB/s (target 300)")
    print(f"read floor (throughput.py): {floor:.2f} s = {mb / floor:.0f} MB/s")
    print(f"least possible ratio of a scan to the read floor: {best / floor:.2f} (target 1.5)")


if __name__ == "__main__":
    main()
