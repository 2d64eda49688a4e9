"""The service starts from the config it prints, in the three commands docs/service.md gives, and
the docs carry that config and a registry config that notifies it."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

from scanner.service.config import EXAMPLE, load_config

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "docs" / "service.md").read_text()


def test_the_docs_carry_the_printed_config_and_the_three_commands() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "scanner", "serve", "--example-config"], capture_output=True, text=True, timeout=60
    )
    assert printed.returncode == 0 and printed.stdout == EXAMPLE
    assert EXAMPLE.strip() in DOCS
    commands = re.search(r"## In three commands\n\n```sh\n(.*?)```", DOCS, re.S)
    assert commands is not None and len(commands.group(1).strip().splitlines()) == 3


def test_the_example_config_loads_and_allows_the_documented_registry(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "leakscan-service.toml"
    path.write_text(EXAMPLE)
    monkeypatch.setenv("LEAKSCAN_WEBHOOK_TOKENS", "t0ken-for-the-test")
    config = load_config(path)
    assert config.allowed("localhost:5000") is not None and config.tokens == ("t0ken-for-the-test",)
    registry = yaml.safe_load(re.search(r"```yaml\n(# /etc/docker/registry.*?)```", DOCS, re.S).group(1))  # type: ignore[union-attr]
    (endpoint,) = registry["notifications"]["endpoints"]
    assert endpoint["url"] == "http://127.0.0.1:8080/hooks/distribution"
    assert registry["http"]["addr"] == "localhost:5000"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_three_commands_start_a_ready_service(tmp_path: Path) -> None:
    env = {**os.environ, "LEAKSCAN_WEBHOOK_TOKENS": "t0ken-for-the-test"}
    config = tmp_path / "leakscan-service.toml"
    config.write_text(
        subprocess.run(
            [sys.executable, "-m", "scanner", "serve", "--example-config"], capture_output=True, text=True, check=True
        ).stdout
    )
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "scanner", "serve", "--config", str(config), "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
                assert time.monotonic() < deadline, "the service did not become ready"
                time.sleep(0.3)
        assert (tmp_path / "leakscan-data").is_dir()  # data_dir, relative to where it was started
    finally:
        proc.terminate()
        proc.wait(timeout=30)
