"""leakscan against Kingfisher on four image shapes, as figures (not a timed test).

    python benchmarks/peers.py [--runs 3] [--shapes large,python,node,jvm] [--work /var/tmp/peers20]
                               [--kingfisher PATH] [--tree DIR] [--baseline DIR]

Kingfisher comes from PyPI: `python -m venv /work/venv-kf && /work/venv-kf/bin/pip install kingfisher-bin`
(the default --kingfisher is `kingfisher` on PATH, else /work/venv-kf/bin/kingfisher).

The shapes (issue 20): a few large files (binaries from this machine, 100+ MB each, in one layer),
a Python venv image (~35k files, .pyc, wheels), a node_modules image (~59k small files) and a JVM
image whose WAR holds jars.  The last three are the precision benchmark's images
(``/var/tmp/leakscan-precision/{python,node,jvm}.tar``, built by ``benchmarks/precision.py``);
the first is built here.  Each image's final filesystem is extracted once (layers applied in
order, whiteouts honoured) for Kingfisher, which scans a directory.

Then, per shape, ``--runs`` alternating pairs: leakscan (first scan: ``--no-cache``, default jobs,
on the image tarball, JSON report to a file) and ``kingfisher scan DIR --no-validate`` (its
default jobs, JSON report to a file), each timed with its CPU (user+sys of the process and its
children).  Printed: the median wall and CPU times, Kingfisher's wall time over leakscan's (the
issue's target is >= 1.8) and MB/s over the bytes each one read.

Not the same work: Kingfisher reads the extracted final filesystem only, while leakscan reads every
layer (files deleted or overwritten by a later layer included), hashes every layer and opens every
nested archive to depth 5 (Kingfisher: depth 2; files over 256 MB skipped).  The bytes each read
are printed beside the times.

``--tree DIR`` runs leakscan from another checkout; ``--baseline DIR`` adds a third command to
each round, leakscan from that checkout (an A/B of two commits beside the same Kingfisher runs).
"""

from __future__ import annotations

import argparse
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.throughput import INSTALLED, build_archive  # noqa: E402

PRECISION = Path("/var/tmp/leakscan-precision")
LARGE_FILES = (
    "/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1",
    "/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1",
    "/usr/lib/jvm/java-17-openjdk-amd64/lib/modules",
    "/usr/lib/google-cloud-sdk/bin/anthoscli",
    "/usr/local/bin/terraform",
    "/usr/bin/node",
)
SHAPES = ("large", "python", "node", "jvm")


def build_large(work: Path) -> Path:
    """One layer of this machine's largest plain binaries (none of them an archive)."""
    out = work / "large.tar"
    if out.exists():
        return out
    layer = work / "large-layer.tar"
    with tarfile.open(layer, "w") as tar:
        for name in LARGE_FILES:
            if Path(name).is_file():
                tar.add(os.path.realpath(name), arcname=f"opt/large{name}", recursive=False)
    build_archive(layer, "none", out)
    layer.unlink()
    return out


def image(shape: str, work: Path) -> Path:
    if shape == "large":
        return build_large(work)
    path = PRECISION / f"{shape}.tar"
    if not path.exists():
        sys.exit(f"{path} is missing: build it with `python benchmarks/precision.py --images {shape}`")
    return path


def _layers(archive: tarfile.TarFile) -> list[str]:
    manifest = json.loads(_member(archive, "manifest.json"))
    return list(manifest[0]["Layers"])


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    f = archive.extractfile(name)
    if f is None:
        raise SystemExit(f"{name} is not a file in the image")
    return f.read()


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _safe(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's 'tar' filter; a member it refuses (a path through an absolute symlink) is left out."""
    try:
        return tarfile.tar_filter(member, dest)
    except tarfile.FilterError:
        return None


def extract(image_tar: Path, dest: Path) -> None:
    """The image's final filesystem: each layer applied over the last, whiteouts honoured."""
    done = dest.with_name(dest.name + ".done")
    if done.exists():
        return
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    with tarfile.open(image_tar) as archive:
        for name in _layers(archive):
            blob = archive.extractfile(name)
            assert blob is not None
            with tarfile.open(fileobj=blob, mode="r|*") as layer:
                for member in layer:
                    parent, base = os.path.split(member.name)
                    if base == ".wh..wh..opq":
                        for child in (dest / parent).glob("*"):
                            _remove(child)
                        continue
                    if base.startswith(".wh."):
                        _remove(dest / parent / base[4:])
                        continue
                    target = dest / member.name
                    if (target.is_symlink() or target.exists()) and not (member.isdir() and target.is_dir()):
                        _remove(target)
                    layer.extract(member, dest, filter=_safe)
    done.touch()


def tree_bytes(root: Path) -> tuple[int, int]:
    total = count = 0
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            if not os.path.islink(p):
                total += os.path.getsize(p)
                count += 1
    return total, count


@dataclass
class Run:
    wall: float
    cpu: float


def timed(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Run:
    """``cwd``: a leakscan checkout's own folder, for ``python -m scanner`` (which puts the current
    folder before PYTHONPATH: run from another checkout's root, it would import that one)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1, 200, 205):  # leakscan: 1 = findings; kingfisher: 200/205 = findings
        sys.exit(f"{cmd[:4]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--shapes", default=",".join(SHAPES))
    ap.add_argument("--work", type=Path, default=Path("/var/tmp/peers20"))
    ap.add_argument("--kingfisher", default=shutil.which("kingfisher") or "/work/venv-kf/bin/kingfisher")
    ap.add_argument("--tree", type=Path, default=ROOT, help="the leakscan checkout to run")
    ap.add_argument("--baseline", type=Path, help="a second leakscan checkout, run alternately with --tree")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    tree = args.tree.resolve()
    for t in (tree, args.baseline):
        if t is not None:
            subprocess.run([sys.executable, "-m", "compileall", "-q", str(t / "scanner")], check=True)
    env = {**INSTALLED, "PYTHONPATH": str(tree)}
    base_env = {**INSTALLED, "PYTHONPATH": str(args.baseline.resolve())} if args.baseline else None
    kf_version = subprocess.run([args.kingfisher, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"leakscan from {tree}; {kf_version}; {os.cpu_count()} cores; {args.runs} alternating pairs")
    print(
        "leakscan: first scan (--no-cache, default jobs) of the image tarball: every layer, every file "
        "(deleted or overwritten ones too), nested archives to depth 5, every layer hashed."
    )
    print(
        "kingfisher: `scan DIR --no-validate` (default jobs) of the extracted final filesystem only; "
        "archives to depth 2, files over 256 MB skipped."
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="peers-") as tmp:
        for shape in args.shapes.split(","):
            tarball = image(shape, args.work)
            root = args.work / f"{shape}.fs"
            extract(tarball, root)
            fs_bytes, fs_files = tree_bytes(root)
            report = Path(tmp) / "leakscan.json"
            ls_cmd = [sys.executable, "-m", "scanner", "scan", str(tarball), "--no-cache", "--format", "json"]
            ls_cmd += ["-o", str(report)]
            kf_cmd = [args.kingfisher, "scan", str(root), "--no-validate", "--no-update-check", "-f", "json"]
            kf_cmd += ["-o", str(Path(tmp) / "kingfisher.json")]
            timed(kf_cmd)  # warm: Kingfisher compiles and caches its rule database on a first run
            ls, kf, base = [], [], []
            for _ in range(args.runs):
                if base_env is not None:
                    base.append(timed(ls_cmd, base_env, args.baseline.resolve()))
                ls.append(timed(ls_cmd, env, tree))
                kf.append(timed(kf_cmd))
            if base:
                bw, bc = statistics.median(r.wall for r in base), statistics.median(r.cpu for r in base)
                kw = statistics.median(r.wall for r in kf)
                walls = ", ".join(f"{r.wall:.2f}" for r in base)
                print(f"{shape}: baseline leakscan {bw:.2f} s (CPU {bc:.2f} s) [{walls}]; ratio {kw / bw:.2f}")
            lw, lc = statistics.median(r.wall for r in ls), statistics.median(r.cpu for r in ls)
            kw, kc = statistics.median(r.wall for r in kf), statistics.median(r.cpu for r in kf)
            size = tarball.stat().st_size
            rows.append((shape, size, fs_bytes, fs_files, lw, lc, kw, kc, ls, kf))
            print(
                f"{shape}: leakscan {lw:.2f} s (CPU {lc:.2f} s) [{', '.join(f'{r.wall:.2f}' for r in ls)}]; "
                f"kingfisher {kw:.2f} s (CPU {kc:.2f} s) [{', '.join(f'{r.wall:.2f}' for r in kf)}]; "
                f"ratio {kw / lw:.2f}",
                flush=True,
            )
    print()
    print(
        "| shape | image (all layers) | final filesystem | leakscan wall / CPU | kingfisher wall / CPU "
        "| kingfisher / leakscan | leakscan MB/s (image) | kingfisher MB/s (filesystem) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for shape, size, fs_bytes, fs_files, lw, lc, kw, kc, _, _ in rows:
        print(
            f"| {shape} | {size / 1e6:.0f} MB | {fs_bytes / 1e6:.0f} MB, {fs_files:,} files | {lw:.2f} s / {lc:.2f} s "
            f"| {kw:.2f} s / {kc:.2f} s | {kw / lw:.2f} | {size / 1e6 / lw:.0f} | {fs_bytes / 1e6 / kw:.0f} |"
        )


if __name__ == "__main__":
    main()
