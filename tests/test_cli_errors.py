"""Errors as a user meets them: a report file that cannot be written is a usage error naming the
file, found before any scan work; reports are written whole or not at all; one exit-code table in
the code, ``--help`` and the README; hints that fit the error; ``leakscan help``."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scanner.errors import EXIT_CODES, ExitCode, ReportWriteError
from scanner.report.files import check_writable, write_atomically
from tests.test_cli import SAMPLE_ARGS, SAMPLE_ENV, assert_no_canary, run

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_TAR = str(ROOT / "testdata/archives/sample-docker-legacy.tar.gz")


@pytest.mark.parametrize("flag", ["--format", "--output"])
def test_an_unwritable_report_path_is_a_usage_error_before_the_scan(flag: str, tmp_path: Path) -> None:
    target = tmp_path / "no-such-dir" / "x.sarif"
    args = ("--format", f"sarif={target}") if flag == "--format" else ("--format", "sarif", "--output", str(target))
    proc = run(SAMPLE_TAR, *args, *SAMPLE_ARGS, env=SAMPLE_ENV)
    assert proc.returncode == 2, proc.stderr
    assert str(target) in proc.stderr and "does not exist" in proc.stderr
    assert proc.stdout == ""  # nothing was scanned, nothing printed
    assert "finding(s)" not in proc.stderr and "Traceback" not in proc.stderr


def test_a_directory_as_report_path_is_a_usage_error(tmp_path: Path) -> None:
    proc = run(SAMPLE_TAR, "--format", f"json={tmp_path}")
    assert proc.returncode == 2 and f"{tmp_path}: is a directory" in proc.stderr


def test_baseline_output_is_checked_first_too(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "baseline.json"
    proc = run("baseline", SAMPLE_TAR, "--output", str(target))
    assert proc.returncode == 2 and str(target) in proc.stderr and proc.stdout == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_directory_is_named(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o555)
    with pytest.raises(ReportWriteError, match="is not writable"):
        check_writable(ro / "r.json")


def test_a_report_is_written_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    target.write_text("the previous report\n")
    with pytest.raises(ReportWriteError, match=re.escape(str(target))):
        write_atomically(target, "half a report, then a character UTF-8 cannot hold: \udcff")
    assert target.read_text() == "the previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temporary file left behind
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n" and [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_report_files_are_complete_and_nothing_else_is_left(tmp_path: Path) -> None:
    proc = run(SAMPLE_TAR, *SAMPLE_ARGS, "--format", f"json={tmp_path / 'r.json'}", env=SAMPLE_ENV)
    assert proc.returncode == 1, proc.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
    assert (tmp_path / "r.json").read_text().endswith("}\n")
    assert_no_canary((tmp_path / "r.json").read_text())


def _readme_exit_codes() -> dict[int, str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Exit codes") :]
    rows = re.findall(r"^\| (\d) \| (.+?) \|$", section, re.M)
    return {int(code): meaning.replace("`", "") for code, meaning in rows}


def test_one_exit_code_table_in_the_code_the_help_and_the_readme() -> None:
    assert set(EXIT_CODES) == set(ExitCode)
    assert _readme_exit_codes() == {int(c): m for c, m in EXIT_CODES.items()}
    for command in (("--help",), ("scan", "--help"), ("help",)):
        out = " ".join(run(*command).stdout.split())
        for code, meaning in EXIT_CODES.items():
            assert f"{int(code)} {meaning}" in out, (command, code)
    assert "Errors always exit 3" not in run("scan", "--help").stdout


def test_help_command_shows_help_and_not_a_scan() -> None:
    proc = run("help", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 0 and "Usage:" in proc.stdout and "Exit codes" in proc.stdout
    assert "engine" not in proc.stderr
    scan_help = run("help", "scan")
    assert scan_help.returncode == 0 and "--secret" in scan_help.stdout
    unknown = run("help", "nope")
    assert unknown.returncode == 2 and "no command 'nope'" in unknown.stderr


def test_an_image_called_help_is_still_reachable() -> None:
    proc = run("scan", "help", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert proc.returncode == 3 and "cannot reach the Docker engine" in proc.stderr


def test_an_unreadable_secret_file_gets_a_hint_about_reading_it_not_syntax(tmp_path: Path) -> None:
    proc = run(SAMPLE_TAR, "--secret", f"id=s,src={tmp_path / 'missing'}")
    assert proc.returncode == 2
    assert f"cannot read {tmp_path / 'missing'}" in proc.stderr
    hint = proc.stderr.split("hint:", 1)[1]
    assert "readable" in hint and "10001" in hint and "syntax" not in hint and "id=NAME" not in hint
    unset = run(SAMPLE_TAR, "--secret", "id=s,env=LEAKSCAN_TEST_UNSET_VAR")
    assert unset.returncode == 2 and "export LEAKSCAN_TEST_UNSET_VAR" in unset.stderr
    bad = run(SAMPLE_TAR, "--secret", "id=s,nope=1")  # a syntax error still gets the syntax hint
    assert bad.returncode == 2 and "id=NAME,src=PATH" in bad.stderr


@pytest.fixture
def empty_registry() -> Iterator[str]:
    """A loopback registry that knows no image: every manifest is 404."""

    class Registry(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            found = self.path == "/v2/"
            body = b"{}" if found else b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
            self.send_response(200 if found else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_missing_registry_manifest_gets_a_registry_hint(empty_registry: str, tmp_path: Path) -> None:
    proc = run(f"docker://{empty_registry}/team/app:1", env={"DOCKER_CONFIG": str(tmp_path)})
    assert proc.returncode == 3, proc.stderr
    assert "not found" in proc.stderr
    hint = proc.stderr.split("hint:", 1)[1]
    assert "registry" in hint and "tag or digest" in hint and "engine" not in hint
