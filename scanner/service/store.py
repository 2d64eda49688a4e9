"""Durable jobs and reports.  The seam: :class:`Store`; SQLite in sqlite_store (embedded), Redis in
redis_store, both held to one contract (tests/service/test_store.py).

A job is one image to scan.  Jobs are idempotent by manifest digest: a push notification for a
digest that is queued, running or done adds nothing.  ``attempts`` counts executions whatever ended
them (an error, a retry, a worker that died), so a job that keeps killing its worker ends failed.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from .events import PushEvent

ACTIVE = ("queued", "running", "done")
STATUSES = ("queued", "running", "done", "failed")
ENDED = ("done", "failed")  # the only jobs retention may delete


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


class CursorError(ValueError):
    """A ``?cursor=`` that this service did not hand out."""


@dataclass(frozen=True)
class Cursor:
    """Where a page of jobs ended: the last job's (created, id).  Jobs are listed newest first by
    (created, id), a key no job ever changes, so a walk sees each job that existed when it began
    exactly once, whatever is inserted (or deleted) meanwhile; a job inserted during the walk may
    appear on its first page or not at all, never twice."""

    created: float
    id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(json.dumps([self.created, self.id]).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            created, job_id = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        except (binascii.Error, ValueError, TypeError) as exc:
            raise CursorError("malformed cursor") from exc
        if not isinstance(created, int | float) or not isinstance(job_id, str) or len(job_id) > 64:
            raise CursorError("malformed cursor")
        return cls(float(created), job_id)

    def after(self, job: Job) -> bool:
        """Whether ``job`` comes after this cursor, newest first."""
        return (job.created, job.id) < (self.created, self.id)


@dataclass(frozen=True)
class Page:
    jobs: list[Job]
    next: Cursor | None  # None: the last page


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
    def page(
        self, limit: int, cursor: Cursor | None = None, status: str | None = None, repository: str | None = None
    ) -> Page:
        """Jobs newest first by (created, id), after ``cursor``, filtered by status and repository
        (both indexed)."""

    def recent(self, limit: int = 50, status: str | None = None) -> list[Job]:
        return self.page(limit, None, status).jobs

    def walk(self, status: str | None = None, repository: str | None = None, batch: int = 200) -> Iterator[Job]:
        """Every job, newest first, page by page."""
        cursor: Cursor | None = None
        while True:
            page = self.page(batch, cursor, status, repository)
            yield from page.jobs
            if page.next is None:
                return
            cursor = page.next

    @abstractmethod
    def repositories(self) -> list[str]:
        """The repositories that have jobs."""

    @abstractmethod
    def delete(self, job_ids: Iterable[str]) -> int:
        """Delete these jobs and their reports, each only if it has ended (done or failed); how many
        were deleted."""

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
