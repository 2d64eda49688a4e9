"""Leaks inside files, on an image built by the real engine: archives in archives, compressed
files, UTF-16, base64 in kubeconfigs and Kubernetes Secrets, binaries, bytecode, SQLite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.detectors import SecretSpec, load_known_values
from scanner.models import Status
from scanner.report import OutputFormat, renderer_for
from scanner.sources import DaemonSource, open_source
from tests.support.images import DeepImage, build_deep_image
from tests.support.services import docker_cli, require

pytestmark = pytest.mark.engine

# (layer, path, rule_id, encoding, status)
EXPECTED = {
    (1, "opt/app/app.war!/WEB-INF/lib/app.jar!/BOOT-INF/classes/application.yml", "github-token", None, Status.PRESENT),
    (2, "opt/bundle.tgz!/bundle.tar!/bundle/.env", "slack-bot-token", None, Status.PRESENT),
    (3, "var/log/build.log.gz!/build.log", "npm-token", None, Status.PRESENT),
    (3, "var/log/dump.sql.bz2!/dump.sql", "gitlab-runner-token", None, Status.PRESENT),
    (3, "var/log/notes.txt.xz!/notes.txt", "huggingface-token", None, Status.PRESENT),
    (3, "var/log/trace.zst!/trace", "openai-key", None, Status.PRESENT),
    (3, "var/log/app-1.0-py3-none-any.whl!/app/settings.py", "pypi-token", None, Status.PRESENT),
    (4, "root/creds.txt", "known-secret", "raw", Status.PRESENT),
    (5, "root/.kube/config", "kubernetes-client-key-data", None, Status.PRESENT),
    (5, "root/.kube/config", "private-key-rsa", "base64", Status.PRESENT),
    (5, "root/.kube/config", "kubernetes-token", None, Status.PRESENT),
    (6, "etc/k8s/secret.yaml", "github-token", "base64", Status.PRESENT),
    (7, "usr/local/bin/tool", "gitlab-pat", None, Status.PRESENT),
    (8, "opt/app/settings.cpython-311.pyc", "dockerhub-pat", None, Status.PRESENT),
    (8, "opt/app/app.db", "stripe-live-key", None, Status.PRESENT),
    (9, "tmp/old.zip!/sendgrid.txt", "sendgrid-key", None, Status.DELETED),
}


@pytest.fixture(scope="module")
def deep(engine: str, tmp_path_factory: pytest.TempPathFactory) -> DeepImage:
    require("gcc", shutil.which("gcc") is not None, "gcc is not installed")
    return build_deep_image(tmp_path_factory.mktemp("deep"))


def _options(deep: DeepImage) -> ScanOptions:
    env = {"UTF16_PASSWORD": deep.values["utf16_password"]}
    return ScanOptions(known=tuple(load_known_values([SecretSpec.parse("id=UTF16_PASSWORD")], environ=env)))


def _check(report, deep: DeepImage) -> None:  # type: ignore[no-untyped-def]
    assert report.complete, report.problems
    (image,) = report.images
    got = {(f.layer_index, f.path, f.rule_id, f.encoding, f.status) for f in image.findings if f.path}
    missing = EXPECTED - got
    assert not missing, f"not found: {sorted(missing, key=str)}"
    for fmt in OutputFormat:
        text = renderer_for(fmt).render(report)
        for value in deep.values.values():
            assert value not in text


def test_inside_files_through_the_engine_api(deep: DeepImage) -> None:
    _check(scan_image(DaemonSource(deep.tag), _options(deep)), deep)


def test_inside_files_from_a_saved_archive(deep: DeepImage, tmp_path: Path) -> None:
    archive = tmp_path / "deep.tar"
    docker_cli("save", "-o", str(archive), deep.tag)
    _check(scan_image(open_source(str(archive)), _options(deep)), deep)
