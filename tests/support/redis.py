"""A real redis-server for the tests, on a unix socket in the test's directory (no port to clash)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def redis_available() -> tuple[bool, str]:
    return shutil.which("redis-server") is not None, "redis-server is not installed (apt-get install redis-server)"


@contextmanager
def run_redis(workdir: Path) -> Iterator[str]:
    """Yields a redis:// URL (unix socket).  Append-only persistence, as a durable store needs."""
    import redis

    workdir.mkdir(parents=True, exist_ok=True)
    sock = workdir / "redis.sock"
    log = (workdir / "redis.log").open("w")
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--dir",
            str(workdir),
            "--save",
            "",
            "--appendonly",
            "yes",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"unix://{sock}?db=0"
    try:
        for _ in range(100):
            try:
                if redis.Redis.from_url(url).ping():
                    break
            except redis.RedisError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"redis-server did not start: {(workdir / 'redis.log').read_text()[-1000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
