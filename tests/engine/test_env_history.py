"""An ENV step's value stays in the image history after a later step clears the variable: the
config's Env then shows ``DB_PASSWORD=`` and only the history holds the secret.  Built by the real
engine, with BuildKit and with the classic builder (their history entries differ in form)."""

from __future__ import annotations

import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.report import OutputFormat, renderer_for
from scanner.report.remediation import origin
from scanner.sources import DaemonSource
from tests.support.images import ensure_base_image
from tests.support.services import docker_cli

pytestmark = pytest.mark.engine

DOCKERFILE = """FROM leakscan-test-base:1
ARG DBPW
ENV DB_PASSWORD=$DBPW
RUN echo ok > /ok
ENV DB_PASSWORD=
"""


@pytest.mark.parametrize("buildkit", ["1", "0"])
def test_a_secret_env_cleared_later_is_reported_from_the_history(buildkit: str, engine: str, tmp_path: Path) -> None:
    ensure_base_image()
    value = "pw-" + secrets.token_urlsafe(18)
    (tmp_path / "Dockerfile").write_text(DOCKERFILE)
    tag = f"leakscan-test-env-history-{buildkit}:1"
    build = ["build", "--network", "none", "-q", "-t", tag, "--build-arg", f"DBPW={value}", str(tmp_path)]
    docker_cli(*build, env={"DOCKER_BUILDKIT": buildkit})
    report = scan_image(DaemonSource(tag), ScanOptions())
    assert report.complete, report.problems
    (image,) = report.images
    history = [f for f in image.metadata_findings if (f.field or "").startswith("history[")]
    assert [(f.rule_id, f.severity.value) for f in history] == [("metadata-secret-name", "high")]
    assert origin(history[0]) == "env"  # its remedy: out of ENV, not "use --secret for build arguments"
    assert not [f for f in image.metadata_findings if (f.field or "").startswith("config.Env")]  # cleared there
    for fmt in OutputFormat:
        assert value not in renderer_for(fmt).render(report), fmt
    gate = subprocess.run(
        [sys.executable, "-m", "scanner", tag, "--no-cache", "--fail-on", "high", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gate.returncode == 1, gate.stderr[-2000:]
    assert value not in gate.stdout + gate.stderr
