"""The two queues.  Embedded: worker processes that claim jobs from the SQLite store under a lease.
Redis: Dramatiq actors (see redis_store for why Dramatiq); ``leakscan worker`` runs one process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
import time
from typing import Any

from .config import ServiceConfig
from .jobs import Runner, worker_name
from .sqlite_store import SqliteStore
from .store import Store

log = logging.getLogger("leakscan.service")
QUEUE = "leakscan"


def embedded_worker(config: ServiceConfig, parent: int) -> None:
    """Claim, scan, repeat; exits when its parent (``leakscan serve``) is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us with SIGTERM
    store = SqliteStore(config.db_path)
    runner = Runner(config, store)
    name = worker_name()
    while os.getppid() == parent:
        job = store.claim(name, config.lease)
        if job is None:
            time.sleep(0.3)
            continue
        runner.execute(job, name)


class EmbeddedPool:
    """``config.workers`` processes, restarted when one dies (its job is retried when its lease ends)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.ctx = multiprocessing.get_context("spawn")
        self.procs: list[Any] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._supervise, daemon=True)

    def _spawn(self) -> Any:
        proc = self.ctx.Process(target=embedded_worker, args=(self.config, os.getpid()), daemon=True)
        proc.start()
        return proc

    def start(self) -> None:
        self.procs = [self._spawn() for _ in range(self.config.workers)]
        self._thread.start()

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            for i, proc in enumerate(self.procs):
                if not proc.is_alive() and not self._stop.is_set():
                    log.warning("worker %s exited (%s); starting another", proc.pid, proc.exitcode)
                    self.procs[i] = self._spawn()

    def alive(self) -> int:
        return sum(1 for p in self.procs if p.is_alive())

    def stop(self) -> None:
        self._stop.set()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.join(10)


def dramatiq_actor(config: ServiceConfig, store: Store | None = None, runner: Runner | None = None) -> Any:
    """The broker and the ``scan`` actor; the service only sends, workers also run it."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.middleware import AgeLimit, Callbacks, Retries, ShutdownNotifications, TimeLimit

    assert config.redis_url
    broker = RedisBroker(  # type: ignore[no-untyped-call]
        url=config.redis_url,
        namespace="leakscan-dramatiq",
        heartbeat_timeout=int(config.heartbeat_timeout * 1000),
        maintenance_chance=100_000,  # of a million commands: a dead worker's messages come back soon
        middleware=[AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Retries(max_retries=0)],
    )
    dramatiq.set_broker(broker)

    def scan(job_id: str) -> None:
        assert store is not None and runner is not None
        name = worker_name()
        job = store.start(job_id, name, config.lease)
        if job is None:
            wait = store.lease_left(job_id)
            if wait > 0:  # another worker holds it, or held it and died: look again when the lease ends
                actor.send_with_options(args=(job_id,), delay=int(wait * 1000) + 500)
            return
        runner.execute(job, name)

    actor = dramatiq.actor(
        actor_name="leakscan_scan",
        queue_name=QUEUE,
        max_retries=0,
        time_limit=int((config.scan_timeout + 300) * 1000),
    )(scan)
    return actor


def run_dramatiq_worker(config: ServiceConfig) -> None:
    """One worker process, one scanning thread (scans are CPU-bound): start as many as you like."""
    from dramatiq import Worker

    from .redis_store import RedisCacheBackend, RedisStore

    assert config.redis_url
    store = RedisStore(config.redis_url)
    holder: dict[str, Any] = {}
    runner = Runner(
        config,
        store,
        cache=RedisCacheBackend(config.redis_url),
        requeue=lambda job_id, delay: holder["actor"].send_with_options(args=(job_id,), delay=int(delay * 1000)),
    )
    actor = holder["actor"] = dramatiq_actor(config, store, runner)
    worker = Worker(actor.broker, worker_threads=1, worker_timeout=1000)
    worker.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    log.info("leakscan worker %s: consuming %s on %s", os.getpid(), QUEUE, config.redis_url.split("@")[-1])
    done.wait()
    worker.stop()
