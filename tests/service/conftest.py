"""The store fixture: every contract test runs on SQLite and on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner.service.sqlite_store import SqliteStore
from scanner.service.store import Store
from tests.support.redis import redis_available, run_redis
from tests.support.services import require


@pytest.fixture(scope="module")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require("redis-server", *redis_available())
    with run_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(params=["sqlite", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    if request.param == "sqlite":
        return SqliteStore(tmp_path / "db.sqlite3")
    import redis

    from scanner.service.redis_store import RedisStore

    url = request.getfixturevalue("shared_redis")
    redis.Redis.from_url(url).flushdb()
    return RedisStore(url)
