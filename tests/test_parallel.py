"""--jobs: the same report whatever the number of processes, and failures that end, never hang."""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import signal
import zipfile
from pathlib import Path
from typing import Any

import pytest

from scanner import ScanOptions, scan_image
from scanner.detectors import ContentScanner, build_detectors
from scanner.layers.nested import FileScanner
from scanner.layers.parallel import FilePool
from scanner.layers.walk import LayerWalker
from scanner.report import OutputFormat, renderer_for
from scanner.sources import TarballSource
from tests.conftest import ARCHIVES
from tests.support.tars import compress, docker_archive, layer_tar

TOKEN = b"ghp_" + b"Zq8w" * 9


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def busy_layer() -> bytes:
    big = bytearray(os.urandom(3 << 20))
    line = b"\n" + TOKEN + b"\n"
    big[(1 << 18) - 10 : (1 << 18) - 10 + len(line)] = line  # across a pipe chunk boundary
    return layer_tar(
        [
            *[(f"src/m{i}.py", b"x = 1\n" * 200) for i in range(300)],
            ("app/.env", b"GITHUB_TOKEN=" + TOKEN + b"\n"),
            ("app/.env", b"GITHUB_TOKEN=\n"),  # a duplicate member: the first copy is overwritten
            ("lib/app.jar", _zip({"conf/app.properties": b"token=" + TOKEN})),
            ("var/log.gz", gzip.compress(b"password=" + TOKEN)),
            ("data/big.bin", bytes(big)),
            ("h", ("hard", "app/.env")),
        ]
    )


def report_text(path: Path, jobs: int) -> str:
    report = scan_image(TarballSource(str(path)), ScanOptions(jobs=jobs))
    doc = renderer_for(OutputFormat.JSON).render(report)
    return "\n".join(line for line in doc.splitlines() if '"duration_s"' not in line)


@pytest.mark.parametrize("jobs", [2, 3])
def test_the_report_does_not_depend_on_the_number_of_jobs(tmp_path: Path, jobs: int) -> None:
    archive = tmp_path / "busy.tar"
    archive.write_bytes(docker_archive([busy_layer(), compress(layer_tar([("b", b"secret=" + TOKEN)]), "gzip")]))
    one = report_text(archive, 1)
    assert '"data/big.bin"' in one and '"lib/app.jar!/conf/app.properties"' in one and '"overwritten"' in one
    assert report_text(archive, jobs) == one
    sample = ARCHIVES / "sample-docker-legacy.tar.gz"
    assert report_text(sample, jobs) == report_text(sample, 1)


def test_a_layer_cut_mid_file_is_an_error_and_nothing_hangs(tmp_path: Path) -> None:
    layer = compress(busy_layer(), "gzip")
    cut = layer[: len(layer) * 3 // 4]
    scanner = ContentScanner(build_detectors([]))
    with FilePool(FileScanner(scanner), 2) as pool:
        walker = LayerWalker(scanner, pool=pool)
        scan = walker.walk(io.BytesIO(cut))
        assert scan.error is not None
        again = walker.walk(io.BytesIO(layer))  # the pool is still good for the next layer
        assert again.error is None and any(f.path == "data/big.bin" for f in again.files)


def test_a_dead_worker_makes_the_layer_incomplete_not_clean() -> None:
    scanner = ContentScanner(build_detectors([]))
    with FilePool(FileScanner(scanner), 2) as pool:
        for worker in pool.workers:
            os.kill(worker.proc.pid, signal.SIGKILL)
            worker.proc.join(5)
        scan = LayerWalker(scanner, pool=pool).walk(io.BytesIO(busy_layer()))
    assert scan.error is not None and "died" in scan.error


def test_a_layer_cut_inside_a_small_file_ends_too() -> None:
    layer = compress(layer_tar([(f"s/{i}.txt", b"token=" + TOKEN + b"\n" * 500) for i in range(40)]), "gzip")
    scanner = ContentScanner(build_detectors([]))
    with FilePool(FileScanner(scanner), 2) as pool:
        for cut in (len(layer) // 3, len(layer) // 2, len(layer) - 30):
            scan = LayerWalker(scanner, pool=pool).walk(io.BytesIO(layer[:cut]))
            assert scan.error is not None


def _scan_in_daemon(out: Any) -> None:
    report = scan_image(TarballSource(str(ARCHIVES / "sample-docker-legacy.tar.gz")), ScanOptions(jobs=2))
    out.put((len(report.findings), report.complete))


def test_where_no_worker_process_can_start_the_scan_runs_here() -> None:
    """A daemonic process (an embedded service worker) may not have children: --jobs falls back."""
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    proc = ctx.Process(target=_scan_in_daemon, args=(out,), daemon=True)
    proc.start()
    found, complete = out.get(timeout=120)
    proc.join(30)
    direct = scan_image(TarballSource(str(ARCHIVES / "sample-docker-legacy.tar.gz")), ScanOptions())
    assert (found, complete) == (len(direct.findings), True) and found > 0


def test_a_file_read_through_the_pipe_comes_out_whole_whatever_the_read_sizes() -> None:
    import multiprocessing
    import random

    from scanner.layers.parallel import _PipeReader

    rng = random.Random(11)
    for _ in range(40):
        data = rng.randbytes(rng.randint(0, 50_000))
        receive, send = multiprocessing.Pipe(duplex=False)
        pos = 0
        while pos < len(data):
            step = rng.choice([1, 7, 512, 4096, 20_000])
            send.send_bytes(data[pos : pos + step])
            pos += step
        send.send_bytes(b"")
        reader, got = _PipeReader(receive), []
        while True:
            size = rng.choice([-1, 0, 1, 100, 512, 5000, 1 << 16]) if rng.random() < 0.9 else 3
            piece = reader.read(size)
            assert isinstance(piece, bytes)
            assert size < 0 or len(piece) <= size
            got.append(piece)
            if (size != 0 and not piece) or size < 0:
                break
        assert b"".join(got) == data
        assert reader.read(10) == b"" and reader.read() == b""
        receive.close()
        send.close()


def sized_layer() -> bytes:
    """Files of every size class (whole in a bundle, alone, spooled, streamed), secrets in each."""
    line = b"\npassword=" + TOKEN + b"\n"
    return layer_tar(
        [
            *[(f"s/{i}.txt", b"a = 1\n" * 50 + (line if i % 7 == 0 else b"")) for i in range(60)],
            ("m/one.bin", os.urandom(3000) + line),
            ("l/a.bin", os.urandom(40_000) + line + os.urandom(30_000)),
            ("l/b.bin", line + os.urandom(90_000)),
            ("l/app.jar", _zip({f"c/{i}.properties": b"token=" + TOKEN for i in range(5)}) + os.urandom(50_000)),
            ("l/c.bin", os.urandom(100_000) + line),
            ("x/huge.bin", os.urandom(300_000) + line),
            ("s/last.txt", line),
        ]
    )


def _walk(layer: bytes, pool: FilePool | None = None) -> Any:
    scanner = ContentScanner(build_detectors([]))
    return LayerWalker(scanner, pool=pool).walk(io.BytesIO(layer))


def _small_pool(scanner: ContentScanner) -> FilePool:
    # bundles up to 4 KiB files, spools up to 128 KiB with 200 KiB waiting at most, streams the rest
    return FilePool(FileScanner(scanner), 2, whole=4096, spool=128 << 10, spool_waiting=200 << 10)


def test_files_of_every_size_class_give_the_report_of_one_process() -> None:
    layer = sized_layer()
    one = _walk(layer)
    assert len(one.files) >= 14 and one.error is None
    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        walker = LayerWalker(scanner, pool=pool)
        assert walker.walk(io.BytesIO(layer)) == one
        assert walker.walk(io.BytesIO(layer)) == one  # the pool is still good for the next layer
        spool_dir = pool.spool_dir
        assert spool_dir is not None and os.listdir(spool_dir) == []  # each file gone once scanned
    assert not os.path.exists(spool_dir)


def test_a_full_disk_sends_a_spooled_file_through_the_pipe(monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from scanner.layers import parallel

    layer = sized_layer()
    one = _walk(layer)
    real_write, calls = os.write, []

    def write(fd: int, data: Any) -> int:
        calls.append(len(data))
        if len(calls) % 2 == 0:  # every second write: the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, bytes(data)[: len(data) // 2 or 1])  # a short write first

    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        monkeypatch.setattr(parallel.os, "write", write)
        got = LayerWalker(scanner, pool=pool).walk(io.BytesIO(layer))
    assert calls and got == one


def test_a_layer_cut_inside_a_spooled_file_is_an_error_and_nothing_hangs() -> None:
    layer = sized_layer()
    start = layer.index(b"l/c.bin")
    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        walker = LayerWalker(scanner, pool=pool)
        for cut in (start + 2000, start + 60_000):
            scan = walker.walk(io.BytesIO(layer[:cut]))
            assert scan.error is not None and scan.files
        assert walker.walk(io.BytesIO(layer)) == _walk(layer)


def _on_disk(tmp_path: Path, layer: bytes) -> tuple[Path, int]:
    """The layer inside a file, after other bytes, as a layer lies in a docker save tarball."""
    image = tmp_path / "image.tar"
    image.write_bytes(os.urandom(1536) + layer + os.urandom(512))
    return image, 1536


def _located_walk(
    pool: FilePool, scanner: ContentScanner, image: Path, offset: int, size: int, sent: list[tuple[Any, ...]]
) -> Any:
    """A walk of the layer's span of the image file (as collect's fanout tasks walk it), with the
    messages each worker was sent."""
    from scanner.layers.tarstream import FileSpan

    for worker in pool.workers:
        real = worker.conn.send

        def send(message: Any, real: Any = real) -> None:
            sent.append(message if isinstance(message, tuple) else (message,))
            real(message)

        worker.conn.send = send  # type: ignore[method-assign]
    span = FileSpan(str(image), offset, size)
    try:
        return LayerWalker(scanner, pool=pool).walk(span)
    finally:
        span.close()


def test_large_files_of_a_layer_on_disk_are_read_by_their_worker_where_they_lie(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A layer of a file that holds still: each file too large to travel whole is read by its
    worker from the image file at its offset, not copied to a temporary file or through the pipe,
    and the result is one process's walk of the same bytes."""
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))  # the file below was just written
    layer = sized_layer()
    one = _walk(layer)
    image, offset = _on_disk(tmp_path, layer)
    scanner = ContentScanner(build_detectors([]))
    sent: list[tuple[Any, ...]] = []
    with _small_pool(scanner) as pool:
        assert _located_walk(pool, scanner, image, offset, len(layer), sent) == one
        assert pool.spool_dir is None  # nothing spooled
    located = sorted(m[3] for m in sent if m[0] == "located")
    assert located == ["l/a.bin", "l/app.jar", "l/b.bin", "l/c.bin", "x/huge.bin"]
    assert not [m for m in sent if m[0] in ("file", "spooled")]


def test_a_tarball_scanned_with_large_files_read_where_they_lie_gives_the_report_of_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: a docker archive on disk whose layer holds a file over WHOLE (8 MiB) with a token
    near its end; with --jobs 2 the file is read by its worker from the tarball (nothing spooled),
    and the report is --jobs 1's."""
    from scanner.layers import parallel
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))  # the archive below was just written
    big = bytearray(os.urandom(parallel.WHOLE + (1 << 20)))
    line = b"\npassword=" + TOKEN + b"\n"
    big[-5000 : -5000 + len(line)] = line
    archive = tmp_path / "large.tar"
    archive.write_bytes(docker_archive([layer_tar([("opt/big.bin", bytes(big)), ("etc/x.conf", b"a = 1\n")])]))
    spooled: list[str] = []
    real_spool_dir = parallel._spool_dir
    monkeypatch.setattr(parallel, "_spool_dir", lambda: spooled.append("x") or real_spool_dir())
    one = report_text(archive, 1)
    assert '"opt/big.bin"' in one
    assert report_text(archive, 2) == one and spooled == []


def test_a_file_changed_in_the_last_seconds_is_not_read_where_it_lies(tmp_path: Path) -> None:
    """A write in the same clock tick as the walk could leave the file's stat as it was: a file
    changed in the last few seconds has no identity to check, and its large files are spooled."""
    layer = sized_layer()
    image, offset = _on_disk(tmp_path, layer)
    scanner = ContentScanner(build_detectors([]))
    sent: list[tuple[Any, ...]] = []
    with _small_pool(scanner) as pool:
        assert _located_walk(pool, scanner, image, offset, len(layer), sent) == _walk(layer)
        assert pool.spool_dir is not None
    assert not [m for m in sent if m[0] == "located"] and [m for m in sent if m[0] == "spooled"]


def test_a_layer_whose_image_file_changes_while_it_is_walked_is_not_reported_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The workers read the large files where the walker hashed them: the file's identity (its
    stat: a write changes its ctime) is checked after the layer, and a change ends the layer with
    an error, never a layer reported as read whole from bytes that may differ from the hashed."""
    from scanner.layers import parallel
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))
    layer = sized_layer()
    image, offset = _on_disk(tmp_path, layer)
    real_collect = parallel.Batch.collect

    def collect(self: Any, deadline: float | None = None) -> Any:
        with image.open("r+b") as f:  # a write while the workers read: the same bytes, a new ctime
            f.seek(10)
            f.write(image.read_bytes()[10:11])
        return real_collect(self, deadline)

    monkeypatch.setattr(parallel.Batch, "collect", collect)
    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        scan = _located_walk(pool, scanner, image, offset, len(layer), [])
    assert scan.error == "the image file changed while this layer was read: scan it again"
    assert scan.files  # what was found is still reported


def test_a_located_file_cut_short_is_an_error_and_nothing_hangs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The image file cut inside a large file after the walker passed it: the worker's read comes
    up short, and the layer ends with that file's error."""
    from scanner.layers import parallel
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))
    layer = sized_layer()
    image, offset = _on_disk(tmp_path, layer)
    cut = offset + layer.index(b"x/huge.bin") + 512 + 1000
    real_collect = parallel.Batch.collect

    def collect(self: Any, deadline: float | None = None) -> Any:
        os.truncate(image, cut)
        return real_collect(self, deadline)

    monkeypatch.setattr(parallel.Batch, "collect", collect)
    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        scan = _located_walk(pool, scanner, image, offset, len(layer), [])
    assert scan.error is not None and scan.files


def test_a_file_goes_to_the_worker_with_the_fewest_bytes_in_hand_results_taken_first() -> None:
    import queue

    from scanner.layers.parallel import PER_FILE, Batch, _Worker

    pool = FilePool(FileScanner(ContentScanner(build_detectors([]))), 2)
    pool.results = queue.Queue()  # type: ignore[assignment]
    pool.workers = [_Worker(None, None), _Worker(None, None)]  # type: ignore[arg-type]
    batch = Batch(pool, 1)
    first, second = pool.workers
    assert batch._worker(1 << 20) is first
    assert batch._worker(1000) is second
    assert batch._worker(1000) is second  # two messages in hand, but fewer bytes
    pool.results.put((0, 1, [(0, 7)]))  # the first worker's result has come, not yet taken
    assert batch._worker(PER_FILE) is first
    assert (first.load, second.load, first.outstanding, batch.done) == (PER_FILE, 2000, 1, {0: 7})


@pytest.mark.parametrize("here", ["all", 2, 3])
def test_files_the_walker_scans_itself_give_the_report_of_one_process(
    monkeypatch: pytest.MonkeyPatch, here: str | int
) -> None:
    """A file (or a bundle) the walker scans itself instead of handing over: the same results, in
    the same places, whichever files it takes."""
    from scanner.layers import parallel

    layer = sized_layer()
    one = _walk(layer)
    calls: list[int] = []

    def decide(self: parallel.Batch, load: int) -> bool:
        calls.append(load)
        if here == "all":
            return True
        return isinstance(here, int) and len(calls) % here == 0  # every other file, every third

    monkeypatch.setattr(parallel.Batch, "_here", decide)
    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        walker = LayerWalker(scanner, pool=pool)
        assert walker.walk(io.BytesIO(layer)) == one
        files = 67  # the layer's regular files: one bundle of the small ones, five larger ones
        assert len(calls) == 6
        if here == "all":
            assert pool.scanned_here == files and pool.spool_dir is None  # nothing handed over, nothing spooled
        else:
            assert 0 < pool.scanned_here < files
        assert walker.walk(io.BytesIO(layer)) == one  # and the pool is still good


def test_a_layer_cut_inside_a_file_the_walker_scans_ends_with_the_same_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """The read error still ends the layer, with what came before it, as when a worker scans the
    file; the pool is still good for the next layer."""
    from scanner.layers import parallel

    layer = sized_layer()
    start = layer.index(b"l/b.bin")
    scanner = ContentScanner(build_detectors([]))
    with _small_pool(scanner) as pool:
        walker = LayerWalker(scanner, pool=pool)
        for cut in (start + 2000, start + 60_000):
            handed = walker.walk(io.BytesIO(layer[:cut]))
            with monkeypatch.context() as m:
                m.setattr(parallel.Batch, "_here", lambda self, load: 90_000 < load - parallel.PER_FILE < 100_000)
                here = walker.walk(io.BytesIO(layer[:cut]))
            assert here.error is not None and here == handed and "l/a.bin" in {f.path for f in here.files}
        assert pool.scanned_here == 2  # l/b.bin, cut, twice
        assert walker.walk(io.BytesIO(layer)) == _walk(layer)


def test_the_walker_scans_a_file_itself_only_when_every_worker_has_more_in_hand() -> None:
    import queue

    from scanner.layers.parallel import PER_FILE, Batch, _Worker

    pool = FilePool(FileScanner(ContentScanner(build_detectors([]))), 2, here_floor=1000)
    pool.results = queue.Queue()  # type: ignore[assignment]
    pool.workers = [_Worker(None, None), _Worker(None, None)]  # type: ignore[arg-type]
    batch = Batch(pool, 1)
    assert not batch._here(10)  # idle workers
    batch._worker(5000)
    assert not batch._here(10)  # one still idle
    batch._worker(900)
    assert not batch._here(10)  # under the floor (a pipe's worth)
    batch._worker(200)
    assert batch._here(10) and batch._here(1100) and not batch._here(1101)  # no more than it has
    pool.results.put((1, 1, [(1, 3)]))  # the second worker's first result has come: 200 in hand
    assert not batch._here(10)
    pool.here_floor = None
    pool.workers[1].load = 1 << 30
    assert not batch._here(PER_FILE)  # never, without a floor


def test_a_fanout_walker_scans_alone_while_every_core_walks_a_layer() -> None:
    import queue

    from scanner.layers.parallel import Batch, _Worker

    busy = multiprocessing.get_context("fork").Value("i", 0)
    pool = FilePool(FileScanner(ContentScanner(build_detectors([]))), 1, busy=busy, cores=2)
    pool.results = queue.Queue()  # type: ignore[assignment]
    pool.workers = [_Worker(None, None)]  # type: ignore[arg-type]
    batch = Batch(pool, 1)
    busy.value = 1  # one layer under way: a core for the file worker
    assert not batch._here(1 << 20)
    busy.value = 2  # as many layers as cores: the walker keeps its files, the worker idle
    assert batch._here(1 << 20) and pool.workers[0].load == 0


@pytest.mark.parametrize("ring", [0, 6000, 1 << 22])
def test_bundles_through_the_ring_or_the_pipe_give_the_report_of_one_process(
    monkeypatch: pytest.MonkeyPatch, ring: int
) -> None:
    """No ring (the pipe only), one too small for some bundles (those go through the pipe), and
    the default: the same results."""
    from scanner.layers import parallel

    monkeypatch.setattr(parallel, "BUNDLE_FILES", 5)  # bundles of 5 files, 0.3-9 KB
    places: list[int | None] = []
    place = parallel._Worker.place
    monkeypatch.setattr(parallel._Worker, "place", lambda self, size: places.append(place(self, size)) or places[-1])
    secret = b"password=" + TOKEN
    layer = layer_tar(
        [(f"s/{i}.txt", (b"k = 1\n" * (i * 7 % 300)) + (secret if i % 5 == 0 else b"")) for i in range(400)]
    )
    one = _walk(layer)
    assert len(one.files) == 80
    scanner = ContentScanner(build_detectors([]))
    with FilePool(FileScanner(scanner), 2, whole=4096, ring=ring) as pool:
        assert all((w.ring is not None) == bool(ring) for w in pool.workers)
        walker = LayerWalker(scanner, pool=pool)
        for _ in range(3):  # the ring wraps around
            assert walker.walk(io.BytesIO(layer)) == one
    in_ring = sum(at is not None for at in places)
    assert len(places) == 240 and (in_ring == 0 if ring == 0 else 0 < in_ring < 240 if ring == 6000 else in_ring == 240)


def test_a_bundle_goes_in_the_ring_past_what_the_worker_has_yet_to_scan() -> None:
    import mmap

    from scanner.layers.parallel import _Worker

    worker = _Worker(None, None, ring=mmap.mmap(-1, 100))  # type: ignore[arg-type]

    def put(size: int) -> int | None:
        at = worker.place(size)
        if at is not None:
            worker.spans.append((at, size))
            worker.ring_at = at + size
        return at

    assert put(0) is None and put(101) is None  # nothing to place, or more than the ring
    assert put(60) == 0 and put(30) == 60 and put(20) is None  # 10 left at the end
    worker.spans.append((0, 0))  # a message through the pipe, between
    worker.spans.popleft()  # [0, 60) scanned
    assert put(20) == 0 and put(40) == 20 and put(1) is None  # wrapped: [90, 100) and [60, 90) free no more
    worker.spans.popleft()  # [60, 90)
    worker.spans.popleft()  # the pipe's
    assert put(39) == 60 and put(2) is None  # in use from 0 to 60: [60, 100) was free
    worker.spans.clear()
    assert put(100) == 0
