"""End to end on images built by the real Docker Engine, in every archive format and through the
engine's API.  Every leak vector of testdata/leaky/Dockerfile must be reported in the right layer
with the right status, and no output may contain any planted value."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.detectors import SecretSpec, load_known_values
from scanner.models import ScanReport, keyed
from scanner.report import OutputFormat, renderer_for
from scanner.sources import DaemonSource, open_source
from tests.support.expected import EXPECTED_FILES
from tests.support.formats import FORMATS
from tests.support.images import LeakyImage

pytestmark = pytest.mark.engine

CREATED_BY = {
    1: "COPY aws-credentials",
    2: "/app/.npmrc",
    3: "/tmp/token.txt",
    6: "rm -rf /var/cache/app",
    9: "COPY app.env",
}


TEST_KEY = b"leakscan-test-fingerprint-key"


def options(leaky: LeakyImage) -> ScanOptions:
    specs = [SecretSpec.parse(flag) for flag in leaky.secret_flags]
    specs += [SecretSpec.parse(f"id={name}") for name in leaky.env]
    return ScanOptions(known=tuple(load_known_values(specs, environ=leaky.env)), fingerprint_key=TEST_KEY)


def check_report(report: ScanReport, leaky: LeakyImage) -> None:
    assert report.complete, report.problems
    images = [img for img in report.images if not img.name.startswith("(")]
    assert len(images) == 1
    image = images[0]
    assert len(image.layers) == 10
    for index, text in CREATED_BY.items():
        assert text in (image.layers[index].created_by or ""), (index, image.layers[index].created_by)
    got = {
        (f.layer_index, f.path, f.rule_id, f.secret_id, f.encoding, f.status, f.hidden_by_layer)
        for f in image.findings
        if f.path
    }
    missing = EXPECTED_FILES - got
    assert not missing, f"leak vectors not reported: {sorted(missing, key=str)}"
    link = [f for f in image.findings if f.path == "app/npmrc.hex.link"]
    assert link and all(f.link_target == "app/npmrc.hex" for f in link)
    fields = {(f.field, f.secret_id) for f in image.metadata_findings}
    assert ("config.Env[1]", "ENV_SECRET") in fields
    assert ('config.Labels["org.example.registry-auth"]', "LABEL_SECRET") in fields
    assert any(
        fld and fld.startswith("history[") and fld.endswith("created_by") and sid == "BUILD_TOKEN"
        for fld, sid in fields
    )
    prints = {f.secret_id: f.secret_fingerprint for f in image.findings if f.secret_id}
    import hashlib

    assert prints["token"] == keyed(TEST_KEY, hashlib.sha256(leaky.values["token"].encode()).hexdigest())
    for layer in image.layers:  # nothing skipped, every file counted
        assert layer.scanned and not layer.skips
    assert image.layers[0].files_scanned >= 1


def assert_no_secret(report: ScanReport, leaky: LeakyImage) -> None:
    for fmt in OutputFormat:
        text = renderer_for(fmt).render(report)
        for value in leaky.all_values():
            assert value not in text, f"a planted secret appears in the {fmt.value} report"
        assert "<redacted>" in text or fmt is OutputFormat.JSON or "RUN |3" not in text


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_every_leak_vector_in_every_archive_format(fmt: str, leaky: LeakyImage, leaky_formats: dict[str, Path]) -> None:
    report = scan_image(open_source(str(leaky_formats[fmt])), options(leaky))
    assert report.archive_format == FORMATS[fmt][1]
    check_report(report, leaky)
    assert_no_secret(report, leaky)
    if fmt == "containerd":
        fields = {f.field or "" for f in report.images[0].metadata_findings if f.secret_id == "BUILD_TOKEN"}
        assert any(fld.startswith("attestation[") for fld in fields)


def test_daemon_source_through_the_sdk(leaky: LeakyImage) -> None:
    report = scan_image(DaemonSource(leaky.tag), options(leaky))
    assert report.source_kind == "docker-daemon"
    check_report(report, leaky)
    assert_no_secret(report, leaky)


def test_a_daemon_rescan_leaves_every_cached_layer_unread(
    leaky: LeakyImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Engine 20.10 exports <id>/layer.tar, names without a digest, in a stream that cannot be read
    twice.  The engine's own diff_ids (inspect) find every layer in the cache, so a rescan takes
    their results without walking or hashing them, and the config in the export must be the image
    the engine vouched for."""
    from scanner.layers import streams
    from scanner.layers.walk import LayerWalker

    opts = dataclasses.replace(options(leaky), cache_dir=tmp_path)
    first = scan_image(DaemonSource(leaky.tag), opts)
    assert first.cached_layers == 0
    calls: list[str] = []
    monkeypatch.setattr(LayerWalker, "walk", lambda *a, **kw: calls.append("walk"))
    monkeypatch.setattr(streams.HashingReader, "drain", lambda *a: calls.append("hash"))
    second = scan_image(DaemonSource(leaky.tag), opts)
    assert calls == [] and second.cached_layers == 10
    check_report(second, leaky)
    assert sorted(map(_key, second.findings)) == sorted(map(_key, first.findings))
    # an export that is not the inspected image (a tag moved in between): its layers are not
    # taken from the cache, and the scan says so
    real = DaemonSource.vouched_image
    monkeypatch.setattr(
        DaemonSource,
        "vouched_image",
        lambda self: ("sha256:" + "0" * 64, real(self)[1]),  # type: ignore[index]
    )
    moved = scan_image(DaemonSource(leaky.tag), opts)
    assert not moved.complete
    assert any("not the image the engine vouched for" in p for p in moved.problems)


def _key(f):  # type: ignore[no-untyped-def]
    return (f.layer_index or -1, f.path or "", f.field or "", f.rule_id, f.secret_fingerprint, f.status)


def test_daemon_missing_image_is_a_clear_error(engine: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", "leakscan-no-such-image:404"], capture_output=True, text=True
    )
    assert proc.returncode == 3
    assert "not found in the engine" in proc.stderr and "Traceback" not in proc.stderr


def test_cli_against_the_engine_with_the_builds_own_secret_flags(leaky: LeakyImage, tmp_path: Path) -> None:
    args = [a for flag in leaky.secret_flags for a in ("--secret", flag)]
    args += [a for name in leaky.env for a in ("--secret", f"id={name}")]
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", leaky.tag, *args, "--format", "json", "-o", str(out)],
        capture_output=True,
        text=True,
        env={**os.environ, **leaky.env},
        timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    text = out.read_text()
    for value in leaky.all_values():
        assert value not in text and value not in proc.stderr and value not in proc.stdout
    doc = json.loads(text)
    assert doc["source"]["kind"] == "docker-daemon"
    assert doc["summary"]["complete"] is True
    table = subprocess.run(
        [sys.executable, "-m", "scanner", leaky.tag, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **leaky.env},
        timeout=300,
    )
    assert table.returncode == 1
    for value in leaky.all_values():
        assert value not in table.stdout and value not in table.stderr


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_layers_walked_at_once_give_the_serial_report(
    fmt: str, leaky: LeakyImage, leaky_formats: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--jobs 1, --jobs 4 as the sizes rule picks, and every layer at once (the rule overridden:
    this image's base layer holds most of its bytes): the same report, byte for byte."""
    import scanner.layers.fanout as fanout  # collect imports walkers from it when layers are walked

    def report_text(jobs: int) -> str:
        report = scan_image(open_source(str(leaky_formats[fmt])), dataclasses.replace(options(leaky), jobs=jobs))
        doc = renderer_for(OutputFormat.JSON).render(report)
        return "\n".join(line for line in doc.splitlines() if '"duration_s"' not in line and '"started_at"' not in line)

    serial = report_text(1)
    assert report_text(4) == serial
    at_once: list[int] = []
    monkeypatch.setattr(fanout, "walkers", lambda sizes, jobs: at_once.append(len(sizes)) or min(jobs, len(sizes)))
    assert report_text(4) == serial
    assert at_once == ([] if fmt == "docker-save-gzip" else [10])  # a whole-compressed tarball is a stream
