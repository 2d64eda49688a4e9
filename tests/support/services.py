"""Real services for the tests: a Docker Engine and skopeo.

A test that needs one skips when it is missing on a developer machine; with
LEAKSCAN_REQUIRE_SERVICES=1 (set by .ci/run) a missing service is a failure instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DOCKER = "/usr/bin/docker" if os.path.exists("/usr/bin/docker") else (shutil.which("docker") or "docker")


def require(what: str, ok: bool, why: str) -> None:
    if ok:
        return
    message = f"{what} not available: {why}"
    if os.environ.get("LEAKSCAN_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " (LEAKSCAN_REQUIRE_SERVICES=1: a missing service is a failure)")
    pytest.skip(message)


def docker_cli(*args: str, input: bytes | None = None, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, "DOCKER_BUILDKIT": "1", **(env or {})}
    proc = subprocess.run([DOCKER, *args], input=input, capture_output=True, env=full_env, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"docker {args[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode(errors="replace")


def engine_available() -> tuple[bool, str]:
    if not os.path.exists(DOCKER):
        return False, "no docker client"
    proc = subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], capture_output=True, timeout=60)
    if proc.returncode != 0:
        return False, proc.stderr.decode(errors="replace").strip()[:200]
    return True, proc.stdout.decode().strip()


PODMAN_ROOT = Path(os.environ.get("LEAKSCAN_SERVICES_DIR", "/tmp/leakscan-services")) / "podman"


def podman_args() -> list[str]:
    """podman with its own storage (vfs: works inside containers), apart from any system podman."""
    return [
        "podman",
        "--storage-driver",
        "vfs",
        "--root",
        str(PODMAN_ROOT / "root"),
        "--runroot",
        str(PODMAN_ROOT / "run"),
    ]


def podman_cli(*args: str, input: bytes | None = None) -> str:
    proc = subprocess.run([*podman_args(), *args], input=input, capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"podman {args[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return proc.stdout.decode(errors="replace")


def podman_available() -> tuple[bool, str]:
    if shutil.which("podman") is None:
        return False, "podman is not installed"
    proc = subprocess.run([*podman_args(), "version", "--format", "{{.Client.Version}}"], capture_output=True)
    return (proc.returncode == 0, (proc.stdout or proc.stderr).decode(errors="replace").strip()[:200])


def skopeo(*args: str) -> None:
    proc = subprocess.run(["skopeo", *args], capture_output=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"skopeo {args[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
