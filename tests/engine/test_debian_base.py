"""The stock Debian base that CI builds (scripts/python-base: Debian bookworm minbase with python3,
by mmdebstrap) passes the `--fail-on high` gate, and what a build adds on top of it does not: a
token in an app directory, and one appended to a file a Debian package installed (changed after
installation: never downgraded, and said so).  Real engine, real dpkg records."""

from __future__ import annotations

import os
import random
import shutil
import string
import subprocess
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.models import Severity
from scanner.sources import open_source
from tests.support.services import docker_cli, require

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base(engine: str) -> str:
    require("mmdebstrap", shutil.which("mmdebstrap") is not None, "needed to make the Debian base image")
    proc = subprocess.run([str(ROOT / "scripts" / "python-base")], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"scripts/python-base failed: {proc.stderr[-2000:]}"
    return proc.stdout.strip().splitlines()[-1]


def test_the_stock_debian_base_has_no_high_or_critical_finding(base: str) -> None:
    report = scan_image(open_source(f"docker-daemon:{base}"))
    assert report.complete, report.problems
    loud = [(f.rule_id, f.path or f.field, f.line) for f in report.findings if f.severity.rank >= Severity.HIGH.rank]
    assert loud == []
    # what is left is reported, with why it is quiet: a package that ships it, a documented example
    for f in report.findings:
        if f.severity is Severity.LOW and f.downgraded_from is not None:
            assert f.downgrade_reason


def test_what_a_build_adds_on_the_base_still_fails_the_gate(base: str, tmp_path: Path) -> None:
    rng = random.Random(os.urandom(8))
    token = "ghp_" + "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))
    (tmp_path / "app.env").write_text(f"GITHUB_TOKEN={token}\n")
    (tmp_path / "Dockerfile").write_text(
        f"FROM {base}\nCOPY app.env /srv/app/.env\n"
        # os.py is Debian's (libpython3.11-minimal): changed after dpkg installed it
        f"RUN echo 'DEPLOY_TOKEN = \"{token}\"' >> /usr/lib/python3.11/os.py\n"
    )
    tag = "leakscan-test-debian-leak:1"
    docker_cli("build", "--network", "none", "-q", "-t", tag, str(tmp_path))
    report = scan_image(open_source(f"docker-daemon:{tag}"), ScanOptions())
    assert report.complete, report.problems
    found = {f.path: f for f in report.findings if f.path and f.rule_id == "github-token"}
    assert found["srv/app/.env"].severity is Severity.HIGH and found["srv/app/.env"].package is None
    changed = found["usr/lib/python3.11/os.py"]
    assert changed.severity is Severity.HIGH and changed.downgraded_from is None
    assert changed.package is not None and changed.package.manager == "dpkg"
    assert changed.package.state == "modified", changed.package
    assert "changed after Debian package" in changed.description
