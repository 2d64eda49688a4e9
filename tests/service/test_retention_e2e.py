"""Retention end to end: docker-registry notifies a real ``leakscan serve`` (embedded, and on a real
redis-server with a ``leakscan worker``) whose ``[retention]`` keeps one job per repository;
images are pushed with skopeo, several times to one tag.  The pruning pass leaves exactly the
newest report of each tag, and the API's pages walk what is left."""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis import redis_available, run_redis
from tests.support.registry import image_layout, registry_available, run_registry
from tests.support.service import TOKEN, Proc, Service, free_port, start_service, wait_for, write_config
from tests.support.services import require, skopeo

RETENTION = "\n[retention]\nkeep_per_repository = 1\ninterval_minutes = 0.02\n"


def push(work: Path, host: str, target: str, n: int) -> str:
    layout = image_layout(work / f"layout{n}", {f"app/file{n}.txt": f"content {n}\n".encode()})
    digest_file = work / f"digest{n}"
    skopeo("copy", "--dest-tls-verify=false", "--digestfile", str(digest_file), f"oci:{layout}:img",
           f"docker://{host}/{target}")  # fmt: skip
    return digest_file.read_text().strip()


@pytest.fixture(params=["embedded", "redis"])
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Service, str, Path]]:
    require("docker-registry", *registry_available())
    require("skopeo", shutil.which("skopeo") is not None, "skopeo is not installed")
    port = free_port()
    with ExitStack() as stack:
        extra: dict[str, Any] = {"workers": 1}
        if request.param == "redis":
            require("redis-server", *redis_available())
            extra = {"redis_url": stack.enter_context(run_redis(tmp_path / "redis"))}
        reg = stack.enter_context(
            run_registry(tmp_path / "registry", notify=(f"http://127.0.0.1:{port}/hooks/distribution", TOKEN))
        )
        config = write_config(tmp_path / "service.toml", tmp_path / "data", [reg.host], **extra)
        config.write_text(config.read_text() + RETENTION)
        procs: list[Proc] = []
        stack.callback(lambda: [p.kill(signal.SIGTERM) for p in procs])
        if request.param == "redis":
            procs.append(Proc(["worker", "--config", str(config)], tmp_path / "worker.log").start())
        service = start_service(tmp_path, config, port)
        procs.append(service.server)
        yield service, reg.host, tmp_path


def test_pruning_keeps_the_newest_report_of_each_tag(stack: tuple[Service, str, Path]) -> None:
    service, host, work = stack
    app1 = [push(work, host, "team/app:1", n) for n in range(3)]  # one tag, pushed three times
    app2 = push(work, host, "team/app:2", 3)
    other = push(work, host, "team/other:1", 4)
    for digest in [*app1, app2, other]:
        assert service.job_for(digest)["status"] == "done"

    def pruned() -> bool:
        return {j["digest"] for j in service.jobs("repository=team/app", limit=1)} == {app1[-1], app2}

    wait_for(pruned, 30, lambda: f"jobs left: {service.get('/api/v1/jobs')}", every=0.5)
    assert [j["digest"] for j in service.jobs("repository=team/other", limit=1)] == [other]
    assert sorted(j["digest"] for j in service.jobs("status=done", limit=1)) == sorted([app1[-1], app2, other])
    for digest in app1[:2]:  # older reports of team/app:1 are gone with their jobs
        assert service.request(f"/api/v1/jobs/{digest}/report")[0] == 404
    status, body = service.request(f"/api/v1/jobs/{app1[-1]}/report?format=json")
    assert status == 200 and b"team/app" in body
    passes = re.findall(r"retention: deleted (\d+) jobs", service.server.text())
    assert sum(int(n) for n in passes) == 2, passes
