"""Scale-out: jobs, reports and the layer cache in Redis, scans on Dramatiq workers.

Dramatiq (https://dramatiq.io) is the task queue: its Redis broker acknowledges a message only
when the actor returns, keeps each worker's unacknowledged messages under a heartbeat, and hands
a dead worker's messages to the living.  That is the at-least-once delivery a scanner needs; what
Dramatiq cannot know (attempt counting across worker deaths, backoff on registry outages) is in
jobs.Runner, the same for both queues.  The store only holds state; it carries no queue protocol.

Keys (prefix ``leakscan:``): ``job:ID`` (JSON), ``report:ID`` (hash of formats), ``digest:D`` (the
newest job of a digest), ``counts`` (jobs by status).  Indexes, sorted sets scored by ``created``
so that listing, filtering and counting never read every job: ``jobs`` (all), ``status:S``,
``repo:R`` (with the set ``repos``), and ``current:RULESET``, the done jobs that are the newest of
their digest, by the rule set of their report (with the set ``rulesets``): a stale count is a few
ZCARDs.  A store written before these indexes is indexed once when a process first opens it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from ..cache import CacheBackend
from .events import PushEvent
from .store import ACTIVE, ENDED, STATUSES, Cursor, Job, JobResult, Page, Store, new_job, rescan_of

P = "leakscan:"
CACHE_TTL = 30 * 86400
SCHEMA = "2"  # 2: the status, repository and current-report indexes


def _text(value: Any) -> str | None:
    return value.decode() if isinstance(value, bytes) else value if isinstance(value, str) else None


def _load(text: Any) -> Job | None:
    return Job(**json.loads(text)) if text else None


def _scored(raw: Any) -> list[tuple[str, float]]:
    """A sorted set's (member, score) pairs as redis-py returns them ``withscores``."""
    return [(str(_text(member)), float(score)) for member, score in raw]


def _current(ruleset: str | None) -> str:
    return f"{P}current:{ruleset or ''}"


class RedisStore(Store):
    def __init__(self, url: str) -> None:
        self.url = url
        self.r = redis.Redis.from_url(url)
        if _text(self.r.get(f"{P}schema")) != SCHEMA:
            self._reindex()

    def _put(self, pipe: Any, job: Job, old: Job | None, current: bool = False) -> None:
        """Write ``job`` (``old``: as it was, None if new) and its index entries; ``current``: it is
        the newest job of its digest."""
        pipe.set(f"{P}job:{job.id}", json.dumps(dataclasses.asdict(job)))
        if old is None:
            pipe.zadd(f"{P}jobs", {job.id: job.created})
            pipe.zadd(f"{P}repo:{job.repository}", {job.id: job.created})
            pipe.sadd(f"{P}repos", job.repository)
        if old is None or old.status != job.status:
            if old is not None:
                pipe.hincrby(f"{P}counts", old.status, -1)
                pipe.zrem(f"{P}status:{old.status}", job.id)
            pipe.hincrby(f"{P}counts", job.status, 1)
            pipe.zadd(f"{P}status:{job.status}", {job.id: job.created})
        if current and old is not None and old.status == "done":
            pipe.zrem(_current(old.ruleset), job.id)
        if current and job.status == "done":
            pipe.zadd(_current(job.ruleset), {job.id: job.created})
            pipe.sadd(f"{P}rulesets", job.ruleset or "")

    def _reindex(self) -> None:
        """Index a store written before the indexes existed (idempotent)."""
        start = 0
        while ids := [str(_text(i)) for i in self.r.zrange(f"{P}jobs", start, start + 499)]:
            start += len(ids)
            jobs = [j for j in (_load(t) for t in self.r.mget([f"{P}job:{i}" for i in ids])) if j]
            newest = self.r.mget([f"{P}digest:{j.digest}" for j in jobs]) if jobs else []
            pipe = self.r.pipeline(transaction=False)
            for job, top in zip(jobs, newest, strict=True):
                pipe.zadd(f"{P}repo:{job.repository}", {job.id: job.created})
                pipe.sadd(f"{P}repos", job.repository)
                pipe.zadd(f"{P}status:{job.status}", {job.id: job.created})
                if job.status == "done" and job.digest and _text(top) == job.id:
                    pipe.zadd(_current(job.ruleset), {job.id: job.created})
                    pipe.sadd(f"{P}rulesets", job.ruleset or "")
            pipe.execute()
        self.r.set(f"{P}schema", SCHEMA)

    def _mutate(self, job_id: str, change: Callable[[Job], Job | None]) -> Job | None:
        key = f"{P}job:{job_id}"
        out: list[Job | None] = [None]

        def tx(pipe: Any) -> None:
            old = _load(pipe.get(key))
            new = change(old) if old is not None else None
            current = False
            if old is not None and new is not None and old.digest and "done" in (old.status, new.status):
                pipe.watch(f"{P}digest:{old.digest}")
                current = _text(pipe.get(f"{P}digest:{old.digest}")) == job_id
            pipe.multi()
            if old is not None and new is not None:
                self._put(pipe, dataclasses.replace(new, updated=time.time()), old, current)
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
            result.append((job, True))

        self.r.transaction(tx, index)
        return result[-1]

    def get(self, job_id: str) -> Job | None:
        return _load(self.r.get(f"{P}job:{job_id}"))

    def by_digest(self, digest: str) -> Job | None:
        job_id = _text(self.r.get(f"{P}digest:{digest}"))
        return self.get(job_id) if job_id else None

    def _after(self, key: str, cursor: Cursor | None, count: int) -> list[tuple[str, float]]:
        """Up to ``count`` (id, created) of the index ``key`` after ``cursor``, newest first."""
        if cursor is None:
            return _scored(self.r.zrevrangebyscore(key, "+inf", "-inf", start=0, num=count, withscores=True))
        bound = repr(cursor.created)
        ties = [str(_text(m)) for m in self.r.zrangebyscore(key, bound, bound)]
        out = [(m, cursor.created) for m in sorted(ties, reverse=True) if m < cursor.id][:count]
        if len(out) == count:
            return out
        older = self.r.zrevrangebyscore(key, f"({bound}", "-inf", start=0, num=count - len(out), withscores=True)
        return out + _scored(older)

    def page(
        self, limit: int, cursor: Cursor | None = None, status: str | None = None, repository: str | None = None
    ) -> Page:
        # The narrower index is read; the other filter, if any, is applied to what it yields.
        key = f"{P}repo:{repository}" if repository is not None else f"{P}status:{status}" if status else f"{P}jobs"
        out: list[Job] = []
        while len(out) <= limit:
            batch = self._after(key, cursor, max(limit + 1 - len(out), 50))
            if not batch:
                break
            cursor = Cursor(batch[-1][1], batch[-1][0])
            loaded = (_load(t) for t in self.r.mget([f"{P}job:{i}" for i, _ in batch]))
            out += [j for j in loaded if j is not None and (status is None or j.status == status)]
        jobs = out[:limit]
        return Page(jobs, Cursor(jobs[-1].created, jobs[-1].id) if len(out) > limit else None)

    def repositories(self) -> list[str]:
        return sorted(str(_text(m)) for m in self.r.smembers(f"{P}repos"))

    def delete(self, job_ids: Iterable[str]) -> int:
        return sum(self._delete(job_id) for job_id in job_ids)

    def _delete(self, job_id: str) -> bool:
        key = f"{P}job:{job_id}"
        out: list[str | None] = [None]  # the repository of the deleted job

        def tx(pipe: Any) -> None:
            job = _load(pipe.get(key))
            if job is None or job.status not in ENDED:
                pipe.multi()
                return
            index = f"{P}digest:{job.digest}"
            pipe.watch(index)
            newest = _text(pipe.get(index)) == job.id
            pipe.multi()
            pipe.delete(key, f"{P}report:{job_id}")
            for zset in (f"{P}jobs", f"{P}status:{job.status}", f"{P}repo:{job.repository}", _current(job.ruleset)):
                pipe.zrem(zset, job_id)
            pipe.hincrby(f"{P}counts", job.status, -1)
            if newest:  # the digest has no job left: its next push is scanned
                pipe.delete(index)
            out[0] = job.repository

        self.r.transaction(tx, key)
        if out[0] is not None:
            self._forget_if_empty(out[0])
        return out[0] is not None

    def _forget_if_empty(self, repository: str) -> None:
        index = f"{P}repo:{repository}"

        def tx(pipe: Any) -> None:
            empty = pipe.zcard(index) == 0
            pipe.multi()
            if empty:
                pipe.srem(f"{P}repos", repository)

        self.r.transaction(tx, index)

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
        key, index = f"{P}job:{job_id}", f"{P}digest:{digest}"

        def tx(pipe: Any) -> None:
            job = _load(pipe.get(key))
            before = _text(pipe.get(index))
            replaced = _load(pipe.get(f"{P}job:{before}")) if before and before != job_id else None
            pipe.multi()
            if job is None:
                return
            if replaced is not None and replaced.status == "done":  # no longer the newest of its digest
                pipe.zrem(_current(replaced.ruleset), replaced.id)
            self._put(pipe, dataclasses.replace(job, digest=digest, updated=time.time()), job)
            if job.status == "done":
                pipe.zadd(_current(job.ruleset), {job.id: job.created})
                pipe.sadd(f"{P}rulesets", job.ruleset or "")
            pipe.set(index, job_id)

        self.r.transaction(tx, key, index)

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

    def _stale_sets(self, ruleset: str) -> list[str]:
        return [_current(r) for r in sorted(str(_text(m)) for m in self.r.smembers(f"{P}rulesets")) if r != ruleset]

    def stale(self, ruleset: str, limit: int) -> list[Job]:
        newest = [
            [(sc, m) for m, sc in _scored(self.r.zrevrange(key, 0, limit - 1, withscores=True))]
            for key in self._stale_sets(ruleset)
        ]
        ids = [i for _, i in heapq.merge(*newest, reverse=True)][:limit]
        return [j for j in (_load(t) for t in self.r.mget([f"{P}job:{i}" for i in ids])) if j] if ids else []

    def count_stale(self, ruleset: str) -> int:
        return sum(int(self.r.zcard(key)) for key in self._stale_sets(ruleset))

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
            pipe.zrem(_current(job.ruleset), job.id)  # no longer the newest of its digest
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
