"""The HTTP face of the service (Starlette, ASGI): webhooks in, jobs out, reports served.

Every webhook is authenticated before its body is parsed, bounded in size, validated, and only
then stored as a job; the response returns as soon as the job is durable.  Scanning happens in
workers.  Only registries on the configured allow-list become jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import __version__
from ..report import OutputFormat
from ..sources.reference import has_registry_host
from . import events, harbor
from .config import ServiceConfig
from .store import STATUSES, Cursor, CursorError, Job, Store

log = logging.getLogger("leakscan.service")
_MEDIA = {
    OutputFormat.JSON: "application/json",
    OutputFormat.SARIF: "application/sarif+json",
    OutputFormat.GITLAB: "application/json",
    OutputFormat.JUNIT: "application/xml",
    OutputFormat.TABLE: "text/plain; charset=utf-8",
}


class _JobGauge(Collector):
    def __init__(self, store: Store, ruleset: str) -> None:
        self.store, self.ruleset = store, ruleset

    def collect(self) -> Any:
        gauge = GaugeMetricFamily("leakscan_jobs", "Scan jobs in the store, by status", labels=["status"])
        for status, n in self.store.counts().items():
            gauge.add_metric([status], n)
        yield gauge
        yield GaugeMetricFamily(
            "leakscan_reports_stale",
            "Newest reports of images made under another rule set or leakscan version (to be rescanned)",
            value=self.store.count_stale(self.ruleset),
        )


class HttpError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def create_app(
    config: ServiceConfig,
    store: Store,
    enqueue: Callable[[Job], None] = lambda job: None,
    ready: Callable[[], bool] = lambda: True,
    ruleset: str | None = None,
) -> Starlette:
    """``ruleset``: the fingerprint of the reports this service makes (config.fingerprint())."""
    ruleset = ruleset or config.fingerprint()
    disable_created_metrics()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    registry.register(_JobGauge(store, ruleset))
    hooks = Counter("leakscan_webhooks", "Webhook requests by kind and outcome", ["kind", "outcome"], registry=registry)
    queued = Counter("leakscan_jobs_submitted", "Jobs created from notifications", ["kind"], registry=registry)

    def authorized(request: Request, body: bytes, path_token: str | None = None) -> bool:
        presented = path_token
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            presented = value.strip()
        if presented is not None and any(hmac.compare_digest(presented.encode(), t.encode()) for t in config.tokens):
            return True
        signature = request.headers.get("x-leakscan-signature") or request.headers.get("x-hub-signature-256")
        if config.hmac_secret and signature and signature.startswith("sha256="):
            expected = hmac.new(config.hmac_secret, body, hashlib.sha256).hexdigest()
            return hmac.compare_digest(signature[7:].strip().lower(), expected)
        return False

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > config.max_body):
            raise HttpError(413, f"body over {config.max_body} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_body:
                raise HttpError(413, f"body over {config.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def submit(found: list[events.PushEvent], kind: str, auth: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in found:
            if config.allowed(event.registry) is None:
                log.warning("%s: refused %s (registry not on the allow-list)", kind, event.registry)
                out.append({"image": event.ref, "refused": "registry not on the allow-list"})
                continue
            job, created = store.submit(event, kind, auth)
            if created:
                queued.labels(kind).inc()
                enqueue(job)
            out.append({"image": event.ref, "job": job.id, "status": job.status, "duplicate": not created})
        return out

    def webhook(kind: str, parse: Callable[[Any, int], list[events.PushEvent]]) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            try:
                body = await read_body(request)
                if not authorized(request, body, request.path_params.get("token")):
                    raise HttpError(401, "unauthorized")
                try:
                    found = parse(events.parse_json(body), config.max_events)
                except events.PayloadError as exc:
                    raise HttpError(400, str(exc)) from None
                results = submit(found, kind)
            except HttpError as exc:
                hooks.labels(kind, str(exc.status)).inc()
                return JSONResponse({"error": exc.message}, exc.status)
            if results and all("refused" in r for r in results):
                hooks.labels(kind, "403").inc()
                return JSONResponse({"error": "no registry in this payload is on the allow-list"}, 403)
            hooks.labels(kind, "202").inc()
            return JSONResponse({"jobs": results}, 202)

        return handler

    def api(fn: Callable[[Request], Response]) -> Callable[[Request], Any]:
        async def handler(request: Request) -> Response:
            if not authorized(request, b"\0"):  # API reads take the bearer token only
                return JSONResponse({"error": "unauthorized"}, 401)
            return fn(request)

        return handler

    def job_or_404(request: Request) -> Job:
        key = request.path_params["key"]
        job = store.by_digest(key) if key.startswith("sha256:") else store.get(key)
        if job is None:
            raise HttpError(404, "no such job or digest")
        return job

    def with_errors(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def wrapped(request: Request) -> Response:
            try:
                return fn(request)
            except HttpError as exc:
                return JSONResponse({"error": exc.message}, exc.status)

        return wrapped

    @with_errors
    def list_jobs(request: Request) -> Response:
        """Newest first, a page at a time: ``next`` is the opaque ``?cursor=`` of the next page."""
        query = request.query_params
        limit_text, status, text = query.get("limit") or "50", query.get("status") or None, query.get("cursor")
        if not limit_text.isdigit():
            raise HttpError(400, "limit must be a number (at most 1000)")
        if status is not None and status not in STATUSES:
            raise HttpError(400, f"status must be one of {', '.join(STATUSES)}")
        try:
            cursor = Cursor.decode(text) if text else None
        except CursorError:
            raise HttpError(400, "malformed cursor (pass back the `next` of a previous page)") from None
        page = store.page(min(max(int(limit_text), 1), 1000), cursor, status, query.get("repository") or None)
        return JSONResponse({"jobs": [j.public() for j in page.jobs], "next": page.next and page.next.encode()})

    def rescans(request: Request) -> Response:
        return JSONResponse({"ruleset": ruleset, "version": __version__, "stale": store.count_stale(ruleset)})

    @with_errors
    def get_job(request: Request) -> Response:
        return JSONResponse(job_or_404(request).public())

    @with_errors
    def get_report(request: Request) -> Response:
        job = job_or_404(request)
        try:
            fmt = OutputFormat(request.query_params.get("format", "json"))
        except ValueError:
            raise HttpError(400, f"format must be one of {', '.join(f.value for f in OutputFormat)}") from None
        if job.status != "done":
            return JSONResponse({"status": job.status, "error": job.error}, 202 if job.status != "failed" else 500)
        body = store.report(job.id, fmt.value)
        if body is None:
            raise HttpError(404, "no report stored")
        return Response(body, media_type=_MEDIA[fmt])

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        ok = store.ping() and ready()
        return JSONResponse({"ready": ok}, 200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")

    async def submit_api(request: Request) -> Response:
        try:
            body = await read_body(request)
            if not authorized(request, body):
                raise HttpError(401, "unauthorized")
            doc = events.parse_json(body)
            image = doc.get("image") if isinstance(doc, dict) else None
            if not isinstance(image, str) or not has_registry_host(image):
                raise HttpError(400, "expected {'image': 'registry/repository[:tag|@digest]'}")
            results = submit([events.event_from_ref(image)], "api")
        except events.PayloadError as exc:
            return JSONResponse({"error": str(exc)}, 400)
        except HttpError as exc:
            return JSONResponse({"error": exc.message}, exc.status)
        if all("refused" in r for r in results):
            return JSONResponse({"error": "registry not on the allow-list"}, 403)
        return JSONResponse({"jobs": results}, 202)

    def harbor_error(status: int, message: str) -> Response:
        return JSONResponse({"error": {"message": message}}, status, media_type=harbor.ERROR_TYPE)

    async def harbor_metadata(request: Request) -> Response:
        if not authorized(request, b"\0"):
            return harbor_error(401, "unauthorized")
        return JSONResponse(harbor.metadata(), media_type=harbor.METADATA_TYPE)

    async def harbor_scan(request: Request) -> Response:
        try:
            body = await read_body(request)
        except HttpError as exc:
            return harbor_error(exc.status, exc.message)
        if not authorized(request, body):
            return harbor_error(401, "unauthorized")
        try:
            event, auth, _ = harbor.parse_scan_request(events.parse_json(body))
        except harbor.Unsupported as exc:
            return harbor_error(501, str(exc))
        except events.PayloadError as exc:
            return harbor_error(422 if body.strip().startswith(b"{") else 400, str(exc))
        results = submit([event], "harbor-adapter", auth)
        if "refused" in results[0]:
            return harbor_error(422, f"registry {event.registry} is not on the allow-list")
        return JSONResponse({"id": results[0]["job"]}, 202, media_type=harbor.SCAN_RESPONSE_TYPE)

    async def harbor_report(request: Request) -> Response:
        if not authorized(request, b"\0"):
            return harbor_error(401, "unauthorized")
        job = store.get(request.path_params["id"])
        if job is None:
            return harbor_error(404, "unknown scan request")
        accept = request.headers.get("accept", harbor.REPORT_TYPES[0])
        raw = harbor.RAW_TYPE in accept
        if not raw and not any(t.split(";")[0] in accept for t in harbor.REPORT_TYPES) and "*/*" not in accept:
            return harbor_error(415, f"unsupported report type {accept[:100]}")
        if job.status in ("queued", "running"):
            return Response(status_code=302, headers={"Location": str(request.url), "Refresh-After": "5"})
        if job.status == "failed":
            return harbor_error(500, job.error or "scan failed")
        stored = store.report(job.id, OutputFormat.JSON.value) or "{}"
        if raw:
            return Response(stored, media_type=harbor.RAW_TYPE)
        artifact = {"repository": job.repository, "digest": job.digest, "tag": job.tag, "mime_type": None}
        doc = harbor.vulnerability_report(json.loads(stored), artifact, job.updated)
        return JSONResponse(doc, media_type=harbor.REPORT_TYPES[0])

    routes = [
        Route("/hooks/distribution", webhook("distribution", events.distribution), methods=["POST"]),
        Route("/hooks/harbor", webhook("harbor", events.harbor), methods=["POST"]),
        Route("/hooks/dockerhub", webhook("dockerhub", events.dockerhub), methods=["POST"]),
        Route("/hooks/dockerhub/{token}", webhook("dockerhub", events.dockerhub), methods=["POST"]),
        Route("/api/v1/jobs", api(list_jobs), methods=["GET"]),
        Route("/api/v1/jobs", submit_api, methods=["POST"]),
        Route("/api/v1/rescans", api(rescans), methods=["GET"]),
        Route("/api/v1/jobs/{key}", api(get_job), methods=["GET"]),
        Route("/api/v1/jobs/{key}/report", api(get_report), methods=["GET"]),
        Route("/api/v1/metadata", harbor_metadata, methods=["GET"]),
        Route("/api/v1/scan", harbor_scan, methods=["POST"]),
        Route("/api/v1/scan/{id}/report", harbor_report, methods=["GET"]),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
    ]
    return Starlette(routes=routes)
