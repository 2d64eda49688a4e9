"""One job: pull from an allow-listed registry, the same ``scan_image`` as the CLI, store every format.

The retry policy lives here, for both queues: a registry that is down or overloaded is retried
with exponential backoff; any other error fails the job with its reason; ``attempts`` counts every
execution, so a job whose worker keeps dying ends failed instead of looping.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from ..cache import CacheBackend
from ..detectors import KnownValue, SecretSpec, load_known_values
from ..engine import ScanOptions, scan_image
from ..errors import LeakscanError, RegistryUnavailable
from ..fingerprint import load_key
from ..models import ScanReport
from ..report import OutputFormat, renderer_for
from ..report.json import summary_dict
from ..sources.reference import Credentials
from ..sources.registry import RegistrySource
from . import notify
from .config import ServiceConfig
from .store import Job, JobResult, Store

log = logging.getLogger("leakscan.service")


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident() % 100000}"


def harbor_credentials(authorization: str | None) -> Credentials | None:
    """Harbor's ``registry.authorization``: ``Basic base64(robot:secret)``."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise LeakscanError("the scan request's registry authorization is not Basic; only Basic is supported")
    try:
        user, sep, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise LeakscanError("the scan request's registry authorization is not base64 of user:password") from None
    if not sep:
        raise LeakscanError("the scan request's registry authorization is not base64 of user:password")
    return Credentials(user, password)


def summarize(report: ScanReport) -> dict[str, object]:
    return {
        **summary_dict(report),
        "rules": sorted({f.rule_id for f in report.findings}),
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
    known: list[KnownValue] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.known = load_known_values([SecretSpec.parse(s) for s in self.config.secrets])

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
            notify.send(self.config, self.store.get(job.id) or job)

    def _heartbeat(self, job_id: str, worker: str, stop: threading.Event) -> None:
        while not stop.wait(self.config.lease / 3):
            try:
                self.store.heartbeat(job_id, worker, self.config.lease)
            except Exception as exc:  # a missed beat only risks a duplicate scan
                log.warning("job %s: heartbeat failed (%s)", job_id, type(exc).__name__)

    def _scan(self, job: Job) -> JobResult:
        if self.config.allowed(job.registry) is None:  # checked on arrival too; the store may be older
            raise LeakscanError(f"registry {job.registry} is not on the allow-list")
        options = self.config.registry_options(job.registry, harbor_credentials(job.auth))
        source = RegistrySource(job.ref, options)
        report = scan_image(
            source,
            ScanOptions(
                known=tuple(self.known),
                cache_dir=self.config.cache_dir if self.cache is None else None,
                cache_backend=self.cache,
                timeout=self.config.scan_timeout,
                jobs=self.config.scan_jobs,
                fingerprint_key=load_key(self.config.data_dir).key,  # LEAKSCAN_FINGERPRINT_KEY first
            ),
        )
        if job.digest is None and len(report.images) == 1 and report.images[0].manifest_digest:
            self.store.set_digest(job.id, report.images[0].manifest_digest)
        reports = {fmt.value: renderer_for(fmt).render(report) for fmt in OutputFormat}
        return JobResult(len(report.findings), report.complete, summarize(report), reports)
