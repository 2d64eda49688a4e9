"""leakscan's own container image (the top-level Dockerfile), built by the real engine on a locally
made Python base (scripts/python-base: no image can be pulled here) from the pinned wheels
(scripts/wheelhouse, --network none), then run the two documented ways: on a saved tarball
mounted in, and on the engine through its mounted socket."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.expected import check_leaky_run
from tests.support.images import LeakyImage
from tests.support.services import DOCKER, docker_cli, require

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
TAG = "leakscan-selftest:dev"
UID = "10001"


def _script(name: str, *args: str) -> str:
    proc = subprocess.run([str(ROOT / "scripts" / name), *args], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"scripts/{name} failed: {proc.stderr[-2000:]}"
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def image(engine: str) -> str:
    require("mmdebstrap", shutil.which("mmdebstrap") is not None, "needed to make the Python base image")
    base = _script("python-base")
    if not list((ROOT / "wheelhouse").glob("*.whl")):
        _script("wheelhouse")
    docker_cli("build", "--network", "none", "-q", "--build-arg", f"BASE={base}", "-t", TAG, str(ROOT))
    return TAG


def _socket() -> Path:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    assert host.startswith("unix://"), "these tests talk to a local engine over its unix socket"
    return Path(host.removeprefix("unix://"))


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=600, env=env)


def _readable_secrets(leaky: LeakyImage, tmp_path: Path) -> Path:
    """A copy of the build's secret files that the container's non-root user can read."""
    out = tmp_path / "secrets"
    out.mkdir()
    for flag in leaky.secret_flags:
        src = Path(flag.split("src=")[1])
        shutil.copy(src, out / src.name)
        (out / src.name).chmod(0o644)
    out.chmod(0o755)
    return out


def _container_secret_args(leaky: LeakyImage) -> list[str]:
    """The build's own --secret flags, with the files where the container sees them."""
    args: list[str] = []
    for flag in leaky.secret_flags:
        args += ["--secret", flag.replace(str(Path(flag.split("src=")[1]).parent), "/secrets")]
    for name in leaky.env:
        args += ["--secret", f"id={name}"]
    return args


def _env_args(leaky: LeakyImage) -> list[str]:
    return [a for name in leaky.env for a in ("-e", name)]  # values come from our environment, not argv


def _offline(image: str, *args: str, entrypoint: str | None = None) -> subprocess.CompletedProcess[str]:
    """``docker run --rm --network none`` of leakscan's image (optionally another entrypoint)."""
    chosen = ["--entrypoint", entrypoint] if entrypoint else []
    return _run("run", "--rm", "--network", "none", *chosen, image, *args)


def test_the_image_is_small_non_root_and_runs_leakscan(image: str) -> None:
    config = json.loads(docker_cli("image", "inspect", image))[0]["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["leakscan"]
    assert _offline(image, "-u", entrypoint="id").stdout.strip() == UID
    version = _offline(image, "--version")
    assert version.returncode == 0 and "leakscan, version" in version.stdout
    ours = "import importlib.metadata as m; print(m.distribution('leakscan-image').entry_points['leakscan'].value)"
    assert _offline(image, "-c", ours, entrypoint="/opt/leakscan/bin/python").stdout.strip() == "scanner:main"
    # the service runs from the same image: leakscan serve / leakscan worker and their libraries
    imports = "import scanner.service.app, scanner.service.redis_store, scanner.service.workers, uvicorn"
    probe_service = _offline(image, "-c", imports, entrypoint="/opt/leakscan/bin/python")
    assert probe_service.returncode == 0, probe_service.stderr
    assert "Harbor" in _offline(image, "serve", "--help").stdout
    # multi-stage: no sources, wheels or build backend in the final image
    probe = "ls /src /wheelhouse 2>&1; /opt/leakscan/bin/python -c 'import setuptools' 2>&1 | tail -1"
    out = _offline(image, "-c", probe, entrypoint="sh").stdout
    assert "No such file" in out and "ModuleNotFoundError" in out


def _scan_in_container(
    image: str, leaky: LeakyImage, target: str, *docker_args: str
) -> subprocess.CompletedProcess[str]:
    """leakscan's image scanning ``target`` with the leaky image's secrets, as a CI job would run it."""
    return _run(
        "run",
        "--rm",
        "--network",
        "none",
        *docker_args,
        *_env_args(leaky),
        image,
        target,
        *_container_secret_args(leaky),
        "--format",
        "json",
        env={**os.environ, **leaky.env},
    )


def test_scans_a_saved_tarball_mounted_in(image: str, leaky: LeakyImage, tmp_path: Path) -> None:
    tarball = tmp_path / "leaky.tar"
    with tarball.open("wb") as fh:
        subprocess.run([DOCKER, "save", leaky.tag], stdout=fh, check=True, timeout=300)
    secrets_dir = _readable_secrets(leaky, tmp_path)
    tarball.chmod(0o644)
    proc = _scan_in_container(
        image, leaky, "/scan/image.tar", "-v", f"{tarball}:/scan/image.tar:ro", "-v", f"{secrets_dir}:/secrets:ro"
    )
    doc = check_leaky_run(proc, leaky)
    assert "finding(s) (" in proc.stderr  # the one-line summary
    assert doc["source"]["kind"] != "docker-daemon"


def test_scans_the_engine_through_its_mounted_socket(image: str, leaky: LeakyImage, tmp_path: Path) -> None:
    sock = _socket()
    secrets_dir = _readable_secrets(leaky, tmp_path)
    mounts = ["-v", f"{sock}:/var/run/docker.sock", "--group-add", str(sock.stat().st_gid)]
    proc = _scan_in_container(image, leaky, leaky.tag, *mounts, "-v", f"{secrets_dir}:/secrets:ro")
    doc = check_leaky_run(proc, leaky)
    assert "finding(s) (" in proc.stderr  # the one-line summary
    assert doc["source"]["kind"] == "docker-daemon"
