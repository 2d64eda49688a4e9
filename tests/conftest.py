from __future__ import annotations

import gzip
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.formats import make_all, skopeo_available
from tests.support.images import LeakyImage, build_leaky_image
from tests.support.services import engine_available, require

ARCHIVES = Path(__file__).resolve().parents[1] / "testdata" / "archives"
SAMPLE = Path(__file__).resolve().parents[1] / "testdata" / "sample"
SAMPLE_SECRET = (SAMPLE / "demo-secret.txt").read_text().strip()
SAMPLE_ENV_PASSWORD = "leakscan-demo-env-password"
SAMPLE_DEPLOY_TOKEN = "demo-deploy-token-0123456789"


@pytest.fixture(scope="session")
def engine() -> str:
    ok, why = engine_available()
    require("Docker Engine", ok, why)
    return why


@pytest.fixture(scope="session")
def leaky(engine: str, tmp_path_factory: pytest.TempPathFactory) -> LeakyImage:
    return build_leaky_image(tmp_path_factory.mktemp("leaky"))


@pytest.fixture(scope="session")
def leaky_formats(leaky: LeakyImage, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    require("skopeo", skopeo_available(), "skopeo is not installed")
    return make_all(
        leaky.tag,
        tmp_path_factory.mktemp("formats"),
        provenance_args={"BUILD_TOKEN": leaky.values["BUILD_TOKEN"], "DEBUG": "1"},
    )


@pytest.fixture(scope="session")
def sample_archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The committed sample in every format (testdata/make_fixtures.py), plus plain tars of the
    gzipped ones, as docker save writes them."""
    out = tmp_path_factory.mktemp("sample")
    formats = {
        "docker-legacy-gzip": ARCHIVES / "sample-docker-legacy.tar.gz",
        "docker25-gzip": ARCHIVES / "sample-docker25.tar.gz",
        "containerd": ARCHIVES / "sample-containerd.tar",
        "podman-docker-archive": ARCHIVES / "sample-podman-docker-archive.tar.gz",
        "oci-gzip": ARCHIVES / "sample-oci-gzip.tar",
        "oci-zstd": ARCHIVES / "sample-oci-zstd.tar",
    }
    for name in ("docker-legacy", "docker25"):
        plain = out / f"{name}.tar"
        with gzip.open(formats[f"{name}-gzip"]) as src, plain.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        formats[name] = plain
    return formats


@pytest.fixture
def sample_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = {"DEPLOY_TOKEN": SAMPLE_DEPLOY_TOKEN}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    yield env


def pytest_report_header() -> str:
    return f"LEAKSCAN_REQUIRE_SERVICES={os.environ.get('LEAKSCAN_REQUIRE_SERVICES', '0')}"
