"""How far ``--jobs`` scales: stage times of a multi-layer image and a projection to 4, 8, 16 cores.

    python benchmarks/scaling.py build  [--dir /var/tmp/par20] [--layers 5] [--mb 100] [--compress gzip|none]
    python benchmarks/scaling.py stages [--dir /var/tmp/par20] [--compress gzip|none] [--repeat 3]

``build`` makes ``image-<compress>.tar``: a docker-archive of --layers layers of --mb MB each, from
real files on this machine (python's library, /usr/share, shared libraries, /usr/bin, a JDK: text,
binaries and jars; each layer from its own directory, so the layers differ in cost as real ones do).

``stages`` times, in this one process, each stage of each layer (the median of --repeat runs):
reading and decompressing the blob, hashing it (blob digest and diff_id), the tar walk reading
every file, the detectors on every file (nested archives opened), and the hand-off of every file's
bytes through a pipe as ``--jobs`` sends them (the sender's side).  Then a whole scan in this
process (``--jobs 1``), whose time beyond the layers' is the image's fixed part (classifying
members, metadata, resolution, report).  From those it prints the serial fraction per stage and
the projected wall time and speed-up on 1, 2, 4, 8 and 16 cores of

* the pipeline (one process decompresses, walks and hashes every layer; N workers run the
  detectors): Amdahl with the main process's stages as the serial part, and the overlap bound
  ``fixed + max(main, detectors / N)`` (the main process works while the workers do);
* the layer fanout (N processes each take whole layers, largest first): ``fixed`` plus the
  makespan of the layers' times on N processes (longest-first list scheduling), which is Amdahl
  with the fixed part serial for as long as the layers balance, and the largest layer's time once
  they do not.

Wall times are what the CLI measures (``taskset``, see docs/performance.md); this prints the model.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import io
import json
import multiprocessing
import os
import statistics
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import build_layer, compress_layer, sha_file  # noqa: E402
from scanner.layers.fanout import walkers  # noqa: E402
from scanner.layers.streams import READ_SIZE, RawReader, decompressor, sniff  # noqa: E402
from scanner.layers.tarstream import TarStream  # noqa: E402

SOURCES = [
    os.path.dirname(os.__file__),
    "/usr/share",
    "/usr/lib/x86_64-linux-gnu",
    "/usr/bin",
    "/usr/lib/jvm",
    "/usr/lib",
]


def build(out: Path, layers: int, mb: int, compress: str) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    blobs, diff_ids = [], []
    for i in range(layers):
        plain = out / f"layer{i}.tar"
        if not plain.exists():
            size, count = build_layer(Path(SOURCES[i % len(SOURCES)]), mb * 1_000_000, plain)
            print(f"layer {i}: {SOURCES[i % len(SOURCES)]}: {size / 1e6:.0f} MB, {count} files")
        blob = plain if compress == "none" else plain.with_suffix(f".{compress}")
        if not blob.exists():
            compress_layer(plain, compress, blob)
        blobs.append((blob, sha_file(blob)))
        diff_ids.append(sha_file(plain))
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": [{"created_by": f"layer {i} from {SOURCES[i % len(SOURCES)]}"} for i in range(layers)],
        }
    ).encode()
    cfg = f"blobs/sha256/{hashlib.sha256(config).hexdigest()}"
    names = [f"blobs/sha256/{digest[7:]}" for _, digest in blobs]
    manifest = json.dumps([{"Config": cfg, "RepoTags": ["scaling:1"], "Layers": names}]).encode()
    image = out / f"image-{compress}.tar"
    with tarfile.open(image, "w") as tar:
        for (blob, _), name in zip(blobs, names, strict=True):
            tar.add(blob, arcname=name)
        for name, data in ((cfg, config), ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    print(f"{image}: {image.stat().st_size / 1e6:.0f} MB")
    return image


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def _decompress(blob: Path) -> None:
    with blob.open("rb") as f:
        kind = sniff(f.read(16))
        f.seek(0)
        stream = RawReader(decompressor(kind, io.BufferedReader(f, READ_SIZE))) if kind != "none" else f
        while stream.read(READ_SIZE):
            pass


def _hash(blob: Path, plain: Path) -> None:
    for path in {blob, plain}:  # an uncompressed layer is hashed once (its diff_id is its digest)
        h = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(READ_SIZE):
                h.update(chunk)


def _files(plain: Path) -> list[tuple[str, bytes]]:
    with plain.open("rb") as f:
        tar = TarStream(RawReader(f))
        return [(m.name, tar.extract(m).read()) for m in tar if m.isreg()]


def _walk(plain: Path) -> None:
    with plain.open("rb") as f:
        tar = TarStream(RawReader(f))
        for m in tar:
            data = tar.extract(m) if m.isreg() else None
            while data is not None and data.read(READ_SIZE):
                pass


def _drain(conn: object) -> None:
    while conn.recv_bytes():  # type: ignore[attr-defined]
        pass


def _handoff(files: list[tuple[str, bytes]], located: bool) -> float:
    """The sender's CPU time for every file's bytes, as parallel.Batch hands them on: files up to
    WHOLE bundled through a pipe (the walker copies them into a ring of shared memory where it has
    one: no dearer than this), larger ones written to a temporary file in /dev/shm (spooled), or,
    ``located`` (an uncompressed layer of a tarball on disk), left where they lie for their worker
    to read: no cost to the sender."""
    from scanner.layers.parallel import BUNDLE_BYTES, CHUNK, WHOLE, _spool_dir

    ctx = multiprocessing.get_context("fork")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_drain, args=(receive,))
    proc.start()
    start = time.process_time()
    bundle, size = [], 0
    folder = ""
    for name, data in files:
        if len(data) > WHOLE and located:
            continue  # its worker reads it from the image file
        if len(data) <= WHOLE:
            bundle.append((len(bundle), name, len(data), data))
            size += len(data)
            if size >= BUNDLE_BYTES:
                send.send_bytes(b"x" + repr(len(bundle)).encode())  # the header
                send.send_bytes(b"".join(d for *_, d in bundle))
                bundle, size = [], 0
            continue
        folder = folder or _spool_dir()
        fd, spooled = tempfile.mkstemp(dir=folder)
        for k in range(0, len(data), CHUNK):
            os.write(fd, data[k : k + CHUNK])
        os.close(fd)
        os.unlink(spooled)
    send.send_bytes(b"")
    spent = time.process_time() - start
    if folder:
        os.rmdir(folder)
    proc.join()
    return spent


def _startup() -> float:
    """CPU seconds of the CLI's start-up and a scan of nothing (the median of 5): serial wherever
    the layers go."""
    import resource
    import subprocess

    spent = []
    for _ in range(5):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(
            [sys.executable, "-c", "import scanner.cli, scanner.detectors as d; d.build_detectors([])"],
            cwd=ROOT,
            check=True,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return statistics.median(spent)


def _largest_file(files: list[tuple[str, bytes]], scanner: object) -> float:
    """The detectors' CPU time on the file that takes longest: a file goes to one file worker,
    so no pipeline finishes a layer sooner."""
    longest = 0.0
    for name, data in files:
        start = time.process_time()
        scanner.scan(io.BytesIO(data), name, len(data))  # type: ignore[attr-defined]
        longest = max(longest, time.process_time() - start)
    return longest


def _detect(files: list[tuple[str, bytes]], scanner: object) -> None:
    for name, data in files:
        scanner.scan(io.BytesIO(data), name, len(data))  # type: ignore[attr-defined]


def lpt(times: list[float], n: int) -> float:
    """The makespan of the layers on n processes, the longest first to the least loaded."""
    loads = [0.0] * n
    for t in sorted(times, reverse=True):
        heapq.heapreplace(loads, loads[0] + t)
    return max(loads)


def stages(out: Path, compress: str, repeat: int, reuse: bool) -> None:
    from scanner import ScanOptions, scan_image
    from scanner.detectors import ContentScanner, build_detectors
    from scanner.layers.nested import FileScanner
    from scanner.sources import TarballSource

    image = out / f"image-{compress}.tar"
    plains = sorted(out.glob("layer*.tar"), key=lambda p: int(p.stem[5:]))
    saved = out / f"stages-{compress}.json"  # the measurement, for --reuse (the model printed again)
    if reuse and saved.exists():
        doc = json.loads(saved.read_text())
        _project(plains, compress, [tuple(r) for r in doc["rows"]], doc["whole"], doc["repeat"])
        return
    scanner = FileScanner(ContentScanner(build_detectors([])))
    rows: list[tuple[str, float, dict[str, float]]] = []
    for plain in plains:
        blob = plain if compress == "none" else plain.with_suffix(f".{compress}")
        files = _files(plain)
        row = {
            "decompress": _median(lambda b=blob: _decompress(b), repeat) if compress != "none" else 0.0,  # type: ignore[misc]
            "read": _median(lambda p=plain: _decompress(p), repeat) if compress == "none" else 0.0,  # type: ignore[misc]
            "hash": _median(lambda b=blob, p=plain: _hash(b, p), repeat),  # type: ignore[misc]
            "walk": _median(lambda p=plain: _walk(p), repeat),  # type: ignore[misc]
            "hand-off": statistics.median(_handoff(files, compress == "none") for _ in range(repeat)),
            "detectors": _median(lambda f=files: _detect(f, scanner), repeat),  # type: ignore[misc]
            "largest file": _largest_file(files, scanner),
        }
        rows.append((plain.name, sum(len(d) for _, d in files) / 1e6, row))
        del files
    whole = _median(lambda: scan_image(TarballSource(str(image)), ScanOptions(jobs=1)), repeat)
    saved.write_text(json.dumps({"rows": rows, "whole": whole, "repeat": repeat}))
    _project(plains, compress, rows, whole, repeat)


def _project(plains: list[Path], compress: str, rows: list[Any], whole: float, repeat: int) -> None:
    layer_times = [r["decompress"] + r["read"] + r["hash"] + r["walk"] + r["detectors"] for _, _, r in rows]
    startup = _startup()
    fixed = max(0.0, whole - sum(layer_times)) + startup
    whole += startup
    names = list(rows[0][2])
    print(f"image-{compress}.tar, CPU seconds per stage (median of {repeat}), one process:")
    print(f"{'layer':12} {'MB':>6} " + " ".join(f"{n:>12}" for n in names) + f" {'layer':>8}")
    for (name, mb, r), total in zip(rows, layer_times, strict=True):
        print(f"{name:12} {mb:6.0f} " + " ".join(f"{r[n]:12.2f}" for n in names) + f" {total:8.2f}")
    sums = {n: sum(r[n] for _, _, r in rows) for n in names}
    t1 = whole
    print(
        f"whole scan --jobs 1: {t1:.2f} s with the CLI's start-up ({startup:.2f} s: Python, imports, detectors); "
        f"beyond the layers (fixed): {fixed:.2f} s"
    )
    print("\nshare of the --jobs 1 time, and whether each is serial:")
    main = sums["decompress"] + sums["read"] + sums["hash"] + sums["walk"]
    for n in names:
        where = "parallel (workers)" if n == "detectors" else "serial in the pipeline, per layer in the fanout"
        if n == "hand-off":
            where = "serial in the pipeline only (not in the --jobs 1 time)"
        if n == "largest file":
            where = "(part of detectors) the pipeline's least time for a layer: one file, one worker"
        print(f"  {n:12} {sums[n]:7.2f} s  {sums[n] / t1:6.1%}  {where}")
    print(f"  {'fixed':12} {fixed:7.2f} s  {fixed / t1:6.1%}  serial in both")
    s_pipe = (fixed + main + sums["hand-off"]) / t1
    print(f"\nserial fraction: pipeline {s_pipe:.1%} (fixed + main process stages + hand-off); fanout {fixed / t1:.1%}")
    big, total = max(layer_times), sum(layer_times)
    print(f"largest layer: {big:.2f} s of {total:.2f} s ({big / total:.0%})")
    m = [r["decompress"] + r["read"] + r["hash"] + r["walk"] for _, _, r in rows]
    h = [r["hand-off"] for _, _, r in rows]
    d = [r["detectors"] for _, _, r in rows]
    biggest = [r["largest file"] for _, _, r in rows]

    def piped(i: int, k: int) -> float:
        """Layer i through a pipeline of k file workers (k < 2: one process)."""
        return m[i] + d[i] if k < 2 else max(m[i] + h[i], (m[i] + h[i] + d[i]) / k, biggest[i])

    def fanned(n: int, w: int) -> float:
        return fixed + lpt([piped(i, n // w) for i in range(len(rows))], w)

    sizes = [(p if compress == "none" else p.with_suffix(f".{compress}")).stat().st_size for p in plains]
    print(
        "\nprojected wall time (speed-up): Amdahl (pipeline, serial part as above); pipeline (main overlaps its"
        "\nworkers within a layer); the engine's choice (scanner.layers.fanout.walkers, by the blobs' sizes: W"
        "\nlayers at once, 0 = pipeline); the best W; the bound if any core could scan any layer's files"
    )
    print(f"{'cores':>5} {'Amdahl':>13} {'pipeline':>13} {'engine':>18} {'best fanout':>18} {'bound':>13}")
    for n in (1, 2, 4, 8, 16):
        amdahl = fixed + main + sums["hand-off"] + sums["detectors"] / n if n > 1 else t1
        pipe = fixed + sum(piped(i, n) for i in range(len(rows))) if n > 1 else t1
        w = walkers(sizes, n)
        engine = fanned(n, w) if w else pipe
        best_w = min(range(2, min(n, len(rows)) + 1), key=lambda w: fanned(n, w), default=0)
        best = fanned(n, best_w) if best_w else pipe
        bound = fixed + max(max(m), (sum(m) + sum(d)) / n)

        def cell(t: float) -> str:
            return f"{t:6.2f} ({t1 / t:4.2f})"

        print(f"{n:5} {cell(amdahl)} {cell(pipe)} {cell(engine)} W={w:<2} {cell(best)} W={best_w:<2} {cell(bound)}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["build", "stages"])
    ap.add_argument("--dir", type=Path, default=Path("/var/tmp/par20"))
    ap.add_argument("--layers", type=int, default=5)
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--compress", choices=["none", "gzip", "zstd"], default="gzip")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--reuse", action="store_true", help="print the model again from the last measurement")
    args = ap.parse_args()
    if args.what == "build":
        build(args.dir, args.layers, args.mb, args.compress)
    else:
        stages(args.dir, args.compress, args.repeat, args.reuse)


if __name__ == "__main__":
    main()
