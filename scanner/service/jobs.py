"""One job: pull from an allow-listed registry, the same ``scan_image`` as the CLI, store every format.

The retry policy lives here, for both queues: a registry that is down or overloaded is retried
with exponential backoff; any other error fails the job with its reason; ``attempts`` counts every
execution, so a job whose worker keeps dying ends failed instead of looping.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import __version__
from ..cache import CacheBackend
from ..engine import ScanOptions, ruleset_fingerprint, scan_image
from ..errors import LeakscanError, RegistryUnavailable
from ..findings.fingerprint import load_key
from ..models import ScanReport
from ..report import OutputFormat, renderer_for
from ..report.json import summary_dict
from ..sources.registry import RegistrySource
from . import notify
from .config import ServiceConfig
from .harbor import harbor_auth
from .store import Job, JobResult, Store

log = logging.getLogger("leakscan.service")
WAITING = ("queued", "running")


class _Waiting(Exception):
    """An index whose platform images are being scanned by jobs of their own: scanned after them."""


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def summarize(report: ScanReport) -> dict[str, object]:
    return {
        **summary_dict(report),
        "rules": sorted({f.rule_id for f in report.findings}),
        "fingerprints": sorted({f.fingerprint for f in report.findings}),  # hashes: what a rescan compares
        "platforms": [{"platform": i.platform, "manifest_digest": i.manifest_digest} for i in report.images],
    }


@dataclass
class Runner:
    """Runs started jobs.  ``requeue(job_id, delay)`` tells the queue about a retry (Dramatiq sends a
    delayed message; the embedded queue needs nothing: its workers poll the store)."""

    config: ServiceConfig
    store: Store
    cache: CacheBackend | None = None
    requeue: Callable[[str, float], None] = lambda job_id, delay: None
    options: ScanOptions = field(default_factory=ScanOptions)
    ruleset: str = ""

    def __post_init__(self) -> None:
        self.options = self.config.scan_options()
        self.ruleset = ruleset_fingerprint(self.options)

    def backoff(self, attempts: int) -> float:
        return float(min(self.config.retry_backoff * 2 ** max(attempts - 1, 0), self.config.retry_backoff_max))

    def execute(self, job: Job, worker: str) -> None:
        if job.attempts > self.config.max_attempts:
            last = job.error or "the worker stopped during the scan"
            self.store.fail(job.id, f"gave up after {self.config.max_attempts} attempts; last: {last}")
            return
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, worker, stop), daemon=True)
        beat.start()
        try:
            result = self._scan(job)
        except _Waiting:
            log.info("job %s: an index; waiting for its platform images' own jobs", job.id)
            self.store.defer(job.id, self.config.index_wait)
            self.requeue(job.id, self.config.index_wait)
            return
        except RegistryUnavailable as exc:
            if job.attempts >= self.config.max_attempts:
                self.store.fail(job.id, f"gave up after {job.attempts} attempts: {exc.message}")
            else:
                delay = self.backoff(job.attempts)
                log.info("job %s: %s; retry in %.1fs", job.id, exc.message, delay)
                self.store.retry(job.id, delay, exc.message)
                self.requeue(job.id, delay)
            return
        except LeakscanError as exc:
            self.store.fail(job.id, exc.message)
            return
        except Exception as exc:  # the worker must survive anything; the message never carries file content
            frames = "".join(traceback.format_tb(exc.__traceback__))
            log.error("job %s: internal error %s\n%s", job.id, type(exc).__name__, frames)
            self.store.fail(job.id, f"internal error ({type(exc).__name__})")
            return
        finally:
            stop.set()
        self.store.finish(job.id, result)
        if result.findings and self.config.notify_url:
            new = self._new_findings(job, result)
            if new is None or new:  # a rescan alerts only for what its previous report did not have
                notify.send(self.config, self.store.get(job.id) or job, new)

    def _new_findings(self, job: Job, result: JobResult) -> list[str] | None:
        """A rescan: the fingerprints of its findings that the report it replaces did not have."""
        previous = self.store.get(job.previous) if job.previous else None
        if previous is None:
            return None
        before = set(previous.summary.get("fingerprints", []))
        return [f for f in result.summary.get("fingerprints", []) if f not in before]

    def _heartbeat(self, job_id: str, worker: str, stop: threading.Event) -> None:
        while not stop.wait(self.config.lease / 3):
            try:
                self.store.heartbeat(job_id, worker, self.config.lease)
            except Exception as exc:  # a missed beat only risks a duplicate scan
                log.warning("job %s: heartbeat failed (%s)", job_id, type(exc).__name__)

    def _scan(self, job: Job) -> JobResult:
        if self.config.allowed(job.registry) is None:  # checked on arrival too; the store may be older
            raise LeakscanError(f"registry {job.registry} is not on the allow-list")
        auth = harbor_auth(job.auth)
        options = self.config.registry_options(job.registry, auth.credentials, auth.authorization)
        source = RegistrySource(job.ref, options)
        # One scan per platform image: an index waits for the jobs its images have of their own
        # (the registry notifies each manifest of a multi-platform push), then takes their layers
        # from the shared layer cache; an image without a job of its own is scanned here, once.
        for digest in source.children():
            child = self.store.by_digest(digest)
            if child is not None and child.id != job.id and child.status in WAITING:
                raise _Waiting
        report = scan_image(
            source,
            dataclasses.replace(
                self.options,
                cache_dir=self.config.cache_dir if self.cache is None else None,
                cache_backend=self.cache,
                cache_max_bytes=self.config.cache_max_size,
                timeout=self.config.scan_timeout,
                jobs=self.config.scan_jobs,
                fingerprint_key=load_key(self.config.data_dir).key,  # LEAKSCAN_FINGERPRINT_KEY first
            ),
        )
        if job.digest is None and len(report.images) == 1 and report.images[0].manifest_digest:
            self.store.set_digest(job.id, report.images[0].manifest_digest)
        reports = {fmt.value: renderer_for(fmt).render(report) for fmt in OutputFormat}
        return JobResult(len(report.findings), report.complete, summarize(report), reports, self.ruleset, __version__)
