"""Rescans on a rule change: reports made under another rule set or leakscan version are stale.

The service (``leakscan serve``) sweeps the store: while the queue holds no job, it queues the
newest stale image again, at most ``rescan_per_minute`` times a minute, so pushes keep priority
(a push waits at most for the one rescan a worker has in hand).  Layers come from the cache when
the rule set allows it (the cache namespace is the same fingerprint, so after a rule change they
are scanned again: that is the point).  A rescan that finds something its previous report did not
have raises the alert (jobs.Runner).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from .config import ServiceConfig
from .store import Job, Store

log = logging.getLogger("leakscan.service")


class Rescanner:
    def __init__(self, config: ServiceConfig, store: Store, enqueue: Callable[[Job], None], ruleset: str) -> None:
        self.config, self.store, self.enqueue, self.ruleset = config, store, enqueue, ruleset
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leakscan-rescan", daemon=True)

    def start(self) -> None:
        if self.config.rescan_per_minute > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def step(self) -> Job | None:
        """Queue the newest stale image if nothing is waiting; the rescan job, or None."""
        if self.store.counts().get("queued", 0):
            return None
        for job in self.store.stale(self.ruleset, 10):
            new = self.store.rescan(job)
            if new is not None:
                log.info("rescan of %s under the current rules: job %s", job.ref, new.id)
                self.enqueue(new)
                return new
        return None

    def _run(self) -> None:
        every = 60.0 / self.config.rescan_per_minute
        while not self._stop.wait(1.0):
            try:
                if self.step() is not None:
                    self._stop.wait(every)
            except Exception as exc:  # the sweep must outlive a store hiccup
                log.warning("rescan sweep failed (%s)", type(exc).__name__)
