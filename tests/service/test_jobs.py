"""One job end to end against a real registry (Debian's docker-registry on loopback, images
copied in by skopeo): the scan and its stored reports, retries with backoff while the registry is
down, permanent failures, attempts exhausted by dying workers, Harbor robot credentials, the
shared layer cache and the outbound alert."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from scanner.service.config import RegistryEntry, ServiceConfig
from scanner.service.events import PushEvent
from scanner.service.harbor import HarborAuth, harbor_auth
from scanner.service.jobs import Runner
from scanner.service.sqlite_store import SqliteStore
from scanner.sources.registry import Credentials
from tests.conftest import SAMPLE_SECRET
from tests.support.formats import skopeo_available
from tests.support.registry import Registry, registry_available, run_registry
from tests.support.services import require, skopeo
from tests.support.token_server import token_server

USER, PASSWORD = "robot$ci", "robot-" + secrets.token_urlsafe(16)


def push_sample(archives: dict[str, Path], reg: Registry, repo: str, tmp: Path) -> str:
    digest_file = tmp / f"{repo.replace('/', '_')}.digest"
    creds = ["--dest-creds", f"{USER}:{PASSWORD}"] if (reg.root.parent / "htpasswd").exists() else []
    skopeo(
        "copy", "-q", "--dest-tls-verify=false", *creds, "--digestfile", str(digest_file),
        f"docker-archive:{archives['docker-legacy']}", f"docker://{reg.host}/{repo}:v1",
    )  # fmt: skip
    return digest_file.read_text().strip()


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require("docker-registry", *registry_available())
    require("skopeo", skopeo_available(), "skopeo is not installed")
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


def config_for(tmp: Path, *hosts: str, **kw: Any) -> ServiceConfig:
    entries = {h: RegistryEntry(h, insecure=True, credentials=kw.pop("credentials", None)) for h in hosts}
    return ServiceConfig(data_dir=tmp, tokens=("t",), registries=entries, **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_job_scans_stores_every_format_and_reuses_cached_layers(
    registry: Registry, sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    digest = push_sample(sample_archives, registry, "demo/app", tmp_path)
    config = config_for(tmp_path, registry.host)
    store = SqliteStore(config.db_path)
    runner = Runner(config, store)
    job, _ = store.submit(PushEvent(registry.host, "demo/app", digest, "v1"), "distribution")
    claimed = store.claim("w", config.lease)
    assert claimed is not None
    runner.execute(claimed, "w")
    done = store.get(job.id)
    assert done is not None and done.status == "done" and done.complete and done.attempts == 1
    assert done.findings and done.findings >= 3
    assert done.summary["cached_layers"] == 0 and "aws-access-key-id" in done.summary["rules"]
    for fmt in ("json", "sarif", "gitlab", "junit", "table"):
        body = store.report(job.id, fmt)
        assert body and SAMPLE_SECRET not in body, fmt
    assert json.loads(store.report(job.id, "json") or "")["summary"]["findings"] == done.findings
    # the same content under another name is the same digest: no second scan
    assert push_sample(sample_archives, registry, "demo/copy", tmp_path) == digest
    job2, created = store.submit(PushEvent(registry.host, "demo/copy", digest, "v1"), "distribution")
    assert not created and job2.id == job.id
    # scanned again (a failed job is retried on a new push): every layer comes from the layer cache
    store.fail(job.id, "pretend")
    job3, created = store.submit(PushEvent(registry.host, "demo/copy", digest, "v1"), "distribution")
    assert created
    runner.execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
    again = store.get(job3.id)
    assert again is not None and again.findings == done.findings
    assert again.summary["cached_layers"] == done.summary["layers"] > 0


def test_a_job_keeps_the_layer_cache_within_the_configured_bound(
    registry: Registry, sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    """[service] cache_max_size reaches the scans (scanner.prune): a file of another namespace,
    unused for two hours, goes when the bound is a byte, and stays under the default bound."""
    import os
    import time

    digest = push_sample(sample_archives, registry, "demo/app", tmp_path)
    for bound, stays in ((None, True), (1, False)):
        data = tmp_path / f"data-{bound}"
        config = config_for(data, registry.host, **({} if bound is None else {"cache_max_size": bound}))
        stale = config.cache_dir / ("e" * 32) / f"sha256-{'f' * 64}.json"
        stale.parent.mkdir(parents=True)
        stale.write_text("{}")
        os.utime(stale, (time.time() - 7200, time.time() - 7200))
        store = SqliteStore(config.db_path)
        job, _ = store.submit(PushEvent(registry.host, "demo/app", digest, "v1"), "distribution")
        Runner(config, store).execute(store.claim("w", config.lease), "w")  # type: ignore[arg-type]
        done = store.get(job.id)
        assert done is not None and done.status == "done", done
        assert stale.exists() is stays, bound


def test_registry_down_is_retried_with_backoff_until_it_is_up(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    require("docker-registry", *registry_available())
    require("skopeo", skopeo_available(), "skopeo is not installed")
    host = f"127.0.0.1:{free_port()}"
    config = config_for(tmp_path, host, retry_backoff=0.2, max_attempts=5)
    store = SqliteStore(config.db_path)
    runner = Runner(config, store)
    digest = "sha256:" + "c" * 64
    job, _ = store.submit(PushEvent(host, "demo/app", digest, "v1"), "distribution")
    delays = []
    for attempt in (1, 2):
        claimed = store.claim("w", 30)
        assert claimed is not None and claimed.attempts == attempt
        before = time.time()
        runner.execute(claimed, "w")
        queued = store.get(job.id)
        assert queued is not None and queued.status == "queued" and "request failed" in (queued.error or "")
        delays.append(queued.not_before - before)
        assert store.claim("w", 30) is None  # not due before its backoff
        time.sleep(queued.not_before - time.time() + 0.05)
    assert 0.15 < delays[0] < 0.3 and 0.35 < delays[1] < 0.5  # 0.2 s, then doubled
    with run_registry(tmp_path / "late-registry", addr=host) as reg:
        digest = push_sample(sample_archives, reg, "demo/app", tmp_path)
        job, _ = store.submit(PushEvent(host, "demo/app", digest, "v1"), "distribution")
        claimed = store.claim("w", 30)
        while claimed is not None and claimed.id != job.id:  # the fake digest's job comes first
            runner.execute(claimed, "w")
            claimed = store.claim("w", 30)
        assert claimed is not None
        runner.execute(claimed, "w")
    assert store.get(job.id).status == "done"  # type: ignore[union-attr]


def test_a_registry_that_stays_down_ends_failed_not_retried_forever(tmp_path: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    config = config_for(tmp_path, host, retry_backoff=0.0, max_attempts=3)
    store = SqliteStore(config.db_path)
    runner = Runner(config, store)
    job, _ = store.submit(PushEvent(host, "demo/app", "sha256:" + "d" * 64, None), "distribution")
    runs = 0
    while (claimed := store.claim("w", 30)) is not None:
        runner.execute(claimed, "w")
        runs += 1
        assert runs <= 3
    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.attempts == 3
    assert failed.error and failed.error.startswith("gave up after 3 attempts")


def test_a_missing_manifest_fails_at_once_with_its_reason(registry: Registry, tmp_path: Path) -> None:
    config = config_for(tmp_path, registry.host)
    store = SqliteStore(config.db_path)
    job, _ = store.submit(PushEvent(registry.host, "demo/app", "sha256:" + "e" * 64, None), "distribution")
    Runner(config, store).execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.attempts == 1
    assert "not found" in (failed.error or "")


def test_a_job_whose_worker_keeps_dying_is_failed(tmp_path: Path) -> None:
    config = config_for(tmp_path, "127.0.0.1:5000", max_attempts=2)
    store = SqliteStore(config.db_path)
    job, _ = store.submit(PushEvent("127.0.0.1:5000", "demo/app", "sha256:" + "f" * 64, None), "distribution")
    for _ in range(2):  # two workers took it and died: their leases ran out
        assert store.claim("dead", lease=0.0) is not None
        time.sleep(0.01)
    third = store.claim("w", 30)
    assert third is not None and third.attempts == 3
    Runner(config, store).execute(third, "w")
    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error == "gave up after 2 attempts; last: the worker stopped during the scan"


def test_a_registry_removed_from_the_allow_list_is_not_contacted(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "leakscan.sqlite3")
    job, _ = store.submit(PushEvent("10.0.0.1:5000", "demo/app", "sha256:" + "f" * 64, None), "distribution")
    Runner(config_for(tmp_path, "127.0.0.1:5000"), store).execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
    assert "not on the allow-list" in (store.get(job.id).error or "")  # type: ignore[union-attr]


def test_registry_credentials_from_harbor_requests_and_from_configuration(
    sample_archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    require("docker-registry", *registry_available())
    require("skopeo", skopeo_available(), "skopeo is not installed")
    tmp = tmp_path_factory.mktemp("harbor")
    with run_registry(tmp / "reg", users={USER: PASSWORD}) as reg:
        digest = push_sample(sample_archives, reg, "library/app", tmp)
        config = config_for(tmp, reg.host)  # no credentials configured: only the request's
        store = SqliteStore(config.db_path)
        runner = Runner(config, store)
        good = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        bad = "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode()
        event = PushEvent(reg.host, "library/app", digest, None)
        job, _ = store.submit(event, "harbor-adapter", bad)
        runner.execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
        assert "denied (HTTP 401)" in (store.get(job.id).error or "")  # type: ignore[union-attr]
        job, created = store.submit(event, "harbor-adapter", good)
        assert created
        runner.execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
        done = store.get(job.id)
        assert done is not None and done.status == "done" and done.findings and done.auth is None
        # the ordinary way: credentials from the service's configuration, none in the notification
        configured = config_for(tmp / "configured", reg.host, credentials=Credentials(USER, PASSWORD))
        store = SqliteStore(configured.db_path)
        job, _ = store.submit(event, "distribution")
        Runner(configured, store).execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
        assert store.get(job.id).status == "done"  # type: ignore[union-attr]


def test_harbor_authorization_parsing() -> None:
    basic = harbor_auth("Basic " + base64.b64encode(b"robot$x:p:w").decode())
    assert basic == HarborAuth(Credentials("robot$x", "p:w"))
    assert harbor_auth(None) == HarborAuth()
    assert harbor_auth("Bearer eyJh.eyJz-_.sig+/=") == HarborAuth(authorization="Bearer eyJh.eyJz-_.sig+/=")
    assert "eyJh" not in repr(harbor_auth("Bearer eyJh.eyJz.sig"))
    for bad in (
        "Digest abc",
        "Bearer",
        "Bearer a\r\nX-Evil: 1",
        "Basic !!!",
        "Basic " + base64.b64encode(b"nocolon").decode(),
    ):
        with pytest.raises(Exception, match="authorization"):
            harbor_auth(bad)


def test_harbor_bearer_authorization_against_a_token_auth_registry(
    sample_archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Harbor's scan request carries ``registry.authorization: Bearer <token>``, a pull token it
    issued for the artifact: the worker sends it as it is (no token request of its own), and a
    token without the grant fails the job with the registry's 401."""
    require("docker-registry", *registry_available())
    require("skopeo", skopeo_available(), "skopeo is not installed")
    import urllib.request

    tmp = tmp_path_factory.mktemp("harbor-bearer")
    with (
        token_server(tmp / "token", USER, PASSWORD) as tokens,
        run_registry(tmp / "reg", token=(tokens.realm, tokens.cert)) as reg,
    ):
        digest_file = tmp / "digest"
        skopeo(
            "copy", "-q", "--dest-tls-verify=false", "--dest-creds", f"{USER}:{PASSWORD}",
            "--digestfile", str(digest_file), f"docker-archive:{sample_archives['docker-legacy']}",
            f"docker://{reg.host}/library/app:v1",
        )  # fmt: skip
        digest = digest_file.read_text().strip()

        def pull_token(basic: str | None) -> str:  # what Harbor's token service hands the adapter
            url = f"{tokens.realm}?service=leakscan-test-registry&scope=repository:library/app:pull"
            headers = {"Authorization": basic} if basic else {}
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
                return str(json.loads(resp.read())["token"])

        granted = pull_token("Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
        config = config_for(tmp, reg.host)  # no credentials configured: only the request's
        store = SqliteStore(config.db_path)
        runner = Runner(config, store)
        event = PushEvent(reg.host, "library/app", digest, None)
        job, _ = store.submit(event, "harbor-adapter", f"Bearer {pull_token(None)}")  # an empty grant
        runner.execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
        refused = store.get(job.id)
        assert refused is not None and refused.status == "failed" and "denied (HTTP 401)" in (refused.error or "")
        before = len(tokens.requests)
        job, created = store.submit(event, "harbor-adapter", f"Bearer {granted}")
        assert created
        runner.execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
        done = store.get(job.id)
        assert done is not None and done.status == "done" and done.findings and done.complete, done
        assert done.auth is None  # erased when the job ends
        assert len(tokens.requests) == before  # the worker asked the token service for nothing


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_findings_send_an_alert_without_the_secret(
    registry: Registry, sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        digest = push_sample(sample_archives, registry, "demo/alert", tmp_path)
        config = config_for(
            tmp_path,
            registry.host,
            notify_url=f"http://127.0.0.1:{server.server_port}/alert",
            notify_token="alert-token",
            public_url="http://scanner.example:8080",
        )
        store = SqliteStore(config.db_path)
        job, _ = store.submit(PushEvent(registry.host, "demo/alert", digest, "v1"), "distribution")
        Runner(config, store).execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
    finally:
        server.shutdown()
    [(headers, body)] = _Receiver.received
    assert headers["Authorization"] == "Bearer alert-token"
    doc = json.loads(body)
    assert doc["event"] == "leakscan.findings" and doc["digest"] == digest and doc["findings"] >= 3
    assert doc["report"] == f"http://scanner.example:8080/api/v1/jobs/{job.id}"
    assert SAMPLE_SECRET.encode() not in body and b"preview" not in body
