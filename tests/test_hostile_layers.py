"""Malformed layers a pushed image can carry: duplicate members, link loops, links out of the image,
special files and escaping names. Each is reported or contained; nothing is written outside
leakscan's own temporary space; a forced internal error while a secret is being scanned prints
neither the secret nor a traceback, on the command line and in the service."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from scanner import ScanOptions, scan_image
from scanner.cli import main
from scanner.models import Status
from scanner.sources import TarballSource
from tests.support.tars import docker_archive, layer_tar

SECRET = b"hostile-canary-" + b"Xq9" * 8
TOKEN = b"ghp_" + b"Zq8w" * 9


def scan_layers(tmp_path: Path, *layers: bytes) -> object:
    path = tmp_path / "image.tar"
    path.write_bytes(docker_archive(list(layers)))
    return scan_image(TarballSource(str(path)), ScanOptions())


def test_a_duplicate_member_keeps_the_first_copy_reported_as_overwritten(tmp_path: Path) -> None:
    layer = layer_tar([("app/.env", b"GITHUB_TOKEN=" + TOKEN + b"\n"), ("app/.env", b"GITHUB_TOKEN=\n")])
    report = scan_layers(tmp_path, layer)
    [finding] = [f for f in report.findings if f.rule_id == "github-token"]  # type: ignore[attr-defined]
    assert finding.path == "app/.env" and finding.status is Status.OVERWRITTEN and finding.hidden_by_layer == 0


def test_link_loops_and_links_out_of_the_image_end_and_follow_nothing(tmp_path: Path) -> None:
    layer = layer_tar(
        [
            ("a", ("sym", "b")),
            ("b", ("sym", "a")),  # a symlink loop
            ("self", ("sym", "self")),
            ("h1", ("hard", "h2")),  # hard links to each other: no file behind them
            ("h2", ("hard", "h1")),
            ("up", ("sym", "../../../../etc/shadow")),
            ("abs", ("sym", "/proc/self/environ")),
            ("out", ("hard", "../../etc/passwd")),
            ("fifo", "fifo"),
            ("real", b"TOKEN=" + TOKEN + b"\n"),
        ]
    )
    report = scan_layers(tmp_path, layer)
    assert report.complete  # type: ignore[attr-defined]
    assert {f.path for f in report.findings} == {"real"}  # type: ignore[attr-defined]


def test_nothing_is_written_outside_leakscans_temporary_space(tmp_path: Path) -> None:
    """Escaping names and links, run with the working directory and TMPDIR inside tmp_path."""
    target = tmp_path / "escape-target"
    work, tmp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    tmp.mkdir()
    rel = os.path.relpath(target, work)
    layer = layer_tar(
        [
            (f"../../../../../../..{target}", SECRET),
            (rel, SECRET),
            (str(target), SECRET),
            ("link", ("sym", str(target))),
            ("link/written-through", SECRET),
            ("big.zip", b"PK\x03\x04" + bytes(100)),  # a zip: may spill to a temporary file
        ]
    )
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive([layer]))
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", str(archive), "--no-cache", "--format", "json"],
        cwd=work,
        env={**os.environ, "TMPDIR": str(tmp), "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode in (0, 1), proc.stderr[-1000:]
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert list(work.iterdir()) == [] and list(tmp.iterdir()) == []  # temporary files are cleaned up


def test_a_forced_error_while_scanning_a_secret_prints_neither_it_nor_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.detectors import ContentScanner

    def explode(self: object, data: bytes, *args: object, **kwargs: object) -> object:
        if SECRET in bytes(data):
            raise ValueError(f"cannot handle {bytes(data)!r}")  # a message that holds the secret
        return original(self, data, *args, **kwargs)

    original = ContentScanner._matches  # every byte any detector sees goes through it
    monkeypatch.setattr(ContentScanner, "_matches", explode)
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive([layer_tar([("etc/app.conf", b"password=" + SECRET)])]))
    monkeypatch.setenv("S", SECRET.decode())
    result = CliRunner().invoke(main, [str(archive), "--no-cache", "--verbose", "--secret", "id=S"])
    out = result.output + (result.stderr if result.stderr_bytes is not None else "")
    assert result.exit_code == 3, out  # the layer could not be scanned: incomplete, never clean
    assert "ValueError (details withheld" in out and "Traceback" not in out
    assert SECRET.decode() not in out


def test_a_service_job_that_hits_an_internal_error_logs_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import scanner.service.jobs as jobs
    from scanner.service.config import RegistryEntry, ServiceConfig
    from scanner.service.events import PushEvent
    from scanner.service.sqlite_store import SqliteStore

    def explode(*args: object, **kwargs: object) -> object:
        raise RuntimeError(f"while reading {SECRET!r}")

    monkeypatch.setattr(jobs, "scan_image", explode)
    monkeypatch.setattr(jobs.RegistrySource, "children", lambda self: [])  # no registry here: not an index
    reg = "127.0.0.1:5000"
    config = ServiceConfig(data_dir=tmp_path, tokens=("t",), registries={reg: RegistryEntry(reg)})
    store = SqliteStore(config.db_path)
    job, _ = store.submit(PushEvent(reg, "a/b", "sha256:" + "1" * 64, None), "distribution")
    with caplog.at_level(logging.DEBUG):
        jobs.Runner(config, store).execute(store.claim("w", 30), "w")  # type: ignore[arg-type]
    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error == "internal error (RuntimeError)"
    assert "internal error RuntimeError" in caplog.text and "explode" in caplog.text  # where, not what
    assert SECRET.decode() not in caplog.text and SECRET.decode() not in str(failed)
