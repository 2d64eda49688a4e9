"""The embedded store: jobs and reports in one SQLite file (the contract is :class:`store.Store`).

A job is one image to scan.  Jobs are idempotent by manifest digest: a push notification for a
digest that is queued, running or done adds nothing.  ``attempts`` counts executions whatever ended
them (an error, a retry, a worker that died), so a job that keeps killing its worker ends failed.
The API lists by (created, id), filtered by status or repository: each has an index.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .events import PushEvent
from .store import ACTIVE, ENDED, STATUSES, Cursor, Job, JobResult, Page, Store, new_job, rescan_of

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
            for name, key in (("created", ""), ("status_created", "status, "), ("repo_created", "repository, ")):
                self._db.execute(f"CREATE INDEX IF NOT EXISTS jobs_{name} ON jobs({key}created, id)")
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

    def page(
        self, limit: int, cursor: Cursor | None = None, status: str | None = None, repository: str | None = None
    ) -> Page:
        where: list[str] = []
        args: list[str | float] = []
        for column, value in (("status", status), ("repository", repository)):
            if value is not None:
                where.append(f"{column}=?")
                args.append(value)
        if cursor is not None:
            where.append("(created<? OR (created=? AND id<?))")
            args += [cursor.created, cursor.created, cursor.id]
        sql = "SELECT * FROM jobs" + (" WHERE " + " AND ".join(where) if where else "")
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY created DESC, id DESC LIMIT ?", (*args, limit + 1)).fetchall()
        jobs = [_job(r) for r in rows[:limit]]
        return Page(jobs, Cursor(jobs[-1].created, jobs[-1].id) if len(rows) > limit else None)

    def repositories(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT DISTINCT repository FROM jobs ORDER BY repository")]

    def delete(self, job_ids: Iterable[str]) -> int:
        ids = list(job_ids)
        ended = ", ".join(f"'{s}'" for s in ENDED)

        def tx(db: sqlite3.Connection) -> int:
            deleted = 0
            for job_id in ids:
                if db.execute(f"DELETE FROM jobs WHERE id=? AND status IN ({ended})", (job_id,)).rowcount:
                    db.execute("DELETE FROM reports WHERE job=?", (job_id,))
                    deleted += 1
            return deleted

        out: int = self._tx(tx)
        return out

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
