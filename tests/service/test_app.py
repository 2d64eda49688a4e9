"""The HTTP service in-process (Starlette's test client): sender authentication, payload limits,
the allow-list, idempotency, the REST API and the Harbor adapter.  Scanning is tested in
test_jobs and test_e2e; here a job's result is what the real scan of the committed sample gives."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from scanner.engine import ScanOptions, scan_image
from scanner.report import OutputFormat, renderer_for
from scanner.service.app import create_app
from scanner.service.config import RegistryEntry, ServiceConfig
from scanner.service.jobs import summarize
from scanner.service.sqlite_store import SqliteStore
from scanner.service.store import Job, JobResult
from scanner.sources import open_source
from tests.conftest import ARCHIVES, SAMPLE_SECRET

TOKEN = "hook-token-" + "x" * 20
HMAC_KEY = b"hmac-key-for-tests"
REG = "127.0.0.1:5000"
D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def envelope(digest: str = D1, host: str = REG, n: int = 1) -> dict[str, Any]:
    event = {
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "repository": "demo/app",
            "tag": "v1",
        },
        "request": {"host": host},
    }
    return {"events": [event] * n}


class Harness:
    def __init__(self, tmp: Path, ready: bool = True) -> None:
        self.config = ServiceConfig(
            data_dir=tmp,
            tokens=(TOKEN,),
            hmac_secret=HMAC_KEY,
            registries={REG: RegistryEntry(REG, insecure=True)},
            max_body=64 * 1024,
        )
        self.store = SqliteStore(self.config.db_path)
        self.enqueued: list[str] = []
        app = create_app(self.config, self.store, lambda job: self.enqueued.append(job.id), ready=lambda: ready)
        self.client = TestClient(app)

    def hook(self, doc: Any, kind: str = "distribution", headers: dict[str, str] | None = None) -> Any:
        return self.client.post(f"/hooks/{kind}", content=json.dumps(doc), headers=AUTH if headers is None else headers)

    def finish(self, job: Job, result: JobResult) -> None:
        self.store.start(job.id, "w", 30)
        self.store.finish(job.id, result)


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture(scope="module")
def sample_result() -> JobResult:
    report = scan_image(open_source(str(ARCHIVES / "sample-docker-legacy.tar.gz")), ScanOptions())
    reports = {fmt.value: renderer_for(fmt).render(report) for fmt in OutputFormat}
    return JobResult(len(report.findings), report.complete, summarize(report), reports)


def test_a_push_becomes_one_queued_job(h: Harness) -> None:
    resp = h.hook(envelope())
    assert resp.status_code == 202
    [entry] = resp.json()["jobs"]
    assert entry["duplicate"] is False and entry["status"] == "queued"
    assert h.enqueued == [entry["job"]]
    again = h.hook(envelope())
    assert again.status_code == 202 and again.json()["jobs"][0] == {**entry, "duplicate": True}
    assert h.enqueued == [entry["job"]]  # a duplicate notification queues nothing
    assert h.store.counts()["queued"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"X-Leakscan-Signature": "sha256=" + "0" * 64},
        {"X-Hub-Signature-256": "sha1=abc"},
    ],
)
def test_unauthenticated_senders_get_401_and_no_work_is_done(h: Harness, headers: dict[str, str]) -> None:
    for kind in ("distribution", "harbor", "dockerhub", "dockerhub/wrong-token"):
        resp = h.hook(envelope(), kind, headers)
        assert resp.status_code == 401, kind
    assert h.store.recent() == [] and h.enqueued == []
    assert h.client.get("/api/v1/jobs", headers=headers).status_code == 401


def test_hmac_signed_body_and_docker_hub_path_token(h: Harness) -> None:
    body = json.dumps(envelope()).encode()
    sig = "sha256=" + hmac.new(HMAC_KEY, body, hashlib.sha256).hexdigest()
    assert h.client.post("/hooks/distribution", content=body, headers={"X-Leakscan-Signature": sig}).status_code == 202
    # the signature covers the body: a changed body is refused
    tampered = json.dumps(envelope(D2)).encode()
    assert (
        h.client.post("/hooks/distribution", content=tampered, headers={"X-Hub-Signature-256": sig}).status_code == 401
    )
    hub = {"push_data": {"tag": "1.0"}, "repository": {"repo_name": "team/app"}}
    assert (
        h.client.post(f"/hooks/dockerhub/{TOKEN}", content=json.dumps(hub)).status_code == 403
    )  # docker.io not allowed


def test_registries_off_the_allow_list_are_never_queued(h: Harness) -> None:
    for host in ("169.254.169.254", "evil.example.com", "127.0.0.1:5001", "localhost:5000"):
        resp = h.hook(envelope(host=host))
        assert resp.status_code == 403, host
    mixed = {"events": envelope()["events"] + envelope(D2, host="metadata.internal")["events"]}
    resp = h.hook(mixed)
    assert resp.status_code == 202
    assert [("refused" in j) for j in resp.json()["jobs"]] == [False, True]
    assert [j.registry for j in h.store.recent()] == [REG]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (b"not json", 400),
        (b'{"events": [{"action": "push", "target": {"mediaType": "x"}}]}', 202),  # not a manifest: ignored
        (b'{"events": [{"action": "push"}]}', 400),
        (json.dumps(envelope(digest="sha256:zz")).encode(), 400),
        (json.dumps(envelope(n=101)).encode(), 400),
        (b"[" * 50 + b"]" * 50, 400),
        (b"[" * 200_000, 413),
        (json.dumps({"events": [], "pad": "x" * 70_000}).encode(), 413),
    ],
)
def test_malformed_and_oversized_payloads_get_4xx(h: Harness, body: bytes, status: int) -> None:
    resp = h.client.post("/hooks/distribution", content=body, headers=AUTH)
    assert resp.status_code == status
    assert h.store.recent() == []


def test_oversized_chunked_body_without_a_length_is_cut_off(h: Harness) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b" " * 4096

    resp = h.client.post("/hooks/distribution", content=chunks(), headers=AUTH)
    assert resp.status_code == 413


def test_reports_in_every_format_and_no_secret(h: Harness, sample_result: JobResult) -> None:
    job_id = h.hook(envelope()).json()["jobs"][0]["job"]
    assert h.client.get(f"/api/v1/jobs/{job_id}/report", headers=AUTH).status_code == 202  # not scanned yet
    job = h.store.get(job_id)
    assert job is not None
    h.finish(job, sample_result)
    for key in (job_id, D1):
        doc = h.client.get(f"/api/v1/jobs/{key}", headers=AUTH).json()
        assert doc["status"] == "done" and doc["findings"] == sample_result.findings > 0
    for fmt in OutputFormat:
        resp = h.client.get(f"/api/v1/jobs/{D1}/report", params={"format": fmt.value}, headers=AUTH)
        assert resp.status_code == 200, fmt
        assert resp.text == sample_result.reports[fmt.value]
        assert SAMPLE_SECRET not in resp.text
    assert h.client.get(f"/api/v1/jobs/{D1}/report?format=pdf", headers=AUTH).status_code == 400
    assert h.client.get(f"/api/v1/jobs/{D2}", headers=AUTH).status_code == 404
    listing = h.client.get("/api/v1/jobs", params={"status": "done"}, headers=AUTH).json()["jobs"]
    assert [j["id"] for j in listing] == [job_id] and "auth" not in listing[0]


def test_a_failed_job_reports_its_reason(h: Harness) -> None:
    job_id = h.hook(envelope()).json()["jobs"][0]["job"]
    h.store.start(job_id, "w", 30)
    h.store.fail(job_id, "registry 127.0.0.1:5000: demo/app: manifest not found")
    resp = h.client.get(f"/api/v1/jobs/{job_id}/report", headers=AUTH)
    assert resp.status_code == 500 and "not found" in resp.json()["error"]


def test_manual_submission(h: Harness) -> None:
    resp = h.client.post("/api/v1/jobs", json={"image": f"{REG}/demo/app@{D1}"}, headers=AUTH)
    assert resp.status_code == 202
    assert h.client.post("/api/v1/jobs", json={"image": "evil.com/x:1"}, headers=AUTH).status_code == 403
    assert h.client.post("/api/v1/jobs", json={"image": "no-registry"}, headers=AUTH).status_code == 400
    assert h.client.post("/api/v1/jobs", json={"image": f"{REG}/demo/app@{D1}"}).status_code == 401


def test_harbor_adapter(h: Harness, sample_result: JobResult) -> None:
    assert h.client.get("/api/v1/metadata").status_code == 401
    meta = h.client.get("/api/v1/metadata", headers=AUTH)
    assert meta.status_code == 200 and meta.headers["content-type"].startswith(
        "application/vnd.scanner.adapter.metadata"
    )
    assert meta.json()["capabilities"][0]["type"] == "vulnerability"
    request = {
        "registry": {"url": f"http://{REG}", "authorization": "Basic cm9ib3Q6cm9ib3Qtc2VjcmV0"},
        "artifact": {"repository": "demo/app", "digest": D1, "tag": "v1"},
    }
    resp = h.client.post("/api/v1/scan", json=request, headers=AUTH)
    assert resp.status_code == 202
    scan_id = resp.json()["id"]
    job = h.store.get(scan_id)
    assert job is not None and job.auth == request["registry"]["authorization"] and job.source == "harbor-adapter"
    report_url = f"/api/v1/scan/{scan_id}/report"
    pending = h.client.get(report_url, headers=AUTH, follow_redirects=False)
    assert pending.status_code == 302 and pending.headers["location"].endswith(report_url)
    h.finish(job, sample_result)
    assert h.store.get(scan_id).auth is None  # type: ignore[union-attr]
    done = h.client.get(
        report_url, headers={**AUTH, "Accept": "application/vnd.security.vulnerability.report; version=1.1"}
    )
    assert done.status_code == 200
    doc = done.json()
    assert len(doc["vulnerabilities"]) == sample_result.findings
    assert {v["severity"] for v in doc["vulnerabilities"]} <= {"Low", "Medium", "High", "Critical"}
    assert doc["artifact"]["digest"] == D1 and doc["severity"] in ("High", "Critical")
    assert all(v["package"] and v["version"] for v in doc["vulnerabilities"])
    assert SAMPLE_SECRET not in done.text
    raw = h.client.get(report_url, headers={**AUTH, "Accept": "application/vnd.scanner.adapter.vuln.report.raw"})
    assert raw.status_code == 200 and raw.text == sample_result.reports["json"]
    assert h.client.get(report_url, headers={**AUTH, "Accept": "text/csv"}).status_code == 415
    assert h.client.get("/api/v1/scan/nope/report", headers=AUTH).status_code == 404
    elsewhere = {**request, "registry": {"url": "https://harbor.evil.example"}}
    assert h.client.post("/api/v1/scan", json=elsewhere, headers=AUTH).status_code == 422
    assert h.client.post("/api/v1/scan", content=b"nope", headers=AUTH).status_code == 400
    # Harbor's pull token: accepted as it is; a scheme the registry client cannot use is refused up front
    bearer = {**request, "registry": {"url": f"http://{REG}", "authorization": "Bearer eyJ0.eyJz.c2ln"}}
    resp = h.client.post(
        "/api/v1/scan", json={**bearer, "artifact": {"repository": "demo/app", "digest": D2}}, headers=AUTH
    )
    assert resp.status_code == 202 and h.store.get(resp.json()["id"]).auth == "Bearer eyJ0.eyJz.c2ln"  # type: ignore[union-attr]
    digest = {**request, "registry": {"url": f"http://{REG}", "authorization": "Digest x"}}
    assert h.client.post("/api/v1/scan", json=digest, headers=AUTH).status_code == 422
    assert h.client.post("/api/v1/scan", json={"registry": {}}, headers=AUTH).status_code == 422
    sbom_only = {**request, "enabled_capabilities": [{"type": "sbom"}]}
    assert h.client.post("/api/v1/scan", json=sbom_only, headers=AUTH).status_code == 501


def test_probes_and_metrics(h: Harness, tmp_path: Path) -> None:
    assert h.client.get("/healthz").json() == {"status": "ok"}
    assert h.client.get("/readyz").status_code == 200
    h.hook(envelope())
    h.hook({"x": 1})
    text = h.client.get("/metrics").text
    assert 'leakscan_jobs{status="queued"} 1.0' in text
    assert 'leakscan_webhooks_total{kind="distribution",outcome="202"} 1.0' in text
    assert 'leakscan_webhooks_total{kind="distribution",outcome="400"} 1.0' in text
    assert Harness(tmp_path / "down", ready=False).client.get("/readyz").status_code == 503


def test_the_job_list_is_paged_by_an_opaque_cursor(h: Harness) -> None:
    from scanner.service.events import PushEvent

    ids = [h.store.submit(PushEvent(REG, f"team/r{n % 2}", f"sha256:{n:064x}", None), "api")[0].id for n in range(7)]
    seen, cursor, pages = [], "", 0
    while True:
        resp = h.client.get(f"/api/v1/jobs?limit=3&cursor={cursor}", headers=AUTH)
        assert resp.status_code == 200
        doc = resp.json()
        seen += [j["id"] for j in doc["jobs"]]
        pages += 1
        if doc["next"] is None:
            break
        cursor = doc["next"]
        h.store.submit(PushEvent(REG, "team/r0", f"sha256:{100 + pages:064x}", None), "api")  # a push meanwhile
    assert seen == ids[::-1] and pages == 3
    resp = h.client.get("/api/v1/jobs?repository=team/r1&status=queued", headers=AUTH)
    assert [j["repository"] for j in resp.json()["jobs"]] == ["team/r1"] * 3 and resp.json()["next"] is None
    for query, message in (("cursor=bogus", "malformed cursor"), ("status=lost", "status must"), ("limit=x", "limit")):
        resp = h.client.get(f"/api/v1/jobs?{query}", headers=AUTH)
        assert resp.status_code == 400 and message in resp.json()["error"], query
