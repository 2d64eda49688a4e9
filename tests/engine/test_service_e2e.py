"""The scanning service end to end with real parts: Debian's docker-registry sending push
notifications to ``leakscan serve``, images pushed by the real engine (docker push), reports
fetched over the API; the embedded default (SQLite + worker processes) and the scale-out
(redis-server + two ``leakscan worker`` processes), with a worker killed in the middle of a scan,
a job that fails, a duplicate notification and a restart of the service."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.support.expected import check_leaky_doc
from tests.support.images import LeakyImage, ensure_base_image
from tests.support.redis import redis_available, run_redis
from tests.support.registry import Registry, multiarch_layout, registry_available, run_registry
from tests.support.service import TOKEN, Proc, Service, free_port, start_service, wait_for, write_config
from tests.support.services import docker_cli, require, skopeo

pytestmark = pytest.mark.engine
BIG_TAG = "leakscan-test-big:1"
BIG_MB = 160


@dataclass
class Stack:
    registry: Registry
    service: Service
    workdir: Path


def secrets_for(leaky: LeakyImage) -> list[str]:
    return [*leaky.secret_flags, *(f"id={name}" for name in leaky.env)]


@pytest.fixture(scope="module")
def big_image(engine: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A layer slow enough to kill a worker in the middle of its scan, on the leaky image's base."""
    ctx = tmp_path_factory.mktemp("big")
    with (ctx / "blob.bin").open("wb") as fh:
        for _ in range(BIG_MB):
            fh.write(os.urandom(1 << 20))
    (ctx / "Dockerfile").write_text(f"FROM {ensure_base_image()}\nCOPY blob.bin /data/blob.bin\n")
    docker_cli("build", "--network", "none", "-q", "-t", BIG_TAG, str(ctx))
    return BIG_TAG


def push(image: str, reg: Registry, repo: str) -> str:
    """docker push; returns the manifest digest."""
    target = f"{reg.host}/{repo}"
    docker_cli("tag", image, target)
    out = docker_cli("push", target)
    docker_cli("rmi", target)
    return next(w for w in out.split() if w.startswith("sha256:"))


def killed_worker(service: Service, digest: str) -> int:
    """Waits until the job for ``digest`` is being scanned, then SIGKILLs the worker scanning it."""
    job = service.job_for(digest, timeout=120, states=("running",))
    pid = int(job["worker"].split(":")[1])
    os.kill(pid, signal.SIGKILL)
    return pid


def check_report(service: Service, digest: str, leaky: LeakyImage) -> dict[str, object]:
    job = service.job_for(digest)
    assert job["status"] == "done", job
    for fmt in ("json", "sarif", "gitlab", "junit", "table"):
        status, body = service.request(f"/api/v1/jobs/{digest}/report?format={fmt}")
        assert status == 200, fmt
        for value in leaky.all_values():
            assert value.encode() not in body, fmt
    status, body = service.request(f"/api/v1/jobs/{digest}/report?format=json")
    check_leaky_doc(json.loads(body))
    logs = service.server.text()
    assert not [v for v in leaky.all_values() if v in logs]  # nor in the service's log
    return dict(job)


@pytest.fixture(scope="module")
def embedded(engine: str, leaky: LeakyImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require("docker-registry", *registry_available())
    work = tmp_path_factory.mktemp("embedded")
    port = free_port()
    with run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN)) as reg:
        config = write_config(
            work / "service.toml", work / "data", [reg.host], workers=2, lease=3.0, secrets=secrets_for(leaky)
        )
        service = start_service(work, config, port, env=leaky.env)
        try:
            yield Stack(reg, service, work)
        finally:
            service.server.kill(signal.SIGTERM)


def test_a_push_gives_a_stored_report_within_seconds(embedded: Stack, leaky: LeakyImage) -> None:
    pushed = time.monotonic()
    digest = push(leaky.tag, embedded.registry, "team/leaky:1")
    job = check_report(embedded.service, digest, leaky)
    print(f"embedded: push -> report {time.monotonic() - pushed:.1f}s (scan {job['summary']['duration_s']}s)")
    assert job["source"] == "distribution" and job["attempts"] == 1 and job["complete"] is True
    # the same image pushed again under another tag: the notification is a duplicate, nothing is rescanned
    assert push(leaky.tag, embedded.registry, "team/leaky:again") == digest
    time.sleep(2)  # the registry notifies within about a second
    jobs = embedded.service.get("/api/v1/jobs?limit=100")["jobs"]
    assert [j["id"] for j in jobs if j["digest"] == digest] == [job["id"]]
    metrics = embedded.service.request("/metrics")[1].decode()
    assert 'leakscan_webhooks_total{kind="distribution",outcome="202"}' in metrics


def test_a_two_platform_push_is_scanned_once_per_platform(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 21: skopeo pushes an index and its two images; the registry notifies all three, and
    three workers could take them at once. Each image's job walks its layer; the index job waits
    for them and takes both layers from the layer cache (no layer walked twice); its report covers
    both platforms."""
    require("docker-registry", *registry_available())
    require("skopeo", shutil.which("skopeo") is not None, "skopeo is not installed")
    work = tmp_path_factory.mktemp("multi")
    gh = "ghp_" + secrets.token_hex(18)
    slow = os.urandom(24 << 20)  # a layer that takes a worker a moment
    layout = multiarch_layout(
        work / "layout",
        {
            "linux/amd64": {"app/amd64.env": f"GITHUB_TOKEN={gh}\n".encode(), "data/a.bin": slow},
            "linux/arm64": {"app/arm64.env": b"DEBUG=1\n", "data/b.bin": slow[::-1]},
        },
    )
    port = free_port()
    with run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN)) as reg:
        config = write_config(work / "service.toml", work / "data", [reg.host], workers=3, index_wait=0.5)
        service = start_service(work, config, port)
        try:
            digest_file = work / "digest"
            skopeo(
                "copy", "--all", "--dest-tls-verify=false", "--digestfile", str(digest_file),
                f"oci:{layout}:multi", f"docker://{reg.host}/team/multi:1",
            )  # fmt: skip
            index = digest_file.read_text().strip()
            job = service.job_for(index, timeout=180)
            assert job["status"] == "done" and job["complete"] is True, job
            platforms = {p["platform"]: p["manifest_digest"] for p in job["summary"]["platforms"]}
            assert set(platforms) == {"linux/amd64", "linux/arm64"}
            children = [service.job_for(d, timeout=60) for d in platforms.values()]
            assert all(c["status"] == "done" and c["complete"] for c in children), children
            assert [c["summary"]["cached_layers"] for c in children] == [0, 0]  # each walked its own layer
            assert job["summary"]["cached_layers"] == 2, job["summary"]  # the index walked none
            status, body = service.request(f"/api/v1/jobs/{index}/report?format=json")
            assert status == 200 and gh.encode() not in body
            doc = json.loads(body)
            found = {(i["platform"], f["path"]) for i in doc["images"] for la in i["layers"] for f in la["findings"]}
            assert ("linux/amd64", "app/amd64.env") in found
        finally:
            service.server.kill(signal.SIGTERM)


def test_a_worker_killed_mid_scan_loses_no_job(embedded: Stack, big_image: str) -> None:
    digest = push(big_image, embedded.registry, "team/big:1")
    pid = killed_worker(embedded.service, digest)
    job = embedded.service.job_for(digest, timeout=180)
    assert job["status"] == "done" and job["attempts"] == 2, job
    assert job["worker"].split(":")[1] != str(pid) and job["complete"] is True


def test_a_failing_job_is_marked_failed_with_its_reason(embedded: Stack) -> None:
    missing = "sha256:" + "0" * 64
    event = {
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": missing,
            "repository": "team/ghost",
        },
        "request": {"host": embedded.registry.host},
    }
    status, _ = embedded.service.request("/hooks/distribution", {"events": [event]})
    assert status == 202
    job = embedded.service.job_for(missing)
    assert job["status"] == "failed" and "not found" in job["error"] and job["attempts"] == 1
    assert embedded.service.request(f"/api/v1/jobs/{missing}/report")[0] == 500


def test_a_restart_loses_no_accepted_notification(
    engine: str, leaky: LeakyImage, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require("docker-registry", *registry_available())
    work = tmp_path_factory.mktemp("restart")
    port = free_port()
    with run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN)) as reg:
        config = write_config(work / "service.toml", work / "data", [reg.host], secrets=secrets_for(leaky))
        service = start_service(work, config, port, "--workers", "0", env=leaky.env)  # accepts, scans nothing
        try:
            digest = push(leaky.tag, reg, "team/restart:1")
            assert service.job_for(digest, timeout=60, states=("queued",))["attempts"] == 0
        finally:
            service.server.kill()  # SIGKILL: no clean shutdown
        service = start_service(work, config, port, env=leaky.env)
        try:
            check_report(service, digest, leaky)
        finally:
            service.server.kill(signal.SIGTERM)


def test_redis_workers_share_jobs_and_layers_and_survive_a_kill(
    engine: str, leaky: LeakyImage, big_image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    require("docker-registry", *registry_available())
    require("redis-server", *redis_available())
    work = tmp_path_factory.mktemp("redis-stack")
    port = free_port()
    with (
        run_redis(work / "redis") as redis_url,
        run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN)) as reg,
    ):
        config = write_config(
            work / "service.toml",
            work / "data",
            [reg.host],
            redis_url=redis_url,
            lease=3.0,
            heartbeat_timeout=3.0,
            secrets=secrets_for(leaky),
        )
        workers = [Proc(["worker", "--config", str(config)], work / f"worker{i}.log", leaky.env) for i in (1, 2)]
        for w in workers:
            w.start()
        service = start_service(work, config, port, env=leaky.env)
        try:
            digest = push(big_image, reg, "team/big:1")
            pid = killed_worker(service, digest)
            assert pid in [w.proc.pid for w in workers if w.proc]
            job = service.job_for(digest, timeout=180)
            assert job["status"] == "done" and job["attempts"] == 2 and job["complete"], job
            survivor = next(w for w in workers if w.proc and w.proc.pid != pid)
            assert job["worker"].split(":")[1] == str(survivor.proc.pid)  # type: ignore[union-attr]
            # another image on the same base: the base layer comes from the shared cache
            pushed = time.monotonic()
            leaky_digest = push(leaky.tag, reg, "team/leaky:1")
            job = check_report(service, leaky_digest, leaky)
            print(f"redis: push -> report {time.monotonic() - pushed:.1f}s")
            assert job["summary"]["cached_layers"] >= 1, job["summary"]
        finally:
            service.server.kill(signal.SIGTERM)
            for w in workers:
                w.kill(signal.SIGTERM)
        wait_for(lambda: all(w.proc is None or w.proc.poll() is not None for w in workers), 30, lambda: "workers")


def test_a_registry_killed_mid_layer_ends_in_a_complete_report_after_it_returns(
    engine: str, big_image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 21: the registry stops while a worker reads the big layer; the cut is transient, the
    job is retried with backoff once the registry is back on the same port, and ends done and
    complete (never done and incomplete because of the network)."""
    require("docker-registry", *registry_available())
    work = tmp_path_factory.mktemp("flaky")
    port = free_port()
    hook = (f"http://127.0.0.1:{port}/hooks/distribution", TOKEN)
    addr = f"127.0.0.1:{free_port()}"
    service: Service | None = None
    try:
        with run_registry(work / "registry", notify=hook, addr=addr) as reg:
            config = write_config(work / "service.toml", work / "data", [reg.host], workers=1, retry_backoff=1.0)
            service = start_service(work, config, port)
            digest = push(big_image, reg, "team/flaky:1")
            service.job_for(digest, timeout=120, states=("running",))
            time.sleep(0.5)  # the manifests are read; the worker is inside the big layer
            first = service.get(f"/api/v1/jobs/{digest}")
            assert first["status"] == "running" and first["attempts"] == 1, first
        # the registry is stopped here, in the middle of the download
        time.sleep(1.0)
        mid = service.get(f"/api/v1/jobs/{digest}")
        assert mid["status"] in ("queued", "running") and mid["complete"] is None, mid
        with run_registry(work / "registry", addr=addr):
            job = service.job_for(digest, timeout=180)
        assert job["status"] == "done" and job["complete"] is True, job
        assert job["attempts"] >= 2 and job["error"] is None, job
    finally:
        if service is not None:
            service.server.kill(signal.SIGTERM)


ACME_RULE = """
[rules]
[[rules.custom]]
id = "acme-deploy-token"
description = "ACME deploy token"
regex = "acmedeploy_[a-z]{24}"
keywords = ["acmedeploy_"]
severity = "high"
"""


def test_a_rule_change_rescans_stored_images_and_alerts_on_what_is_new(
    engine: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 21: an image scanned under the built-in rules holds a token only a custom rule knows.
    The rule is added to the service's config; on restart the report is stale (API and /metrics),
    a rescan is queued, finds the token, and the alert names it as new."""
    from tests.test_registry_client import _Server  # a loopback HTTP server

    require("docker-registry", *registry_available())
    require("skopeo", shutil.which("skopeo") is not None, "skopeo is not installed")
    work = tmp_path_factory.mktemp("rescan")
    token = "acmedeploy_" + "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(24))
    layout = multiarch_layout(work / "layout", {"linux/amd64": {"app/acme.env": f"ACME={token}\n".encode()}})
    alerts: list[bytes] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            alerts.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(204)
            self.end_headers()

    receiver = _Server(Receiver)
    port = free_port()
    notify = f'\n[notify]\nurl = "http://{receiver.host}/alert"\n'
    try:
        with run_registry(work / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN)) as reg:
            config = write_config(work / "service.toml", work / "data", [reg.host], workers=1, rescan_per_minute=0)
            config.write_text(config.read_text() + notify)
            service = start_service(work, config, port)
            try:
                digest_file = work / "digest"
                skopeo(
                    "copy", "--dest-tls-verify=false", "--digestfile", str(digest_file),
                    f"oci:{layout}:multi", f"docker://{reg.host}/team/acme:1",
                )  # fmt: skip
                digest = digest_file.read_text().strip()
                first = service.job_for(digest)
                assert first["status"] == "done" and "acme-deploy-token" not in first["summary"]["rules"], first
                assert service.get("/api/v1/rescans")["stale"] == 0
            finally:
                service.server.kill(signal.SIGTERM)
            # the rule is added; the service restarts without workers or rescans: the report is stale
            config.write_text(config.read_text() + ACME_RULE)
            service = start_service(work, config, port, "--workers", "0")
            try:
                assert service.get("/api/v1/rescans")["stale"] == 1
                assert "leakscan_reports_stale 1.0" in service.request("/metrics")[1].decode()
            finally:
                service.server.kill(signal.SIGTERM)
            config.write_text(config.read_text().replace("rescan_per_minute = 0", "rescan_per_minute = 60"))
            service = start_service(work, config, port)
            try:
                wait_for(lambda: service.get(f"/api/v1/jobs/{digest}")["id"] != first["id"], 30, lambda: "no rescan")
                job = service.job_for(digest, timeout=120)
                assert job["status"] == "done" and job["source"] == "rescan" and job["previous"] == first["id"], job
                assert "acme-deploy-token" in job["summary"]["rules"] and job["ruleset"] != first["ruleset"]
                assert service.get("/api/v1/rescans")["stale"] == 0
                status, body = service.request(f"/api/v1/jobs/{digest}/report?format=json")
                assert status == 200 and token.encode() not in body
                wait_for(lambda: len(alerts) >= 1, 30, lambda: f"alerts: {alerts}")
                assert token.encode() not in b"".join(alerts) and token not in service.server.text()
                doc = json.loads(alerts[-1])
                assert doc["event"] == "leakscan.rescan.new_findings" and doc["new_findings"] == 1, doc
            finally:
                service.server.kill(signal.SIGTERM)
    finally:
        receiver.close()
