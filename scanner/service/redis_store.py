"""Scale-out: jobs, reports and the layer cache in Redis, scans on Dramatiq workers.

Dramatiq (https://dramatiq.io) is the task queue: its Redis broker acknowledges a message only
when the actor returns, keeps each worker's unacknowledged messages under a heartbeat, and hands
a dead worker's messages to the living.  That is the at-least-once delivery a scanner needs; what
Dramatiq cannot know (attempt counting across worker deaths, backoff on registry outages) is in
jobs.Runner, the same for both queues.  The store only holds state; it carries no queue protocol.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis

from ..cache import CacheBackend
from .events import PushEvent
from .store import ACTIVE, STATUSES, Job, JobResult, Store, new_job, rescan_of

P = "leakscan:"
CACHE_TTL = 30 * 86400


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value if isinstance(value, str) else None


def _load(text: Any) -> Job | None:
    return Job(**json.loads(text)) if text else None


class RedisStore(Store):
    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url)

    def _put(self, pipe: Any, job: Job, old: Job | None) -> None:
        pipe.set(f"{P}job:{job.id}", json.dumps(dataclasses.asdict(job)))
        if old is None or old.status != job.status:
            if old is not None:
                pipe.hincrby(f"{P}counts", old.status, -1)
            pipe.hincrby(f"{P}counts", job.status, 1)

    def _mutate(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        key = f"{P}job:{job_id}"
        out: list[Job | None] = [None]

        def tx(pipe: Any) -> None:
            old = _load(pipe.get(key))
            new = change(old) if old is not None else None
            pipe.multi()
            if old is not None and new is not None:
                self._put(pipe, dataclasses.replace(new, updated=time.time()), old)
            out[0] = new

        self.r.transaction(tx, key)
        return out[0]

    def submit(self, event: PushEvent, source: str, auth: str | None = None) -> tuple[Job, bool]:
        index = f"{P}digest:{event.digest}" if event.digest else f"{P}queued-ref:{event.ref}"
        result: list[tuple[Job, bool]] = []

        def tx(pipe: Any) -> None:
            existing = _load(pipe.get(f"{P}job:{_text(pipe.get(index)) or ''}"))
            if existing is not None and existing.status in ACTIVE and (event.digest or existing.status == "queued"):
                pipe.multi()
                if auth and existing.status != "done" and not existing.auth:
                    self._put(pipe, dataclasses.replace(existing, auth=auth), existing)
                result.append((existing, False))
                return
            job = new_job(event, source, auth)
            pipe.multi()
            self._put(pipe, job, None)
            pipe.set(index, job.id)
            pipe.zadd(f"{P}jobs", {job.id: job.created})
            result.append((job, True))

        self.r.transaction(tx, index)
        return result[-1]

    def get(self, job_id: str) -> Job | None:
        return _load(self.r.get(f"{P}job:{job_id}"))

    def by_digest(self, digest: str) -> Job | None:
        job_id = _text(self.r.get(f"{P}digest:{digest}"))
        return self.get(job_id) if job_id else None

    def recent(self, limit: int = 50, status: str | None = None) -> list[Job]:
        out: list[Job] = []
        start = 0
        while len(out) < limit:
            ids = self.r.zrevrange(f"{P}jobs", start, start + 199)
            if not ids:
                break
            start += len(ids)
            jobs = [_load(t) for t in self.r.mget([f"{P}job:{_text(i)}" for i in ids])]
            out += [j for j in jobs if j is not None and (status is None or j.status == status)]
        return out[:limit]

    def start(self, job_id: str, worker: str, lease: float) -> Job | None:
        now = time.time()

        def change(job: Job) -> Job | None:
            if job.status == "queued" or (job.status == "running" and job.lease_until < now):
                return dataclasses.replace(
                    job, status="running", attempts=job.attempts + 1, worker=worker, lease_until=now + lease
                )
            return None

        return self._mutate(job_id, change)

    def heartbeat(self, job_id: str, worker: str, lease: float) -> None:
        self._mutate(
            job_id,
            lambda j: (
                dataclasses.replace(j, lease_until=time.time() + lease)
                if j.worker == worker and j.status == "running"
                else None
            ),
        )

    def set_digest(self, job_id: str, digest: str) -> None:
        if self._mutate(job_id, lambda j: dataclasses.replace(j, digest=digest)) is not None:
            self.r.set(f"{P}digest:{digest}", job_id)

    def finish(self, job_id: str, result: JobResult) -> None:
        self.r.hset(f"{P}report:{job_id}", mapping=dict(result.reports.items()))
        self._mutate(
            job_id,
            lambda j: dataclasses.replace(
                j,
                status="done",
                findings=result.findings,
                complete=result.complete,
                summary=result.summary,
                error=None,
                auth=None,
                ruleset=result.ruleset,
                version=result.version,
            ),
        )

    def retry(self, job_id: str, delay: float, reason: str) -> None:
        self._mutate(
            job_id,
            lambda j: dataclasses.replace(
                j, status="queued", not_before=time.time() + delay, error=reason, worker=None
            ),
        )

    def defer(self, job_id: str, delay: float) -> None:
        self._mutate(
            job_id,
            lambda j: dataclasses.replace(
                j, status="queued", not_before=time.time() + delay, attempts=max(j.attempts - 1, 0), worker=None
            ),
        )

    def fail(self, job_id: str, reason: str) -> None:
        self._mutate(job_id, lambda j: dataclasses.replace(j, status="failed", error=reason, auth=None))

    def report(self, job_id: str, fmt: str) -> str | None:
        return _text(self.r.hget(f"{P}report:{job_id}", fmt))

    def counts(self) -> dict[str, int]:
        raw = self.r.hgetall(f"{P}counts")
        return {s: 0 for s in STATUSES} | {str(_text(k)): int(v) for k, v in raw.items()}

    def _newest(self) -> Iterator[Job]:
        """Every job, newest first, in batches (O(jobs): a rescan sweep or a stale count reads them all)."""
        start = 0
        while ids := self.r.zrevrange(f"{P}jobs", start, start + 499):
            start += len(ids)
            yield from (j for j in (_load(t) for t in self.r.mget([f"{P}job:{_text(i)}" for i in ids])) if j)

    def _stale(self, ruleset: str) -> Iterator[Job]:
        for job in self._newest():
            stale = job.status == "done" and job.digest and job.ruleset != ruleset
            if stale and _text(self.r.get(f"{P}digest:{job.digest}")) == job.id:
                yield job

    def stale(self, ruleset: str, limit: int) -> list[Job]:
        return list(itertools.islice(self._stale(ruleset), limit))

    def count_stale(self, ruleset: str) -> int:
        return sum(1 for _ in self._stale(ruleset))

    def rescan(self, job: Job) -> Job | None:
        index = f"{P}digest:{job.digest}"
        out: list[Job | None] = [None]

        def tx(pipe: Any) -> None:
            if _text(pipe.get(index)) != job.id:
                pipe.multi()
                return
            new = rescan_of(job)
            pipe.multi()
            self._put(pipe, new, None)
            pipe.set(index, new.id)
            pipe.zadd(f"{P}jobs", {new.id: new.created})
            out[0] = new

        self.r.transaction(tx, index)
        return out[0]

    def ping(self) -> bool:
        try:
            return bool(self.r.ping())
        except redis.RedisError:
            return False


class RedisCacheBackend(CacheBackend):
    """The layer cache shared by every worker on every machine: a base layer is scanned once."""

    def __init__(self, url: str) -> None:
        self.r = redis.Redis.from_url(url)

    def read(self, key: str) -> str | None:
        try:
            text = self.r.get(f"{P}layer:{key}")
        except redis.RedisError:
            return None
        return _text(text)

    def write(self, key: str, text: str) -> None:
        with contextlib.suppress(redis.RedisError):
            self.r.set(f"{P}layer:{key}", text, ex=CACHE_TTL)
