"""Scanning straight from the Docker Engine against saving first, printed as figures (not a test).

    DOCKER_HOST=... python benchmarks/daemon.py [--mb 300] [--src DIR]

Builds an image in the engine from real files (this machine's Python library by default, repeated
to --mb), then times: ``docker save`` to /dev/null (the engine's export alone), a scan of the
saved tarball, and ``leakscan IMAGE`` reading the engine's export stream as it arrives. The
streamed scan writes nothing to disk (memory holds at most a 1 MiB chunk of the stream and the
tar readers' 1 MiB buffers); the figure to watch is its time against save + tarball scan.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.images import ensure_base_image  # noqa: E402
from tests.support.services import DOCKER, docker_cli  # noqa: E402

TAG = "leakscan-bench-daemon:1"


def build(src: Path, mb: int, work: Path) -> None:
    ctx = work / "ctx"
    total, rounds = 0, 0
    while total < mb * 1_000_000:
        dest = ctx / "data" / f"r{rounds}"
        shutil.copytree(src, dest, symlinks=True, ignore=shutil.ignore_patterns("__pycache__", "*.so"))
        total += sum(p.stat().st_size for p in dest.rglob("*") if p.is_file() and not p.is_symlink())
        rounds += 1
    (ctx / "Dockerfile").write_text(f"FROM {ensure_base_image()}\nCOPY data /data\n")
    docker_cli("build", "--network", "none", "-q", "-t", TAG, str(ctx))
    print(f"image {TAG}: {total / 1e6:.0f} MB of files")


def timed(*cmd: str, stdout: int | None = subprocess.DEVNULL) -> float:
    start = time.perf_counter()
    # as an installed leakscan runs: with its bytecode compiled (see benchmarks/throughput.py)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    proc = subprocess.run(cmd, stdout=stdout, stderr=subprocess.PIPE, cwd=ROOT, env=env)
    if proc.returncode not in (0, 1):
        sys.exit(f"{cmd[:3]} failed: {proc.stderr.decode()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--src", default=os.path.dirname(os.__file__))
    args = ap.parse_args()
    scan = [sys.executable, "-m", "scanner", "--no-cache", "--format", "json", "-q"]
    with tempfile.TemporaryDirectory(prefix="leakscan-bench-") as tmp:
        work = Path(tmp)
        build(Path(args.src), args.mb, work)
        save = min(timed(DOCKER, "save", TAG) for _ in range(2))  # stdout: /dev/null
        tarball = work / "image.tar"
        docker_cli("save", "-o", str(tarball), TAG)
        from_file = timed(*scan, str(tarball))
        streamed = timed(*scan, f"docker-daemon:{TAG}")
        print(f"docker save to /dev/null:           {save:6.2f} s")
        print(f"scan of the saved tarball:          {from_file:6.2f} s")
        print(f"scan from the engine, streamed:     {streamed:6.2f} s  (written to disk: 0 bytes)")
        print(f"streamed / (save + tarball scan):   {streamed / (save + from_file):6.2f}  (target <= 1.2)")
        # the layer cache: docker save before Engine 25 names layers <id>/layer.tar (no digest)
        cached = [a if a != "--no-cache" else "--cache-dir" for a in scan]
        cached.insert(cached.index("--cache-dir") + 1, str(work / "cache"))
        first = timed(*cached, f"docker-daemon:{TAG}")
        again = timed(*cached, f"docker-daemon:{TAG}")
        print(
            f"cached, from the engine: first {first:.2f} s, rescan {again:.2f} s ({100 * again / first:.1f} %; "
            "image id and every diff_id known to the cache: answered with no export, target <= 5 %)"
        )
        tar_first = timed(*cached, str(tarball))
        tar_again = timed(*cached, str(tarball))
        print(
            f"cached, the saved tarball: first {tar_first:.2f} s (layers hashed, then found), rescan {tar_again:.2f} s "
            f"({100 * tar_again / from_file:.0f} % of the uncached scan; the unchanged file is not read again)"
        )
    docker_cli("rmi", TAG)


if __name__ == "__main__":
    main()
