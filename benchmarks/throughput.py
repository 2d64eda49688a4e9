"""Throughput and memory of a whole scan, printed as figures (not a timed test).

    python benchmarks/throughput.py [--mb 300] [--compress none|gzip|zstd] [--src DIR]
                                    [--python PATH] [--launch script|module] [--firsts 3] [--rescans 7]

Builds a one-layer image archive from real files on this machine (repeated until --mb of
uncompressed layer data; python's own library by default), then prints: the read floor (stream
the archive, walk the layer tar, read every file; no detection), the full scan with every detector
on and 20 known secrets, MB/s of both, their ratio, and the scan's peak RSS (run in a child process
so that building the image does not count), then the layer cache: the median of ``--firsts`` first
scans that write it and the median of ``--rescans`` rescans of the same file, and a scan of the
same layers in a new file.

``--python`` runs the scans with another interpreter (default: this one), e.g. a venv's where
leakscan and its dependencies are installed as a user installs them: the sandbox's interpreter here
imports certifi and an editable-install finder from .pth files at every start (25 ms, a quarter of
a rescan from the cache), which a user's venv does not.

Each scan runs this checkout's code as the ``leakscan`` command runs it (``--launch script``, the
default: the code of pip's console-script launcher, ``from scanner import main``), or as ``python
-m scanner`` (``--launch module``), whose runpy a user's ``leakscan`` does not load (2-3 ms of a
60 ms rescan from the cache).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import zstandard

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scanner.layers.streams import (  # noqa: E402
    READ_SIZE,
    RawReader,
    decompressor,
    looks_like_tar,
    sniff,
)
from scanner.layers.tarstream import TarStream  # noqa: E402
from scanner.sources.tarball import tar_members  # noqa: E402

# The scans run as an installed leakscan does: pip compiles its bytecode when it installs it.  A
# machine that sets PYTHONDONTWRITEBYTECODE would otherwise compile every module from source on
# every run (about 0.13 s here: a quarter of a cached rescan).
INSTALLED = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
# how a scan is started (run in the checkout's folder, whose scanner package is then the one imported)
LAUNCH = {
    # the code of the launcher pip writes for leakscan's console script (bin/leakscan), after -c
    "script": ["-c", "import re, sys; from scanner import main; sys.argv[0] = 'leakscan'; sys.exit(main())"],
    "module": ["-m", "scanner"],
}


def build_layer(src: Path, target: int, out: Path) -> tuple[int, int]:
    files = [p for p in sorted(src.rglob("*")) if p.is_file() and not p.is_symlink()]
    total = count = round_ = 0
    with tarfile.open(out, "w") as tar:
        while total < target:
            for p in files:
                tar.add(p, arcname=f"r{round_}/{p.relative_to(src)}", recursive=False)
                total += p.stat().st_size
                count += 1
                if total >= target:
                    break
            round_ += 1
    return total, count


def sha_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def compress_layer(layer_tar: Path, compress: str, blob: Path) -> None:
    """The layer's blob as an image stores it: gzip (level 6) or zstd (level 3)."""
    with layer_tar.open("rb") as src, blob.open("wb") as dst:
        if compress == "gzip":
            with gzip.GzipFile(fileobj=dst, mode="wb", compresslevel=6, mtime=0) as gz:
                while chunk := src.read(1 << 20):
                    gz.write(chunk)
        else:
            zstandard.ZstdCompressor(level=3).copy_stream(src, dst)


def build_archive(layer_tar: Path, compress: str, out: Path) -> None:
    blob = layer_tar
    if compress != "none":
        blob = layer_tar.with_suffix(".blob")
        compress_layer(layer_tar, compress, blob)
    diff_id, digest = sha_file(layer_tar), sha_file(blob)
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created_by": "benchmark layer"}],
        }
    ).encode()
    cfg_name = f"blobs/sha256/{hashlib.sha256(config).hexdigest()}"
    manifest = json.dumps([{"Config": cfg_name, "RepoTags": ["bench:1"], "Layers": [f"blobs/sha256/{digest[7:]}"]}])
    with tarfile.open(out, "w") as tar:
        tar.add(blob, arcname=f"blobs/sha256/{digest[7:]}")
        for name, data in ((cfg_name, config), ("manifest.json", manifest.encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def read_floor(path: Path) -> float:
    """Stream the archive, decompress and walk the layer tar, read every file: no detection."""
    start = time.perf_counter()
    with path.open("rb") as fh:
        for member in tar_members(fh):
            if member.stream is None:
                continue
            head = member.stream.read(512)
            kind = sniff(head)
            if kind == "none" and not looks_like_tar(head):
                continue
            raw = io.BufferedReader(RawReader(member.stream, head), READ_SIZE)
            tar = TarStream(RawReader(decompressor(kind, raw)))
            for m in tar:
                f = tar.extract(m) if m.isreg() else None
                while f is not None and f.read(1 << 20):
                    pass
    return time.perf_counter() - start


def stage_breakdown(layer_tar: Path, known: Path) -> list[tuple[str, float]]:
    """Where one process's time goes (``--jobs 1``), stage by stage, on the uncompressed layer:
    each stage is timed around its own calls, file by file."""
    from scanner.detectors import ContentScanner, SecretSpec, build_detectors, load_known_values
    from scanner.layers.nested import FileScanner

    detectors = build_detectors(load_known_values([SecretSpec.parse(f"id=k,src={known}")]))
    content = ContentScanner(detectors)
    files = FileScanner(content)
    known_detector = detectors[0]
    content.scan_bytes(b"warm up: compile and load the databases")
    clock = time.perf_counter
    t = dict.fromkeys(("hash", "walk", "hyperscan", "known", "python", "plumbing", "nested"), 0.0)
    start = clock()
    h = hashlib.sha256()
    with layer_tar.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    t["hash"] = clock() - start
    with layer_tar.open("rb") as f:
        tar = TarStream(RawReader(f))
        mark = clock()
        for m in tar:
            if not m.isreg():
                continue
            data = tar.extract(m).read()
            t["walk"] += clock() - mark
            if FileScanner._container(data[:512]):  # an archive or compressed file: opened
                a = clock()
                files.scan(io.BytesIO(data), m.name, len(data))
                t["nested"] += clock() - a
            else:
                a = clock()
                content._pass.scan(data)
                content.decoded.events(data)  # base64 runs: their gated pass
                b = clock()
                list(known_detector.find(data, m.name))
                c = clock()
                content._matches(data, path=m.name)
                d = clock()
                files.scan(io.BytesIO(data), m.name, len(data))
                e = clock()
                t["hyperscan"] += b - a
                t["known"] += c - b
                t["python"] += (d - c) - (b - a) - (c - b)
                t["plumbing"] += (e - d) - (d - c)
            mark = clock()
    return [
        ("sha256 of the layer (its digest is checked)", t["hash"]),
        ("tar walk and reading every file", t["walk"]),
        ("Hyperscan: the shared pass and the base64 runs' pass", t["hyperscan"]),
        ("Hyperscan: known-secret literals", t["known"]),
        ("detectors in Python (confirmation, base64 decoding)", t["python"]),
        ("per-file plumbing (type sniffing, windows, hits)", t["plumbing"]),
        ("archives inside the layer (opened, every member scanned)", t["nested"]),
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--compress", choices=["none", "gzip", "zstd"], default="none")
    ap.add_argument("--src", default=os.path.dirname(os.__file__))
    ap.add_argument("--python", default=sys.executable, help="the interpreter the scans run with")
    ap.add_argument("--launch", choices=sorted(LAUNCH), default="script", help="leakscan's launcher, or python -m")
    ap.add_argument("--rescans", type=int, default=7, help="rescans from the cache, of which the median")
    ap.add_argument("--firsts", type=int, default=3, help="first scans (each into an empty cache), of which the median")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        layer = Path(tmp) / "layer.tar"
        size, nfiles = build_layer(Path(args.src), args.mb * 1_000_000, layer)
        archive = Path(tmp) / "image.tar"
        build_archive(layer, args.compress, archive)
        mb = size / 1e6
        print(
            f"image: {mb:.0f} MB of files ({nfiles} files) in one {args.compress} layer; "
            f"archive {archive.stat().st_size / 1e6:.0f} MB"
        )
        floor = read_floor(archive)
        print(f"read floor (stream, decompress, read every file): {floor:6.2f} s  {mb / floor:6.0f} MB/s")
        secrets = Path(tmp) / "known.env"
        secrets.write_text("".join(f"KEY_{i}=benchmark-known-secret-{i:04d}\n" for i in range(20)))
        report_path = Path(tmp) / "report.json"

        peaks: list[float] = []
        usages: list[resource.struct_rusage] = []

        def timed_scan(*flags: str, image: Path = archive) -> float:
            """Wall time; the scan's own peak RSS (its largest process, by wait4) goes to ``peaks``."""
            start = time.perf_counter()
            proc = subprocess.Popen(
                [
                    args.python,
                    *LAUNCH[args.launch],
                    str(image),
                    "--secret",
                    f"id=k,src={secrets}",
                    *flags,
                    "--format",
                    "json",
                    "-o",
                    str(report_path),
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env=INSTALLED,
            )
            assert proc.stderr is not None
            err = proc.stderr.read()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode not in (0, 1):
                sys.exit(f"scan failed: {err.decode(errors='replace')[-2000:]}")
            peaks.append(usage.ru_maxrss / 1024)
            usages.append(usage)  # the scan's processes together: its workers are reaped by it
            return time.perf_counter() - start

        one = timed_scan("--no-cache", "--jobs", "1")
        print(
            f"full scan, --jobs 1 (no worker processes):    {one:6.2f} s  {mb / one:6.0f} MB/s  "
            f"peak RSS {peaks[-1]:.0f} MB"
        )
        wall = timed_scan("--no-cache")  # --jobs: every core
        rss = peaks[-1]
        report = json.loads(report_path.read_text())
        print(
            f"full scan, --jobs {os.cpu_count()}, every detector, 20 known secrets: {wall:6.2f} s  "
            f"{mb / wall:6.0f} MB/s  "
            f"({report['summary']['findings']} findings, complete={report['summary']['complete']})"
        )
        print(f"ratio scan / read floor: {wall / floor:.2f}")
        cpu = usages[-1].ru_utime + usages[-1].ru_stime
        print(
            f"CPU of that scan, every process: {cpu:.2f} s (user {usages[-1].ru_utime:.2f}, system "
            f"{usages[-1].ru_stime:.2f}), {cpu / wall:.2f} of {os.cpu_count()} cores busy on average, "
            f"{usages[-1].ru_minflt} page faults"
        )
        print(f"peak RSS of the scan (largest process): {rss:.0f} MB")
        cache = Path(tmp) / "cache"
        firsts = []  # each into an empty cache: one first scan varies by 10-20 % on a shared VM
        for _ in range(args.firsts):
            shutil.rmtree(cache, ignore_errors=True)
            firsts.append(timed_scan("--cache-dir", str(cache)))
        first_peak = peaks[-1]
        timings = [timed_scan("--cache-dir", str(cache)) for _ in range(args.rescans)]
        first, again = statistics.median(firsts), statistics.median(timings)
        print(
            f"layer cache: first scan {first:.2f} s (the median of {args.firsts}), rescan {1000 * again:.0f} ms, "
            f"the median of {args.rescans} ({100 * again / first:.1f}% of the first; the unchanged file's layers "
            f"are not read again; the fastest {1000 * min(timings):.0f} ms)"
        )
        print(
            f"peak RSS (largest process): --jobs 1 {peaks[0]:.0f} MB, "
            f"first scan writing the cache {first_peak:.0f} MB, "
            f"rescan {peaks[-1]:.0f} MB"
        )
        copy = Path(tmp) / "copy.tar"  # a new file with the same layers, as a CI job's fresh docker save
        shutil.copyfile(archive, copy)
        fresh = timed_scan("--cache-dir", str(cache), image=copy)
        print(
            f"layer cache, the same layers in a new file: {fresh:.2f} s ({100 * fresh / first:.1f}% of the first "
            "scan; each layer hashed to prove the digest its name claims)"
        )
        # last: it runs in this process, and a child started after it would report this process's
        # peak as its own (Linux keeps the larger of the two across fork and exec in ru_maxrss)
        stages = stage_breakdown(layer, secrets)
        total = sum(sec for _, sec in stages)
        print(f"stages, one process ({total:.2f} s in all; the scan above overlaps them across processes):")
        for name, sec in stages:
            print(f"  {name:58s} {sec:6.2f} s  {100 * sec / total:4.1f} %")


if __name__ == "__main__":
    main()
