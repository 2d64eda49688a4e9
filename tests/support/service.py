"""``leakscan serve`` and ``leakscan worker`` as real processes, for end-to-end tests and benchmarks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TOKEN = "e2e-hook-token-0123456789abcdef"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, data_dir: Path, registries: list[str], **service: Any) -> Path:
    lines = ["[service]", f'data_dir = "{data_dir}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in service.items() if k != "secrets"]
    lines += ["[auth]", f'tokens = ["{TOKEN}"]']
    for host in registries:
        lines += [f'[registries."{host}"]', "insecure = true"]
    if service.get("secrets"):
        lines += ["[scan]", f"secrets = {json.dumps(service['secrets'])}"]
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass
class Proc:
    args: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "scanner", *self.args],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
            )
        return self

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """The process and, for ``serve``, its embedded workers (one process group)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class Service:
    port: int
    server: Proc

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, headers={"Authorization": f"Bearer {TOKEN}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def get(self, path: str) -> Any:
        status, body = self.request(path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def jobs(self, query: str = "", limit: int = 200) -> list[Any]:
        """Every job the API lists for ``query``, page by page (its cursor pagination)."""
        jobs: list[Any] = []
        cursor = ""
        while True:
            doc = self.get(f"/api/v1/jobs?limit={limit}&{query}&cursor={cursor}")
            jobs += doc["jobs"]
            if doc["next"] is None:
                return jobs
            cursor = doc["next"]

    def wait_ready(self, timeout: float = 60) -> None:
        def ready() -> bool:
            try:
                return self.request("/healthz")[0] == 200
            except OSError:
                return False

        wait_for(ready, timeout, lambda: f"service not ready:\n{self.server.text()[-3000:]}")

    def job_for(self, digest: str, timeout: float = 120, states: tuple[str, ...] = ("done", "failed")) -> Any:
        found: list[Any] = []

        def check() -> bool:
            status, body = self.request(f"/api/v1/jobs/{digest}")
            if status == 200:
                found[:] = [json.loads(body)]
                return bool(found[0]["status"] in states)
            return False

        wait_for(check, timeout, lambda: f"no job for {digest} in {states}: {found}\n{self.server.text()[-3000:]}")
        return found[0]


def wait_for(check: Callable[[], bool], timeout: float, why: Callable[[], str], every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(why())


def start_service(workdir: Path, config: Path, port: int, *extra: str, env: dict[str, str] | None = None) -> Service:
    server = Proc(["serve", "--config", str(config), "--port", str(port), *extra], workdir / "serve.log", env or {})
    service = Service(port, server.start())
    service.wait_ready()
    return service
