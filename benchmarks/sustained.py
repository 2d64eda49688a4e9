"""``benchmarks/service.py --sustained N --minutes M``: pushes at an even pace, measured.

Images are written as one OCI layout (every image shares the base layer blob) and pushed with
``skopeo copy`` to docker-registry on 127.0.0.1, which notifies ``leakscan serve``.  Figures:
push-to-report latency, lost and duplicated jobs (every page of ``/api/v1/jobs`` is walked),
and the RSS of each process, sampled every two seconds.  Bounded: N pushes, M minutes, plus at
most ten minutes for the queue to drain.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import statistics
import tempfile
import threading
import time
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from tests.support.redis import run_redis
from tests.support.registry import run_registry
from tests.support.service import TOKEN, Proc, free_port, start_service, wait_for, write_config
from tests.support.services import skopeo
from tests.support.tars import compress, layer_tar, sha


def write_layout(out: Path, base_src: Path, n: int) -> list[str]:
    """One OCI layout, refs app0..app{n-1}: the shared base layer (the files of ``base_src``) and a
    layer of the image's own (40 modules and a .env holding a planted token)."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict[str, Any]:
        (blobs / sha(data).removeprefix("sha256:")).write_bytes(data)
        return {"digest": sha(data), "size": len(data)}

    files = [p for p in sorted(base_src.rglob("*")) if p.is_file() and not p.is_symlink()]
    files = [p for p in files if "__pycache__" not in p.parts]
    base = layer_tar([(f"usr/lib/pylib/{p.relative_to(base_src)}", p.read_bytes()) for p in files])
    base_gz = put(compress(base, "gzip"))
    refs, manifests = [], []
    for i in range(n):
        own = [(f"app/mod{k}.py", (f"# module {k} of app {i}\n" + "x = 1\n" * 800).encode()) for k in range(40)]
        own.append(("app/.env", f"GITHUB_TOKEN=ghp_{secrets.token_hex(18)}\n".encode()))
        layer = layer_tar(own)
        rootfs = {"type": "layers", "diff_ids": [sha(base), sha(layer)]}
        config = put(json.dumps({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": rootfs}).encode())
        layers = [base_gz, put(compress(layer, "gzip"))]
        manifest = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer} for layer in layers],
        }
        ref = f"app{i}"
        entry = {"mediaType": manifest["mediaType"], **put(json.dumps(manifest).encode())}
        manifests.append({**entry, "annotations": {"org.opencontainers.image.ref.name": ref}})
        refs.append(ref)
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": manifests}))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return refs


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _procs() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command line) of every process."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except (OSError, IndexError, ValueError):
                continue
            out.append((int(entry.name), ppid, cmd))
    return out


class Sampler:
    """The RSS of the run's processes every ``every`` seconds, by role: serve, its embedded workers,
    the Redis workers, docker-registry, redis-server (found by the run's directory in their
    command line, or as children of serve)."""

    def __init__(self, work: Path, serve: int, workers: list[int], every: float = 2.0) -> None:
        self.work, self.serve, self.workers, self.every = str(work), serve, workers, every
        self.samples: dict[str, list[float]] = defaultdict(list)  # role -> RSS in MB, in time order
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def roles(self) -> dict[int, str]:
        found = {self.serve: "serve"} | {pid: f"leakscan worker {i + 1}" for i, pid in enumerate(self.workers)}
        procs = _procs()
        embedded = sorted(p for p, ppid, cmd in procs if ppid == self.serve and "resource_tracker" not in cmd)
        found |= {pid: f"serve: embedded worker {i + 1}" for i, pid in enumerate(embedded)}
        for pid, _, cmd in procs:
            if cmd.startswith("docker-registry") and self.work in cmd:
                found[pid] = "docker-registry"
            elif cmd.startswith("redis-server") and self.work in cmd:
                found[pid] = "redis-server"
        return found

    def _run(self) -> None:
        while not self._stop.is_set():
            for pid, role in self.roles().items():
                mb = rss_mb(pid)
                if mb is not None:
                    self.samples[role].append(mb)
            self._stop.wait(self.every)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run(mode: str, layout: Path, refs: list[str], minutes: float, work: Path) -> dict[str, Any]:
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
        for proc in [service.server, *workers]:
            stack.callback(proc.kill, signal.SIGTERM)
        assert service.server.proc is not None
        sampler = Sampler(work, service.server.proc.pid, [w.proc.pid for w in workers if w.proc is not None])
        stack.enter_context(sampler)
        pace = minutes * 60 / len(refs)
        start = time.time()
        pushed: dict[str, float] = {}
        for i, ref in enumerate(refs):
            time.sleep(max(start + i * pace - time.time(), 0))
            digest_file = work / "digest"
            skopeo("copy", "--dest-tls-verify=false", "--digestfile", str(digest_file),
                   f"oci:{layout}:{ref}", f"docker://{reg.host}/bench/app{i % 10}:v{i}")  # fmt: skip
            pushed[digest_file.read_text().strip()] = time.time()
        push_seconds = time.time() - start

        def drained() -> bool:
            metrics = service.request("/metrics")[1].decode()
            return all(f'leakscan_jobs{{status="{s}"}} 0.0' in metrics for s in ("queued", "running"))

        time.sleep(1.0)  # the last notification
        wait_for(drained, 600, lambda: "the queue did not drain in ten minutes", every=0.5)
        jobs = service.jobs()
    per_digest = Counter(j["digest"] for j in jobs)
    done = {j["digest"]: j for j in jobs if j["status"] == "done"}
    latency = sorted(done[d]["updated"] - t for d, t in pushed.items() if d in done)
    return {
        "pushed": len(pushed),
        "push_seconds": push_seconds,
        "lost": sum(1 for d in pushed if d not in done),
        "duplicated": sum(1 for d in pushed if per_digest[d] > 1),
        "unexpected": sum(1 for d in per_digest if d not in pushed),
        "failed": sum(1 for j in jobs if j["status"] == "failed"),
        "p50": statistics.median(latency),
        "p99": latency[min(len(latency) - 1, round(0.99 * (len(latency) - 1)))],
        "max": latency[-1],
        "scan_p50": statistics.median(j["summary"]["duration_s"] for j in done.values()),
        "cached": sum(j["summary"]["cached_layers"] for j in done.values()),
        "layers": sum(j["summary"]["layers"] for j in done.values()),
        "rss": {role: (v[0], max(v), v[-1], len(v)) for role, v in sorted(sampler.samples.items())},
    }


def sustained(n: int, minutes: float, base: Path, modes: list[str]) -> None:
    with tempfile.TemporaryDirectory(prefix="leakscan-sustained-") as tmp:
        work = Path(tmp)
        refs = write_layout(work / "layout", base, n)
        size = sum(f.stat().st_size for f in (work / "layout" / "blobs" / "sha256").iterdir())
        print(
            f"{n} images pushed by skopeo over {minutes:g} min (one every {minutes * 60 / n:.2f} s), one shared"
            f" base layer of {base} ({size / 1e6:.0f} MB of blobs in all); {os.cpu_count()} CPUs"
        )
        for mode in modes:
            label = {"embedded": "embedded (SQLite, 2 worker processes)", "redis": "redis + 2 leakscan workers"}[mode]
            r = run(mode, work / "layout", refs, minutes, work / mode)
            print(f"\n{label}: {r['pushed']} pushes in {r['push_seconds']:.0f} s")
            print(
                f"  push -> report latency  p50 {r['p50']:.2f} s  p99 {r['p99']:.2f} s  max {r['max']:.2f} s"
                f"  (scan p50 {r['scan_p50']:.2f} s; {r['cached']}/{r['layers']} layers from the cache)"
            )
            lost = f"lost {r['lost']}, duplicated {r['duplicated']}, unexpected {r['unexpected']}"
            print(f"  jobs: {lost}, failed {r['failed']}")
            for role, (first, peak, last, count) in r["rss"].items():
                rss = f"start {first:6.1f} MB  peak {peak:6.1f} MB  end {last:6.1f} MB"
                print(f"  RSS {role:24} {rss}  ({count} samples)")
