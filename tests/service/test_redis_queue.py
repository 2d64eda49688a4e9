"""The Redis setup's own promises, on a real redis-server: a service restarted with queued jobs in
the store sends them to the queue again (a crash between storing and sending loses nothing), and
the shared layer cache round-trips."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.service.config import RegistryEntry, ServiceConfig
from scanner.service.events import PushEvent
from scanner.service.server import build
from tests.support.redis import redis_available, run_redis
from tests.support.services import require

REG = "127.0.0.1:5000"


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    require("redis-server", *redis_available())
    with run_redis(tmp_path / "redis") as url:
        yield url


def test_a_restart_requeues_every_queued_job(redis_url: str, tmp_path: Path) -> None:
    import redis

    from scanner.service.redis_store import RedisStore

    config = ServiceConfig(data_dir=tmp_path, tokens=("t",), registries={REG: RegistryEntry(REG)}, redis_url=redis_url)
    store = RedisStore(redis_url)
    queued, _ = store.submit(PushEvent(REG, "a/b", "sha256:" + "1" * 64, None), "distribution")
    done, _ = store.submit(PushEvent(REG, "a/c", "sha256:" + "2" * 64, None), "distribution")
    store.start(done.id, "w", 30)
    store.fail(done.id, "x")
    client = redis.Redis.from_url(redis_url)
    assert client.hlen("leakscan-dramatiq:leakscan.msgs") == 0  # stored, never sent: the crash window
    build(config)
    messages = [json.loads(m) for m in client.hvals("leakscan-dramatiq:leakscan.msgs")]
    assert [(m["actor_name"], m["args"]) for m in messages] == [("leakscan_scan", [queued.id])]


def test_the_shared_layer_cache(redis_url: str) -> None:
    from scanner.service.redis_store import RedisCacheBackend

    a, b = RedisCacheBackend(redis_url), RedisCacheBackend(redis_url)  # two workers
    assert a.read("ns/sha256:x") is None
    a.write("ns/sha256:x", '{"k": 1}')
    assert b.read("ns/sha256:x") == '{"k": 1}'
    dead = RedisCacheBackend("redis://127.0.0.1:1/0")  # a cache that cannot be reached is only a miss
    assert dead.read("ns/sha256:x") is None
    dead.write("ns/sha256:x", "{}")
