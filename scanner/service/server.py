"""``leakscan serve``: the app, its store and its queue, wired.  ``leakscan worker``: a Redis worker."""

from __future__ import annotations

import logging
import time
from typing import Any

from .app import create_app
from .config import ServiceConfig
from .rescan import Rescanner
from .retention import Pruner
from .sqlite_store import SqliteStore
from .store import Job, Store
from .workers import EmbeddedPool, dramatiq_actor, run_dramatiq_worker

log = logging.getLogger("leakscan.service")


def build(config: ServiceConfig) -> tuple[Any, Store, EmbeddedPool | None, Rescanner]:
    """(ASGI app, store, embedded pool or None, rescanner).  Neither the pool nor the rescanner is
    started here."""
    ruleset = config.fingerprint()
    if config.redis_url:
        from .redis_store import RedisStore

        store: Store = RedisStore(config.redis_url)
        actor = dramatiq_actor(config)

        def enqueue(job: Job) -> None:
            delay = max(job.not_before - time.time(), 0.0)
            actor.send_with_options(args=(job.id,), delay=int(delay * 1000) if delay else None)

        # A notification accepted just before a crash is in the store but maybe not on the queue:
        # send every queued job again (a duplicate message finds the job started or done and stops).
        for job in list(store.walk(status="queued")):
            enqueue(job)
        app = create_app(config, store, enqueue, ruleset=ruleset)
        return app, store, None, Rescanner(config, store, enqueue, ruleset)
    store = SqliteStore(config.db_path)
    pool = EmbeddedPool(config)
    app = create_app(config, store, ready=lambda: pool.alive() > 0, ruleset=ruleset)
    return app, store, pool, Rescanner(config, store, lambda job: None, ruleset)


def serve(config: ServiceConfig, host: str, port: int) -> None:
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app, store, pool, rescanner = build(config)
    pruner = Pruner(config.retention, store)
    if pool is not None:
        pool.start()
    rescanner.start()
    pruner.start()
    mode = "redis" if config.redis_url else f"embedded ({config.workers} workers, {config.db_path})"
    log.info("leakscan serve on %s:%d, %s, registries: %s", host, port, mode, ", ".join(sorted(config.registries)))
    try:
        uvicorn.run(app, host=host, port=port, log_level="info", access_log=False)
    finally:
        pruner.stop()
        rescanner.stop()
        if pool is not None:
            pool.stop()


def worker(config: ServiceConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    run_dramatiq_worker(config)
