"""The command as a user runs it: exit codes, one-line errors, and no secret in any output."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_ENV_PASSWORD, SAMPLE_SECRET
from tests.support.report_schema import validate_json_reports
from tests.support.tars import docker_archive, layer_tar


def run(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", *args],
        capture_output=True,
        input=stdin,
        env={**os.environ, **(env or {})},
        timeout=300,
        cwd=cwd,
    )
    out = subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())
    validate_json_reports(args, out.stdout, cwd)  # every JSON report against docs/report.schema.json
    return out


SAMPLE_ARGS = ("--secret", f"id=demo,src={SAMPLE / 'demo-secret.txt'}", "--secret", "id=DEPLOY_TOKEN")
SAMPLE_ENV = {"DEPLOY_TOKEN": SAMPLE_DEPLOY_TOKEN}
CANARIES = (SAMPLE_SECRET, SAMPLE_DEPLOY_TOKEN, SAMPLE_ENV_PASSWORD, "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")


def assert_no_canary(*texts: str) -> None:
    for text in texts:
        for canary in CANARIES:
            assert canary not in text, "a planted secret appears in the output"


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_findings_exit_1_and_no_secret_in_any_format(fmt: str, sample_archives: dict[str, Path]) -> None:
    proc = run(str(sample_archives["containerd"]), "--format", fmt, *SAMPLE_ARGS, env=SAMPLE_ENV)
    assert proc.returncode == 1, proc.stderr
    assert_no_canary(proc.stdout, proc.stderr)
    if fmt == "json":
        doc = json.loads(proc.stdout)
        assert doc["schema_version"] == "2.0"
        assert doc["summary"]["complete"] is True
        assert doc["summary"]["by_severity"]["critical"] >= 3
    else:
        assert "deleted in layer 3" in proc.stdout


def test_output_file_and_stdin(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    data = sample_archives["docker-legacy"].read_bytes()
    proc = run("-", "--format", "json", "--output", str(out), *SAMPLE_ARGS, env=SAMPLE_ENV, stdin=data)
    assert proc.returncode == 1, proc.stderr
    text = out.read_text()
    assert_no_canary(text, proc.stdout, proc.stderr)
    assert json.loads(text)["images"][0]["layers"][2]["findings"]


def test_clean_image_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "clean.tar"
    path.write_bytes(docker_archive([layer_tar([("etc/hostname", b"box\n")])]))
    proc = run(str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 finding(s)" in proc.stdout and "complete" in proc.stdout


def test_incomplete_scan_exits_3_even_with_findings_and_allow_incomplete_reports_them(tmp_path: Path) -> None:
    path = tmp_path / "partial.tar"
    path.write_bytes(docker_archive([layer_tar([("a", b"x")]), layer_tar([("b", b"ghp_" + b"a1B2" * 9)])], drop={0}))
    proc = run(str(path))
    assert proc.returncode == 3 and "INCOMPLETE" in proc.stdout
    assert run(str(path), "--allow-incomplete").returncode == 1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("/nonexistent/image.tar",), 3, "no such file"),
        (("docker-archive:/nonexistent.tar",), 3, "no such file"),
        ((str(SAMPLE / "Dockerfile"),), 3, "not a tar archive"),
        (("x.tar", "--secret", "id=a,bogus=1"), 2, "unknown field"),
        (("x.tar", "--secret", "id=NOPE_NOT_SET_XYZ"), 2, "is not set"),
        (("x.tar", "--format", "yaml"), 2, "unknown format"),
        (("docker://registry.invalid/app:1",), 3, "cannot be reached over HTTPS"),
        (("docker://registry.invalid/App:1",), 2, "not a valid repository name"),
    ],
)
def test_errors_are_one_clear_line_without_traceback(args: tuple[str, ...], code: int, message: str) -> None:
    proc = run(*args, env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == code, proc.stderr
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unreachable_engine_is_exit_3() -> None:
    proc = run("some/image:tag", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 3
    assert "cannot reach the Docker engine" in proc.stderr and "Traceback" not in proc.stderr


def test_secret_file_errors_do_not_echo_values(tmp_path: Path) -> None:
    short = tmp_path / "short"
    short.write_text("abc")
    proc = run("x.tar", "--secret", f"id=s,src={short}")
    assert proc.returncode == 2 and "abc" not in proc.stderr.replace(str(tmp_path), "")


def test_help_and_version() -> None:
    assert "Exit codes" in run("--help").stdout
    assert run("--version").stdout.startswith("leakscan, version")


@pytest.mark.parametrize("fmt", ["table", "json"])
def test_build_arg_values_are_redacted_even_without_any_secret_flag(fmt: str, sample_archives: dict[str, Path]) -> None:
    proc = run(str(sample_archives["docker-legacy"]), "--format", fmt)
    assert proc.returncode == 1
    assert SAMPLE_DEPLOY_TOKEN not in proc.stdout and SAMPLE_ENV_PASSWORD not in proc.stdout
    if fmt == "json":  # created_by kept whole, its values masked
        assert "RUN |1 DEPLOY_TOKEN=<redacted> /bin/sh -c" in proc.stdout
    else:  # the instruction, not the |N ARG=... prefix
        assert "build argument DEPLOY_TOKEN" in proc.stdout and "RUN rm /tmp/demo-token" in proc.stdout
        assert "RUN |1" not in proc.stdout


def test_verbose_logs_skips_and_never_a_secret(tmp_path: Path) -> None:
    secret = b"verbose-canary-" + b"Q7" * 12
    corrupt = gzip.compress(b"token=" + secret + b"\n" * 5000)[:-20] + bytes(20)
    layer = layer_tar([("etc/app.gz", corrupt), ("etc/secret.txt", b"value=" + secret)])
    path = tmp_path / "v.tar"
    path.write_bytes(docker_archive([layer]))
    proc = run(str(path), "--verbose", "--secret", "id=S", "--format", "json", env={"S": secret.decode()})
    assert "skipped etc/app.gz" in proc.stderr and "could not be read in full" in proc.stderr
    assert secret.decode() not in proc.stderr and secret.decode() not in proc.stdout
    assert proc.returncode == 1
