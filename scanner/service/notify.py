"""Outbound alert: a generic JSON webhook when a scan finds something.

The URL comes from configuration only.  The body names the image, the counts and the rules, and
links to the stored report; it carries no finding previews, let alone secrets.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

from .config import ServiceConfig
from .store import Job

log = logging.getLogger("leakscan.service")
ATTEMPTS = 3


def payload(config: ServiceConfig, job: Job, new: list[str] | None = None) -> dict[str, object]:
    """``new``: a rescan's findings that its previous report did not have (their fingerprints)."""
    link = f"{config.public_url.rstrip('/')}/api/v1/jobs/{job.id}" if config.public_url else None
    extra: dict[str, object] = {} if new is None else {"new_findings": len(new), "new_fingerprints": new}
    return {
        "event": "leakscan.findings" if new is None else "leakscan.rescan.new_findings",
        "job": job.id,
        "image": job.ref,
        "registry": job.registry,
        "repository": job.repository,
        "digest": job.digest,
        "tag": job.tag,
        "findings": job.findings,
        "complete": job.complete,
        "by_severity": job.summary.get("by_severity", {}),
        "rules": job.summary.get("rules", []),
        "report": link,
        **extra,
    }


def send(config: ServiceConfig, job: Job, new: list[str] | None = None, attempts: int = ATTEMPTS) -> bool:
    if not config.notify_url:
        return False
    body = json.dumps(payload(config, job, new)).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "leakscan"}
    if config.notify_token:
        headers["Authorization"] = f"Bearer {config.notify_token}"
    for attempt in range(attempts):
        request = urllib.request.Request(config.notify_url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:  # a configured URL, never a payload's
                if 200 <= resp.status < 300:
                    return True
        except (urllib.error.URLError, OSError) as exc:
            log.warning("notify %s: attempt %d failed (%s)", job.id, attempt + 1, type(exc).__name__)
        time.sleep(0.5 * 2**attempt)
    return False
