"""podman, tested like Docker: the leaky image built by podman (buildah) with the same --secret
flags, scanned from ``podman save`` in both archive formats and through podman's Docker-compatible
API socket (``podman system service``), which leakscan reaches like the Docker Engine (DOCKER_HOST)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.expected import check_leaky_doc
from tests.support.images import LeakyImage, build_leaky_image
from tests.support.services import PODMAN_ROOT, podman_args, podman_available, podman_cli, require

TAG = "localhost/leakscan-test-leaky:podman"


@pytest.fixture(scope="module")
def podman_leaky(tmp_path_factory: pytest.TempPathFactory) -> LeakyImage:
    ok, why = podman_available()
    require("podman", ok, why)
    return build_leaky_image(tmp_path_factory.mktemp("podman-leaky"), tag=TAG, cli=podman_cli)


@pytest.fixture(scope="module")
def podman_socket(podman_leaky: LeakyImage) -> Iterator[str]:
    sock = PODMAN_ROOT / "api.sock"
    sock.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [*podman_args(), "system", "service", "--time=0", f"unix://{sock}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        require("podman API socket", sock.exists(), "podman system service did not start")
        yield f"unix://{sock}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _scan(leaky: LeakyImage, target: str, env: dict[str, str] | None = None) -> dict[str, object]:
    args = [a for flag in leaky.secret_flags for a in ("--secret", flag)]
    args += [a for name in leaky.env for a in ("--secret", f"id={name}")]
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", target, *args, "--format", "json", "--no-cache", "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, **leaky.env, **(env or {})},
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    for value in leaky.all_values():
        assert value not in proc.stdout and value not in proc.stderr, "a planted secret in the output"
    doc: dict[str, object] = json.loads(proc.stdout)
    return doc


@pytest.mark.parametrize(
    ("fmt", "archive_format"), [("docker-archive", "docker-archive (podman)"), ("oci-archive", "oci")]
)
def test_podman_save_archives(fmt: str, archive_format: str, podman_leaky: LeakyImage, tmp_path: Path) -> None:
    out = tmp_path / f"{fmt}.tar"
    podman_cli("save", "--format", fmt, "-o", str(out), TAG)
    doc = _scan(podman_leaky, str(out))
    assert doc["source"] == {"kind": "archive", "ref": str(out), "format": archive_format}
    check_leaky_doc(doc)


def test_podman_api_socket(podman_leaky: LeakyImage, podman_socket: str) -> None:
    doc = _scan(podman_leaky, TAG, env={"DOCKER_HOST": podman_socket})
    source = doc["source"]
    assert isinstance(source, dict) and source["kind"] == "docker-daemon"
    check_leaky_doc(doc)
