"""Retention: old jobs and their reports are deleted, by age and by count per repository.

The policy (``[retention]`` in the service's TOML) never deletes:
- a job that has not ended (queued or running), nor the report a queued rescan will replace;
- the newest report of each tag (registry, repository, tag): whatever its age, the last scan of
  ``app:1.4`` stays until a newer scan of ``app:1.4`` is done.
Beyond that, a job older than ``max_age_days`` goes, and so does every job of a repository past
its ``keep_per_repository`` newest.  A deleted image is scanned again when it is next pushed.

``leakscan serve`` prunes every ``interval_minutes`` (Pruner); a pass reads each repository's jobs
once through the repository index, newest first, and deletes in batches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .store import ENDED, Job, Store

log = logging.getLogger("leakscan.service")


@dataclass(frozen=True)
class RetentionPolicy:
    max_age_days: float = 0.0  # 0: no age limit
    keep_per_repository: int = 0  # 0: no count limit
    interval_minutes: float = 60.0

    @property
    def active(self) -> bool:
        return self.max_age_days > 0 or self.keep_per_repository > 0


def prunable(jobs: Iterable[Job], policy: RetentionPolicy, now: float) -> Iterator[str]:
    """The ids to delete among one repository's jobs, given newest first."""
    oldest = now - policy.max_age_days * 86400 if policy.max_age_days > 0 else None
    tags: set[tuple[str, str]] = set()
    replaced: set[str] = set()  # reports a waiting rescan will replace (its alert compares with them)
    for rank, job in enumerate(jobs, 1):
        if job.status not in ENDED:
            if job.previous:
                replaced.add(job.previous)
            continue
        if job.status == "done" and job.tag is not None and (job.registry, job.tag) not in tags:
            tags.add((job.registry, job.tag))  # the newest report of this tag
            continue
        if job.id in replaced:
            continue
        too_old = oldest is not None and job.created < oldest
        if too_old or 0 < policy.keep_per_repository < rank:
            yield job.id


def prune(store: Store, policy: RetentionPolicy, now: float | None = None, batch: int = 200) -> int:
    """One pass over every repository; how many jobs were deleted."""
    if not policy.active:
        return 0
    now = time.time() if now is None else now
    deleted = 0
    for repository in store.repositories():
        doomed: list[str] = []
        for job_id in prunable(store.walk(repository=repository), policy, now):
            doomed.append(job_id)
            if len(doomed) >= batch:
                deleted += store.delete(doomed)
                doomed = []
        deleted += store.delete(doomed)
    return deleted


class Pruner:
    """The periodic pass of ``leakscan serve``."""

    def __init__(self, policy: RetentionPolicy, store: Store) -> None:
        self.policy, self.store = policy, store
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leakscan-retention", daemon=True)

    def start(self) -> None:
        if self.policy.active:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        every = max(self.policy.interval_minutes * 60, 1.0)
        while True:
            try:
                deleted = prune(self.store, self.policy)
                if deleted:
                    log.info("retention: deleted %d jobs and their reports", deleted)
            except Exception as exc:  # the next pass tries again
                log.warning("retention pass failed (%s)", type(exc).__name__)
            if self._stop.wait(every):
                return
