"""--jobs over layers: the layers of a tarball on disk or an OCI layout walked several at once give
the report of the serial walk, byte for byte, failures included, with and without the cache."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from scanner import ScanOptions, scan_image
from scanner.errors import LeakscanError
from scanner.layers.fanout import Fanout
from scanner.report import OutputFormat, renderer_for
from scanner.sources import OciLayoutSource, TarballSource
from tests.conftest import ARCHIVES
from tests.support.tars import compress, docker_archive, layer_tar, sha
from tests.test_parallel import TOKEN, busy_layer

AWS = b"AKIA" + b"QWERTYUIOPASDFGH"


def layers() -> list[bytes]:
    """Five layers that see each other: a file deleted, overwritten and hard-linked by later ones."""
    return [
        compress(busy_layer(), "gzip"),
        compress(
            layer_tar([("etc/app.conf", b"aws_access_key_id=" + AWS + b"\n"), ("tmp/t", b"token=" + TOKEN)]), "zstd"
        ),
        layer_tar([("etc/.wh.app.conf", b""), ("app/.env", b"GITHUB_TOKEN=\n")]),
        compress(layer_tar([("srv/link", ("hard", "tmp/t")), ("srv/k.txt", b"password=" + TOKEN)]), "gzip"),
        layer_tar([("app/.wh..wh..opq", b""), ("app/new", b"x = 1\n")]),
    ]


def oci_layout(out: Path, blobs: list[bytes]) -> Path:
    """An OCI image layout directory around the given layer blobs."""
    (out / "blobs" / "sha256").mkdir(parents=True)

    def put(data: bytes) -> str:
        (out / "blobs" / "sha256" / sha(data)[7:]).write_bytes(data)
        return sha(data)

    config = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha(_raw(b)) for b in blobs]},
        "history": [{"created_by": f"step {i}"} for i in range(len(blobs))],
    }
    cfg = json.dumps(config).encode()
    layer_type = "application/vnd.oci.image.layer.v1.tar"
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(cfg), "size": len(cfg)},
        "layers": [{"mediaType": layer_type + _suffix(b), "digest": put(b), "size": len(b)} for b in blobs],
    }
    body = json.dumps(manifest).encode()
    index = {
        "schemaVersion": 2,
        "manifests": [
            {
                "mediaType": manifest["mediaType"],
                "digest": put(body),
                "size": len(body),
                "annotations": {"org.opencontainers.image.ref.name": "1"},
            }
        ],
    }
    (out / "index.json").write_text(json.dumps(index))
    (out / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return out


def _raw(blob: bytes) -> bytes:
    import zstandard

    if blob[:2] == b"\x1f\x8b":
        return gzip.decompress(blob)
    if blob[:4] == b"\x28\xb5\x2f\xfd":
        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return blob


def _suffix(blob: bytes) -> str:
    return "+gzip" if blob[:2] == b"\x1f\x8b" else "+zstd" if blob[:4] == b"\x28\xb5\x2f\xfd" else ""


class Spy:
    """How many layers each fanout run took, and how many processes it had."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.runs: list[tuple[int, int]] = []
        run = Fanout.run

        def spied(fanout: Fanout, tasks: list[Any]) -> list[Any]:
            out = run(fanout, tasks)
            self.runs.append((len(tasks), len(fanout.pool._processes or {}) if fanout.pool else 0))
            return out

        monkeypatch.setattr(Fanout, "run", spied)


def report_text(source: Any, jobs: int, **options: Any) -> str:
    report = scan_image(source, ScanOptions(jobs=jobs, **options))
    doc = renderer_for(OutputFormat.JSON).render(report)
    return "\n".join(line for line in doc.splitlines() if '"duration_s"' not in line and '"started_at"' not in line)


def test_layers_walked_at_once_give_the_serial_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    archive = tmp_path / "five.tar"
    archive.write_bytes(docker_archive(layers()))
    serial = report_text(TarballSource(str(archive)), 1)
    for needle in ('"deleted"', '"overwritten"', '"srv/link"', '"lib/app.jar!/conf/app.properties"'):
        assert needle in serial, needle
    assert spy.runs == []  # --jobs 1: no fanout
    for jobs in (2, 4):
        assert report_text(TarballSource(str(archive)), jobs) == serial
    assert spy.runs == [(5, 2), (5, 4)]  # every layer went to the walkers, that many at once


def test_an_oci_layout_walked_at_once_gives_the_serial_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    layout = oci_layout(tmp_path / "oci", layers())
    serial = report_text(OciLayoutSource(str(layout)), 1)
    assert '"deleted"' in serial and '"scanned": false' not in serial
    assert report_text(OciLayoutSource(str(layout)), 3) == serial
    assert spy.runs == [(5, 3)]


def test_a_corrupt_layer_is_reported_as_the_serial_walk_reports_it(tmp_path: Path) -> None:
    blobs = layers()
    blobs[1] = blobs[1][: len(blobs[1]) // 2]  # a zstd layer cut in the middle
    blobs[3] = blobs[3][: len(blobs[3]) - 40]  # a gzip layer without its end
    archive = tmp_path / "cut.tar"
    archive.write_bytes(docker_archive(blobs))
    serial = report_text(TarballSource(str(archive)), 1)
    assert serial.count('"scanned": false') == 2
    assert report_text(TarballSource(str(archive)), 2) == report_text(TarballSource(str(archive)), 4) == serial


def outcome(source: Any, jobs: int) -> str:
    try:
        return report_text(source, jobs)
    except LeakscanError as exc:
        return f"{type(exc).__name__}: {exc}"


def test_an_archive_cut_inside_a_layer_ends_where_the_serial_walk_ends(tmp_path: Path) -> None:
    whole = docker_archive(layers())
    ends = []
    for cut in (len(whole) // 4, len(whole) // 3, len(whole) // 2, len(whole) * 3 // 4):
        archive = tmp_path / f"cut{cut}.tar"
        archive.write_bytes(whole[:cut])
        serial = outcome(TarballSource(str(archive)), 1)
        ends.append("could not be read to its end" in serial)
        assert outcome(TarballSource(str(archive)), 3) == serial, cut
    assert all(ends)


def test_cached_layers_are_not_walked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = tmp_path / "legacy.tar"  # <id>/layer.tar names: hashed, looked up, walked after a miss
    with gzip.open(ARCHIVES / "sample-docker-legacy.tar.gz") as src, legacy.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    blobs = tmp_path / "blobs.tar"  # digest names: verified against the cache's result
    blobs.write_bytes(docker_archive(layers()))
    for archive in (legacy, blobs):
        serial = [
            report_text(TarballSource(str(archive)), 1, cache_dir=tmp_path / "c1", fingerprint_key=b"k")
            for _ in range(2)
        ]
        spy = Spy(monkeypatch)
        fanned = [
            report_text(TarballSource(str(archive)), 2, cache_dir=tmp_path / "c2", fingerprint_key=b"k")
            for _ in range(2)
        ]
        assert fanned == serial
        assert '"cached_layers": 0' in serial[0] and '"cached_layers": 0' not in serial[1]
        assert spy.runs[0][0] >= 2  # the first scan fanned out
        monkeypatch.undo()
