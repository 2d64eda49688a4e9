"""Durable jobs and reports.  The seam: :class:`Store`; SQLite here (embedded), Redis in redis_store.

A job is one image to scan.  Jobs are idempotent by manifest digest: a push notification for a
digest that is queued, running or done adds nothing.  ``attempts`` counts executions whatever ended
them (an error, a retry, a worker that died), so a job that keeps killing its worker ends failed.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .events import PushEvent

ACTIVE = ("queued", "running", "done")
STATUSES = ("queued", "running", "done", "failed")


@dataclass(frozen=True)
class Job:
    id: str
    ref: str
    registry: str
    repository: str
    digest: str | None
    tag: str | None
    source: str  # distribution | harbor | dockerhub | harbor-adapter | api
    status: str = "queued"
    attempts: int = 0
    created: float = 0.0
    updated: float = 0.0
    not_before: float = 0.0
    lease_until: float = 0.0
    worker: str | None = None
    error: str | None = None
    findings: int | None = None
    complete: bool | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    auth: str | None = None  # Harbor adapter only: the request's robot credentials, erased when the job ends
    ruleset: str | None = None  # the rule-set fingerprint the report was made with (engine.ruleset_fingerprint)
    version: str | None = None  # ... and leakscan's version
    previous: str | None = None  # a rescan: the job whose report it replaces

    def public(self) -> dict[str, Any]:
        doc = asdict(self)
        del doc["auth"], doc["lease_until"]
        return doc


@dataclass(frozen=True)
class JobResult:
    findings: int
    complete: bool
    summary: dict[str, Any]
    reports: dict[str, str]  # output format -> rendered report
    ruleset: str | None = None
    version: str | None = None


def rescan_of(job: Job) -> Job:
    """A new job for the image of a done one, to be scanned again under the current rules."""
    now = time.time()
    return dataclasses.replace(
        job, id=uuid.uuid4().hex, source="rescan", status="queued", attempts=0, created=now, updated=now,
        not_before=0.0, lease_until=0.0, worker=None, error=None, findings=None, complete=None, summary={},
        auth=None, ruleset=None, version=None, previous=job.id,
    )  # fmt: skip


def new_job(event: PushEvent, source: str, auth: str | None = None) -> Job:
    now = time.time()
    return Job(
        id=uuid.uuid4().hex,
        ref=event.ref,
        registry=event.registry,
        repository=event.repository,
        digest=event.digest,
        tag=event.tag,
        source=source,
        created=now,
        updated=now,
        auth=auth,
    )


class Store(ABC):
    @abstractmethod
    def submit(self, event: PushEvent, source: str, auth: str | None = None) -> tuple[Job, bool]:
        """The job for this image, and whether it is new (False: a duplicate notification)."""

    @abstractmethod
    def get(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def by_digest(self, digest: str) -> Job | None:
        """The newest job for a digest."""

    @abstractmethod
    def recent(self, limit: int = 50, status: str | None = None) -> list[Job]: ...

    @abstractmethod
    def start(self, job_id: str, worker: str, lease: float) -> Job | None:
        """Count an execution and mark the job running; None unless it is queued, or running under a
        lease that ran out (its worker died)."""

    def lease_left(self, job_id: str) -> float:
        """Seconds until a running job's lease runs out (0 if it is not running)."""
        job = self.get(job_id)
        return max(job.lease_until - time.time(), 0.0) if job is not None and job.status == "running" else 0.0

    @abstractmethod
    def heartbeat(self, job_id: str, worker: str, lease: float) -> None: ...

    @abstractmethod
    def set_digest(self, job_id: str, digest: str) -> None: ...

    @abstractmethod
    def finish(self, job_id: str, result: JobResult) -> None: ...

    @abstractmethod
    def retry(self, job_id: str, delay: float, reason: str) -> None: ...

    @abstractmethod
    def defer(self, job_id: str, delay: float) -> None:
        """Back to the queue for ``delay`` seconds, the execution not counted (an index job waiting
        for its platform images' own jobs)."""

    @abstractmethod
    def fail(self, job_id: str, reason: str) -> None: ...

    @abstractmethod
    def report(self, job_id: str, fmt: str) -> str | None: ...

    @abstractmethod
    def counts(self) -> dict[str, int]: ...

    @abstractmethod
    def stale(self, ruleset: str, limit: int) -> list[Job]:
        """Done jobs, newest first, that are the newest job of their image and whose report was made
        under another rule set: the reports a rule or version change left behind."""

    @abstractmethod
    def count_stale(self, ruleset: str) -> int: ...

    @abstractmethod
    def rescan(self, job: Job) -> Job | None:
        """Queue the image of a stale done job again; None if it has a newer job already."""

    @abstractmethod
    def ping(self) -> bool: ...


_COLUMNS = [f for f in Job.__dataclass_fields__]


def _row(job: Job) -> dict[str, Any]:
    doc = asdict(job)
    doc["summary"] = json.dumps(job.summary)
    doc["complete"] = None if job.complete is None else int(job.complete)
    return doc


def _job(row: sqlite3.Row | dict[str, Any]) -> Job:
    doc = dict(row)
    doc["summary"] = json.loads(doc["summary"] or "{}")
    doc["complete"] = None if doc["complete"] is None else bool(doc["complete"])
    return Job(**doc)


class SqliteStore(Store):
    """One file, WAL mode: the service and its worker processes each open their own connection."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # an acknowledged notification survives a power cut
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, ref TEXT, registry TEXT, repository TEXT,"
                " digest TEXT, tag TEXT, source TEXT, status TEXT, attempts INTEGER, created REAL, updated REAL,"
                " not_before REAL, lease_until REAL, worker TEXT, error TEXT, findings INTEGER, complete INTEGER,"
                " summary TEXT, auth TEXT)"
            )
            have = {r[1] for r in self._db.execute("PRAGMA table_info(jobs)")}
            for column in ("ruleset", "version", "previous"):  # added by issue 21: older stores gain them
                if column not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_digest ON jobs(digest, created)")
            self._db.execute("CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, not_before)")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS reports (job TEXT, format TEXT, body TEXT, PRIMARY KEY(job, format))"
            )

    def _tx(self, fn: Any) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._db)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return out

    def _one(self, sql: str, *args: Any) -> Job | None:
        with self._lock:
            row = self._db.execute(sql, args).fetchone()
        return _job(row) if row else None

    def submit(self, event: PushEvent, source: str, auth: str | None = None) -> tuple[Job, bool]:
        def tx(db: sqlite3.Connection) -> tuple[Job, bool]:
            if event.digest:
                row = db.execute(
                    "SELECT * FROM jobs WHERE digest=? ORDER BY created DESC LIMIT 1", (event.digest,)
                ).fetchone()
            else:  # a tag: only a job still waiting for the same tag is the same work
                row = db.execute(
                    "SELECT * FROM jobs WHERE ref=? AND status='queued' ORDER BY created DESC LIMIT 1", (event.ref,)
                ).fetchone()
            if row is not None and row["status"] in ACTIVE:
                if auth and row["status"] != "done" and not row["auth"]:
                    db.execute("UPDATE jobs SET auth=? WHERE id=?", (auth, row["id"]))
                return _job(row), False
            job = new_job(event, source, auth)
            doc = _row(job)
            db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                [doc[c] for c in _COLUMNS],
            )
            return job, True

        result: tuple[Job, bool] = self._tx(tx)
        return result

    def get(self, job_id: str) -> Job | None:
        return self._one("SELECT * FROM jobs WHERE id=?", job_id)

    def by_digest(self, digest: str) -> Job | None:
        return self._one("SELECT * FROM jobs WHERE digest=? ORDER BY created DESC LIMIT 1", digest)

    def recent(self, limit: int = 50, status: str | None = None) -> list[Job]:
        with self._lock:
            if status:
                rows = self._db.execute(
                    "SELECT * FROM jobs WHERE status=? ORDER BY created DESC LIMIT ?", (status, limit)
                ).fetchall()
            else:
                rows = self._db.execute("SELECT * FROM jobs ORDER BY created DESC LIMIT ?", (limit,)).fetchall()
        return [_job(r) for r in rows]

    def claim(self, worker: str, lease: float) -> Job | None:
        """The next runnable job: queued and due, or running under a lease that ran out (its worker died)."""
        now = time.time()

        def tx(db: sqlite3.Connection) -> Job | None:
            row = db.execute(
                "SELECT id FROM jobs WHERE (status='queued' AND not_before<=?) OR (status='running' AND lease_until<?)"
                " ORDER BY not_before, created LIMIT 1",
                (now, now),
            ).fetchone()
            return self._start(db, row["id"], worker, lease) if row else None

        job: Job | None = self._tx(tx)
        return job

    def _start(self, db: sqlite3.Connection, job_id: str, worker: str, lease: float) -> Job | None:
        now = time.time()
        cur = db.execute(
            "UPDATE jobs SET status='running', attempts=attempts+1, worker=?, lease_until=?, updated=?"
            " WHERE id=? AND (status='queued' OR (status='running' AND lease_until<?))",
            (worker, now + lease, now, job_id, now),
        )
        if cur.rowcount == 0:
            return None
        row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _job(row)

    def start(self, job_id: str, worker: str, lease: float) -> Job | None:
        job: Job | None = self._tx(lambda db: self._start(db, job_id, worker, lease))
        return job

    def _update(self, job_id: str, sql: str, *args: Any) -> None:
        self._tx(lambda db: db.execute(f"UPDATE jobs SET {sql}, updated=? WHERE id=?", (*args, time.time(), job_id)))

    def heartbeat(self, job_id: str, worker: str, lease: float) -> None:
        self._tx(
            lambda db: db.execute(
                "UPDATE jobs SET lease_until=? WHERE id=? AND worker=? AND status='running'",
                (time.time() + lease, job_id, worker),
            )
        )

    def set_digest(self, job_id: str, digest: str) -> None:
        self._update(job_id, "digest=?", digest)

    def finish(self, job_id: str, result: JobResult) -> None:
        def tx(db: sqlite3.Connection) -> None:
            db.executemany(
                "INSERT OR REPLACE INTO reports (job, format, body) VALUES (?, ?, ?)",
                [(job_id, fmt, body) for fmt, body in result.reports.items()],
            )
            db.execute(
                "UPDATE jobs SET status='done', findings=?, complete=?, summary=?, error=NULL, auth=NULL, updated=?,"
                " ruleset=?, version=? WHERE id=?",
                (
                    result.findings,
                    int(result.complete),
                    json.dumps(result.summary),
                    time.time(),
                    result.ruleset,
                    result.version,
                    job_id,
                ),
            )

        self._tx(tx)

    def retry(self, job_id: str, delay: float, reason: str) -> None:
        self._update(job_id, "status='queued', not_before=?, error=?, worker=NULL", time.time() + delay, reason)

    def defer(self, job_id: str, delay: float) -> None:
        self._update(
            job_id, "status='queued', not_before=?, attempts=MAX(attempts-1, 0), worker=NULL", time.time() + delay
        )

    def fail(self, job_id: str, reason: str) -> None:
        self._update(job_id, "status='failed', error=?, auth=NULL", reason)

    def report(self, job_id: str, fmt: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM reports WHERE job=? AND format=?", (job_id, fmt)).fetchone()
        return str(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) FROM jobs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {r[0]: r[1] for r in rows}

    _STALE = (
        " FROM jobs j WHERE status='done' AND digest IS NOT NULL AND (ruleset IS NULL OR ruleset != ?)"
        " AND created = (SELECT MAX(created) FROM jobs k WHERE k.digest = j.digest)"
    )

    def stale(self, ruleset: str, limit: int) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"SELECT *{self._STALE} ORDER BY created DESC LIMIT ?", (ruleset, limit)).fetchall()
        return [_job(r) for r in rows]

    def count_stale(self, ruleset: str) -> int:
        with self._lock:
            return int(self._db.execute(f"SELECT COUNT(*){self._STALE}", (ruleset,)).fetchone()[0])

    def rescan(self, job: Job) -> Job | None:
        def tx(db: sqlite3.Connection) -> Job | None:
            row = db.execute(
                "SELECT id FROM jobs WHERE digest=? ORDER BY created DESC LIMIT 1", (job.digest,)
            ).fetchone()
            if row is None or row["id"] != job.id:
                return None
            new = rescan_of(job)
            doc = _row(new)
            db.execute(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})",
                [doc[c] for c in _COLUMNS],
            )
            return new

        out: Job | None = self._tx(tx)
        return out

    def ping(self) -> bool:
        try:
            with self._lock:
                self._db.execute("SELECT 1").fetchone()
            return True
        except sqlite3.Error:
            return False
