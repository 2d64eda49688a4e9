"""The scanning service under a stream of pushes, printed as figures (not a timed test).

    DOCKER_HOST=... python benchmarks/service.py [--images 12] [--base DIR]

Builds one shared base image (a layer of real files: this machine's Python library by default)
and N images on top of it, each with its own small layer holding a planted token; then, for the
embedded default (SQLite, 2 worker processes) and for Redis with two ``leakscan worker``
processes, starts docker-registry with notifications to ``leakscan serve``, pushes the N images one
after another with the real engine, and prints: images per minute from the first push to the last
stored report, push-to-report latency (median, max; from the end of each ``docker push`` to the
job's completion time in the store), scan time per image, and layers served from the cache.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.images import ensure_base_image  # noqa: E402
from tests.support.redis import run_redis  # noqa: E402
from tests.support.registry import run_registry  # noqa: E402
from tests.support.service import TOKEN, Proc, free_port, start_service, write_config  # noqa: E402
from tests.support.services import docker_cli  # noqa: E402


def build_images(work: Path, base_src: Path, n: int) -> list[str]:
    ctx = work / "base"
    shutil.copytree(base_src, ctx / "lib", symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    (ctx / "Dockerfile").write_text(f"FROM {ensure_base_image()}\nCOPY lib /usr/lib/pylib\n")
    docker_cli("build", "--network", "none", "-q", "-t", "leakscan-bench-base:1", str(ctx))
    tags = []
    for i in range(n):
        app = work / f"app{i}"
        (app / "src").mkdir(parents=True)
        for k in range(40):
            (app / "src" / f"mod{k}.py").write_text(f"# module {k} of app {i}\n" + "x = 1\n" * 800)
        (app / "src" / ".env").write_text(f"GITHUB_TOKEN=ghp_{secrets.token_hex(18)}\n")
        (app / "Dockerfile").write_text("FROM leakscan-bench-base:1\nCOPY src /app\n")
        tag = f"leakscan-bench-app{i}:1"
        docker_cli("build", "--network", "none", "-q", "-t", tag, str(app))
        tags.append(tag)
    return tags


def run(mode: str, tags: list[str], work: Path) -> dict[str, float]:
    port = free_port()
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(work / "redis")) if mode == "redis" else None
        reg = stack.enter_context(
            run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN))
        )
        extra = {"redis_url": redis_url} if redis_url else {"workers": 2}
        config = write_config(work / "service.toml", work / "data", [reg.host], **extra)
        workers = []
        if redis_url:
            workers = [Proc(["worker", "--config", str(config)], work / f"worker{i}.log").start() for i in (1, 2)]
        service = start_service(work, config, port)
        stack.callback(lambda: [p.kill(signal.SIGTERM) for p in [service.server, *workers]])
        pushed: dict[str, float] = {}
        start = time.time()
        for i, tag in enumerate(tags):
            target = f"{reg.host}/bench/app{i}:1"
            docker_cli("tag", tag, target)
            out = docker_cli("push", target)
            pushed[next(w for w in out.split() if w.startswith("sha256:"))] = time.time()
        jobs = [service.job_for(digest, timeout=600) for digest in pushed]
    done = [j["updated"] for j in jobs]
    latency = [j["updated"] - pushed[j["digest"]] for j in jobs]
    return {
        "images": len(jobs),
        "failed": sum(1 for j in jobs if j["status"] != "done"),
        "images_per_min": len(jobs) * 60 / (max(done) - start),
        "latency_median": statistics.median(latency),
        "latency_max": max(latency),
        "scan_median": statistics.median(j["summary"]["duration_s"] for j in jobs),
        "cached_layers": sum(j["summary"]["cached_layers"] for j in jobs),
        "layers": sum(j["summary"]["layers"] for j in jobs),
        "mb_per_image": statistics.median(j["summary"]["bytes_scanned"] for j in jobs) / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--base", type=Path, default=Path("/usr/lib/python3.11"))
    args = ap.parse_args()
    if not os.environ.get("DOCKER_HOST"):
        print("set DOCKER_HOST to a running engine (scripts/with-services python benchmarks/service.py)")
    with tempfile.TemporaryDirectory(prefix="leakscan-bench-") as tmp:
        work = Path(tmp)
        tags = build_images(work / "build", args.base, args.images)
        print(f"{len(tags)} images sharing a {args.base} base layer")
        head = f"{'img/min':>8} {'p50 lat s':>10} {'max lat s':>10} {'scan p50 s':>11} {'cached':>8} {'MB/img':>7}"
        print(f"{'setup':28} {head}")
        for mode, label in (("embedded", "embedded (SQLite, 2 procs)"), ("redis", "redis + 2 dramatiq workers")):
            r = run(mode, tags, work / mode)
            cached = f"{int(r['cached_layers'])}/{int(r['layers'])}"
            print(
                f"{label:28} {r['images_per_min']:8.1f} {r['latency_median']:10.2f} {r['latency_max']:10.2f} "
                f"{r['scan_median']:11.2f} {cached:>8} {r['mb_per_image']:7.1f}"
                + (f"  FAILED {int(r['failed'])}" if r["failed"] else "")
            )
        for tag in ["leakscan-bench-base:1", *tags]:
            docker_cli("rmi", tag)


if __name__ == "__main__":
    main()
