"""--jobs over layers: the layers of a tarball on disk or an OCI layout walked several at once give
the report of the serial walk, byte for byte, failures included, with and without the cache."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from scanner import ScanOptions, scan_image
from scanner.errors import LeakscanError
from scanner.layers.fanout import Fanout, walkers
from scanner.report import OutputFormat, renderer_for
from scanner.sources import OciLayoutSource, TarballSource
from tests.support.registry import layout_index
from tests.support.tars import compress, docker_archive, layer_tar, sha
from tests.test_parallel import TOKEN, busy_layer

AWS = b"AKIA" + b"QWERTYUIOPASDFGH"


def _padded(entries: list[Any]) -> bytes:
    """A layer about as large as busy_layer's (3 MiB that no compression shrinks): layers of like
    size, which the fanout takes (see test_walkers)."""
    return layer_tar([*entries, ("pad/r.bin", os.urandom(3 << 20))])


def layers() -> list[bytes]:
    """Five layers that see each other: a file deleted, overwritten and hard-linked by later ones."""
    return [
        compress(busy_layer(), "gzip"),
        compress(
            _padded([("etc/app.conf", b"aws_access_key_id=" + AWS + b"\n"), ("tmp/t", b"token=" + TOKEN)]), "zstd"
        ),
        _padded([("etc/.wh.app.conf", b""), ("app/.env", b"GITHUB_TOKEN=\n")]),
        compress(_padded([("srv/link", ("hard", "tmp/t")), ("srv/k.txt", b"password=" + TOKEN)]), "gzip"),
        _padded([("app/.wh..wh..opq", b""), ("app/new", b"x = 1\n")]),
    ]


def legacy_archive(blobs: list[bytes]) -> bytes:
    """docker save before Engine 25: <id>/layer.tar members, which name no digest."""
    raw = [_raw(b) for b in blobs]
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [sha(r) for r in raw]}}
    ).encode()
    members = {f"{sha(config)[7:]}.json": config}
    names = [f"{k:064x}/layer.tar" for k in range(1, len(raw) + 1)]
    members.update(zip(names, raw, strict=True))
    members["manifest.json"] = json.dumps([{"Config": f"{sha(config)[7:]}.json", "Layers": names}]).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


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
    layout_index(out, manifest["mediaType"], put(body), len(body), "1")
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

        def spied(fanout: Fanout, tasks: list[Any], at_once: int) -> list[Any]:
            out = run(fanout, tasks, at_once)
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
    for jobs in (2, 3, 8):
        assert report_text(TarballSource(str(archive)), jobs) == serial
    assert spy.runs == [(5, 2), (5, 3), (5, 5)]  # every layer went to the walkers, that many at once


def test_an_oci_layout_walked_at_once_gives_the_serial_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(monkeypatch)
    layout = oci_layout(tmp_path / "oci", layers())
    serial = report_text(OciLayoutSource(str(layout)), 1)
    assert '"deleted"' in serial and '"scanned": false' not in serial
    assert report_text(OciLayoutSource(str(layout)), 3) == serial
    assert spy.runs == [(5, 3)]


def test_a_corrupt_layer_is_reported_as_the_serial_walk_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = layers()
    blobs[1] = blobs[1][: len(blobs[1]) // 2]  # a zstd layer cut in the middle
    blobs[3] = blobs[3][: len(blobs[3]) - 40]  # a gzip layer without its end
    archive = tmp_path / "cut.tar"
    archive.write_bytes(docker_archive(blobs))
    spy = Spy(monkeypatch)
    serial = report_text(TarballSource(str(archive)), 1)
    assert serial.count('"scanned": false') == 2
    assert report_text(TarballSource(str(archive)), 2) == report_text(TarballSource(str(archive)), 4) == serial
    assert len(spy.runs) == 2


def outcome(source: Any, jobs: int) -> str:
    try:
        return report_text(source, jobs)
    except LeakscanError as exc:
        return f"{type(exc).__name__}: {exc}"


def test_an_archive_cut_inside_a_layer_ends_where_the_serial_walk_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = Spy(monkeypatch)
    whole = docker_archive(layers())
    ends = []
    for cut in (len(whole) // 4, len(whole) // 3, len(whole) // 2, len(whole) * 3 // 4):
        archive = tmp_path / f"cut{cut}.tar"
        archive.write_bytes(whole[:cut])
        serial = outcome(TarballSource(str(archive)), 1)
        ends.append("could not be read to its end" in serial)
        assert outcome(TarballSource(str(archive)), 3) == serial, cut
    assert all(ends) and spy.runs  # some of the cut archives fanned out


def test_cached_layers_are_not_walked_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    legacy = tmp_path / "legacy.tar"  # <id>/layer.tar names: hashed, looked up, walked after a miss
    legacy.write_bytes(legacy_archive(layers()))
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
        assert '"cached_layers": 0' in serial[0] and '"cached_layers": 5' in serial[1]
        assert [n for n, _ in spy.runs] == [5, 5]  # both scans fanned out: walks, then hashes
        monkeypatch.undo()


def test_more_jobs_than_layers_give_each_walker_file_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "two.tar"
    archive.write_bytes(docker_archive(layers()[:2]))
    spy = Spy(monkeypatch)
    serial = report_text(TarballSource(str(archive)), 1)
    assert report_text(TarballSource(str(archive)), 6) == serial and '"lib/app.jar!/conf/app.properties"' in serial
    assert spy.runs == [(2, 2)]  # two walkers, each with three file workers (jobs // walkers)


def test_one_layer_and_a_small_one_go_through_the_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tmp_path / "lopsided.tar"
    small = layer_tar([("etc/app.conf", b"secret=" + b"Zq8w" * 9 + b"\n")])
    archive.write_bytes(docker_archive([layer_tar([("big", os.urandom(20 << 20))]), small]))
    spy = Spy(monkeypatch)
    assert report_text(TarballSource(str(archive)), 2) == report_text(TarballSource(str(archive)), 1)
    assert spy.runs == []


def test_a_large_layer_and_a_smaller_one_are_walked_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The larger layer's walker gets the second core for its file worker once the smaller is done."""
    archive = tmp_path / "lopsided.tar"
    archive.write_bytes(docker_archive([layer_tar([("big", os.urandom(20 << 20))]), layers()[2]]))
    spy = Spy(monkeypatch)
    assert report_text(TarballSource(str(archive)), 2) == report_text(TarballSource(str(archive)), 1)
    assert spy.runs == [(2, 2)]


@pytest.mark.parametrize(
    ("sizes", "jobs", "at_once"),
    [
        ([100], 4, 0),  # one layer: the pipeline
        ([100, 100], 1, 0),
        ([100, 100], 2, 2),
        ([100, 40], 2, 2),  # 40 + 60 / 1.3 (the cores shared once the smaller is done) against 140 / 1.3
        ([100, 20], 2, 2),  # 20 + 80 / 1.3 against 120 / 1.3: the larger layer's walker gets the second core
        ([100, 1], 2, 0),  # one layer and a small one: 1 + 99 / 1.3, no better than 101 / 1.3
        ([579, 32], 2, 2),  # the JVM image: 452.8 against 470 (0.963)
        ([100, 20], 4, 0),  # 20 / 1.3 + 80 / 2.6 against 120 / 2.6
        ([100, 100], 6, 2),  # 100 / 1.95 (three file workers each) against 200 / 2.5
        ([100] * 5, 3, 3),
        ([100] * 5, 4, 3),  # 100 + 100 / 1.3, three at once, then two with two cores each: 177 against 192
        ([100] * 5, 8, 5),
        ([500, 100, 100, 100, 100], 8, 2),  # 189 with four file workers each, against 315 through the pipeline
    ],
)
def test_walkers(sizes: list[int], jobs: int, at_once: int) -> None:
    assert walkers(sizes, jobs) == at_once


def _scan_in_daemon(path: str, out: Any) -> None:
    out.put(report_text(TarballSource(path), 2))


def test_where_no_walker_process_can_start_the_layers_are_walked_here(tmp_path: Path) -> None:
    """A daemonic process (an embedded service worker) may not have children: the same report."""
    import multiprocessing

    archive = tmp_path / "five.tar"
    archive.write_bytes(docker_archive(layers()))
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_scan_in_daemon, args=(str(archive), out), daemon=True)
    proc.start()
    got = out.get(timeout=120)
    proc.join(30)
    assert got == report_text(TarballSource(str(archive)), 1) and '"complete": true' in got


def test_a_member_name_that_comes_twice_is_the_later_member(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the serial walk, the second member of a name replaces the first: a decoy layer first."""
    blobs = layers()
    with tarfile.open(fileobj=io.BytesIO(docker_archive(blobs))) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]  # type: ignore[union-attr]
    target = next(m.name for m, data in members if data == blobs[3])
    decoy = compress(_padded([("srv/k.txt", b"nothing here")]), "gzip")
    archive = tmp_path / "twice.tar"
    with tarfile.open(archive, "w") as tar:
        for m, data in members:
            if m.name == target:
                info = tarfile.TarInfo(target)
                info.size = len(decoy)
                tar.addfile(info, io.BytesIO(decoy))
            tar.addfile(m, io.BytesIO(data))
    spy = Spy(monkeypatch)
    serial = report_text(TarballSource(str(archive)), 1)
    assert '"srv/k.txt"' in serial  # the later member's finding
    assert report_text(TarballSource(str(archive)), 2) == serial
    assert spy.runs == [(5, 2)]


def test_a_fanout_walker_leaves_no_folder_of_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fanout walker's file workers are stopped, and its spool folder removed, when its process
    ends (the folder had stayed in /dev/shm after every scan whose walker spooled a file)."""
    import multiprocessing

    from scanner.detectors import ContentScanner, build_detectors
    from scanner.layers import fanout, parallel
    from scanner.layers.walk import WalkLimits

    monkeypatch.setattr(parallel, "SPOOL_ROOTS", (str(tmp_path),))
    ctx = multiprocessing.get_context("fork")
    busy, scanner = ctx.Value("i", 0), ContentScanner(build_detectors([]))

    def walker() -> None:
        fanout._start(scanner, WalkLimits(), 1, busy, 2)
        assert fanout._WALKER is not None and fanout._WALKER.pool is not None
        layer = layer_tar([("big.bin", os.urandom(9 << 20) + b"\npassword=" + TOKEN)])  # spooled
        assert fanout._WALKER.walk(io.BytesIO(layer)).files
        assert len(os.listdir(tmp_path)) == 1

    proc = ctx.Process(target=walker)
    proc.start()
    proc.join(60)
    assert proc.exitcode == 0 and os.listdir(tmp_path) == []
