"""The scanning service under a stream of pushes, printed as figures (not a timed test).

    DOCKER_HOST=... python benchmarks/service.py [--images 12] [--base DIR]

Builds one shared base image (a layer of real files: this machine's Python library by default)
and N images on top of it, each with its own small layer holding a planted token; then, for the
embedded default (SQLite, 2 worker processes) and for Redis with two ``leakscan worker``
processes, prints two figures. Capacity: the N images, already in a registry, queued at once
through the API with a cold layer cache (images per minute until the last report, scan time per
image, layers served by the shared cache). Pipeline: docker-registry notifying ``leakscan serve``
while the N images are pushed one after another by the real engine (images per minute from the
first push to the last stored report, and push-to-report latency from the end of each
``docker push`` to the job's completion in the store).

    python benchmarks/service.py --sustained 200 --minutes 5

Sustained pushes (no Docker Engine needed): N images, each the shared base layer plus a small
layer of its own with a planted token, written as one OCI layout and pushed by ``skopeo copy`` at
an even pace over the given minutes to docker-registry, which notifies ``leakscan serve``; for the
embedded default and for Redis with two ``leakscan worker`` processes it prints push-to-report
latency (p50/p99/max, from the end of each push to the job's completion in the store), checks
that every pushed digest has exactly one job and that it is done (walking every page of
``/api/v1/jobs``), and samples the RSS of each process (serve, its embedded workers, the Redis
workers, docker-registry, redis-server) every two seconds.
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

from benchmarks.sustained import sustained  # noqa: E402
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


def push_all(tags: list[str], host: str, repo: str) -> dict[str, float]:
    """docker push each image; digest -> the time its push returned."""
    pushed: dict[str, float] = {}
    for i, tag in enumerate(tags):
        target = f"{host}/{repo}{i}:1"
        docker_cli("tag", tag, target)
        out = docker_cli("push", target)
        pushed[next(w for w in out.split() if w.startswith("sha256:"))] = time.time()
    return pushed


def run(mode: str, tags: list[str], work: Path) -> dict[str, float]:
    """``tags``: 2N images (the same digest is scanned only once, so each phase has its own N)."""
    burst_tags, push_tags = tags[: len(tags) // 2], tags[len(tags) // 2 :]
    port = free_port()
    with ExitStack() as stack:
        redis_url = stack.enter_context(run_redis(work / "redis")) if mode == "redis" else None
        quiet = stack.enter_context(run_registry(work / "quiet-registry"))  # no notifications
        reg = stack.enter_context(
            run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN))
        )
        burst_digests = list(push_all(burst_tags, quiet.host, "burst/app"))  # before the service exists
        extra = {"redis_url": redis_url} if redis_url else {"workers": 2}
        config = write_config(work / "service.toml", work / "data", [reg.host, quiet.host], **extra)
        workers = []
        if redis_url:
            workers = [Proc(["worker", "--config", str(config)], work / f"worker{i}.log").start() for i in (1, 2)]
        service = start_service(work, config, port)
        stack.callback(lambda: [p.kill(signal.SIGTERM) for p in [service.server, *workers]])
        # 1. capacity: N images queued at once through the API, cold layer cache
        burst_start = time.time()
        for i, digest in enumerate(burst_digests):
            status, _ = service.request("/api/v1/jobs", {"image": f"{quiet.host}/burst/app{i}@{digest}"})
            assert status == 202
        burst = [service.job_for(digest, timeout=600) for digest in burst_digests]
        # 2. the pipeline: docker push -> notification -> scan -> stored report
        start = time.time()
        pushed = push_all(push_tags, reg.host, "bench/app")
        jobs = [service.job_for(digest, timeout=600) for digest in pushed]
    done = [j["updated"] for j in jobs]
    latency = [j["updated"] - pushed[j["digest"]] for j in jobs]
    return {
        "images": len(jobs),
        "failed": sum(1 for j in jobs + burst if j["status"] != "done"),
        "burst_per_min": len(burst) * 60 / (max(j["updated"] for j in burst) - burst_start),
        "burst_cached": sum(j["summary"]["cached_layers"] for j in burst),
        "images_per_min": len(jobs) * 60 / (max(done) - start),
        "latency_median": statistics.median(latency),
        "latency_max": max(latency),
        "scan_median": statistics.median(j["summary"]["duration_s"] for j in burst),
        "layers": sum(j["summary"]["layers"] for j in burst),
        "mb_per_image": statistics.median(j["summary"]["bytes_scanned"] for j in jobs) / 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--base", type=Path, default=Path("/usr/lib/python3.11"))
    ap.add_argument("--sustained", type=int, metavar="N", help="sustained mode: N images pushed at an even pace")
    ap.add_argument("--minutes", type=float, default=5.0, help="sustained mode: over this many minutes")
    ap.add_argument("--only", choices=("embedded", "redis"), help="sustained mode: one setup only")
    args = ap.parse_args()
    if args.sustained:
        sustained(args.sustained, args.minutes, args.base, [args.only] if args.only else ["embedded", "redis"])
        return
    if not os.environ.get("DOCKER_HOST"):
        print("set DOCKER_HOST to a running engine (scripts/with-services python benchmarks/service.py)")
    with tempfile.TemporaryDirectory(prefix="leakscan-bench-") as tmp:
        work = Path(tmp)
        tags = build_images(work / "build", args.base, 2 * args.images)
        print(f"{args.images} images per phase, all on one base layer of {args.base}")
        print(
            f"{'setup':28} {'queued at once':>15} {'scan p50 s':>11} {'layers cached':>14} "
            f"{'push->report':>13} {'latency p50/max s':>18}"
        )
        for mode, label in (("embedded", "embedded (SQLite, 2 procs)"), ("redis", "redis + 2 dramatiq workers")):
            r = run(mode, tags, work / mode)
            cached = f"{int(r['burst_cached'])}/{int(r['layers'])}"
            lat = f"{r['latency_median']:.2f}/{r['latency_max']:.2f}"
            print(
                f"{label:28} {r['burst_per_min']:9.1f} /min {r['scan_median']:11.2f} {cached:>14} "
                f"{r['images_per_min']:8.1f} /min {lat:>18}" + (f"  FAILED {int(r['failed'])}" if r["failed"] else "")
            )
        print(f"({r['mb_per_image']:.1f} MB of layers per image; push->report is bounded by docker push)")
        for tag in ["leakscan-bench-base:1", *tags]:
            docker_cli("rmi", tag)


if __name__ == "__main__":
    main()
