"""``--jobs N``: the detectors run in N forked processes while this one decompresses and walks tars.

The walker hands each regular file to a worker: a file up to 8 MiB whole, in one message (small
ones many to a message); a larger one, in an uncompressed layer of a file on disk that holds still,
by its place in that file, where the worker reads it (the walker's tar walk reads past it, hashing
it, and checks the file's identity after the layer: see LayerWalker.walk); otherwise one up to 256
MiB written to a temporary file (in /dev/shm where there is one: at most 512 MiB of them waiting at
once) whose name the worker gets, so that the walker goes on to the next file while the worker
scans it; a larger one yet, or any when no temporary file can be written, through the pipe in
chunks (never whole in memory).  The worker
runs the same :class:`FileScanner` (nested archives included) and sends back the hits.  A file
goes to the worker with the fewest bytes in hand.  When every worker already has more in hand
than a pipe holds, and at least as much as the file, the walker scans the file itself: it would
otherwise wait on a full pipe with its core idle.  Memory stays bounded either way.  Results are
put back in the order the files came, so a report does not depend on the number of jobs.  Fork
(not spawn): the workers inherit the compiled detectors and the known secrets, which never travel
through a pipe.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import io
import mmap
import os
import queue
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..models import FileHits, Readable, Skip

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
from .nested import FileScanner
from .streams import safe_reason, tune_allocator
from .tarstream import FileSpan, MemberReader

CHUNK = 1 << 18
# files up to this size travel whole, small ones many to a message: the walker hands a file over
# in one write and walks on while the worker scans it.  A file streamed in chunks holds the walker
# until its worker has taken all but a pipe's worth of it, and the other workers idle meanwhile
# (a venv's 100 KiB-25 MiB .so and .py files).
WHOLE = 1 << 23
# Larger files are written to a temporary file for their worker: streamed through the pipe, a
# 100 MB file held the walker, and every other worker idled, until its worker had scanned all but
# the last MiB of it (a layer of six large binaries: 2.82 -> 2.20 s, five pairs).  The temporary
# files waiting for a worker are bounded in bytes; a file larger than SPOOL streams as before.
# In memory (/dev/shm) where there is one: on a disk, writing them out cost the walker 0.6 s more
# CPU on that layer (0.1 s in /dev/shm).
SPOOL, SPOOL_WAITING = 1 << 28, 1 << 29
SPOOL_ROOTS = ("/dev/shm", None)  # None: tempfile's own choice (TMPDIR, /tmp, ...)
BUNDLE_BYTES, BUNDLE_FILES = (
    1 << 18,
    256,
)  # a pipe holds four: the walker seldom waits on a busy worker while the other idles
PIPE_SIZE = 1 << 20  # Linux allows unprivileged pipes up to /proc/sys/fs/pipe-max-size (1 MiB by default)
PER_FILE = 1 << 12  # a file's cost in a worker's load beyond its bytes (a window, the detectors' calls)
# The walker scans a file (or a bundle) itself when every worker has at least this much in hand, and
# at least as much as the file: it would only wait on a full pipe, and the worker stays busy while
# it scans.  On a venv layer (880 MB, 2 cores, one walker and one worker) a walker that only handed
# files over waited on its worker about two thirds of the time.
HERE_FLOOR = PIPE_SIZE
# Each worker shares a ring of memory with the walker: a bundle's bytes are copied into it once and
# out of it once, where through the pipe they were pickled, written, read, buffered and unpickled
# (five copies, two of them in the kernel: handing a venv layer's 880 MB over cost 0.95 s of CPU
# between the two processes).  A bundle that does not fit in the free part goes through the pipe.
RING = 1 << 22
Result = tuple[list[FileHits], list[Skip], int]


class WorkerLost(Exception):
    """A scanning process died or stopped answering: the layer cannot be trusted as complete."""


class _PipeReader:
    """One file's chunks, as a stream; an empty chunk ends the file.  Chunks are kept as they came
    and joined once per read: appending each to one buffer copied a window's bytes several times."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parts: collections.deque[bytes | memoryview] = collections.deque()
        self.have = 0
        self.done = False

    def read(self, size: int = -1) -> bytes:
        while not self.done and (size < 0 or self.have < size):
            chunk = self.conn.recv_bytes()
            if not chunk:
                self.done = True
            else:
                self.parts.append(chunk)
                self.have += len(chunk)
        if size < 0 or size >= self.have:
            out = list(self.parts)
            self.parts.clear()
            self.have = 0
        else:
            out, need = [], size
            while need:
                part = self.parts.popleft()
                if len(part) > need:  # the rest stays, as a view: no copy of it
                    view = memoryview(part)
                    self.parts.appendleft(view[need:])
                    part = view[:need]
                out.append(part)
                need -= len(part)
            self.have -= size
        return out[0] if len(out) == 1 and isinstance(out[0], bytes) else b"".join(out)

    def drain(self) -> None:
        while not self.done:
            if not self.conn.recv_bytes():
                self.done = True
        self.parts.clear()
        self.have = 0


def _work(index: int, conn: Connection, results: Any, files: FileScanner, ring: mmap.mmap | None) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            header = conn.recv()
        except EOFError:
            return
        if header is None:
            return
        if header[0] == "ring":  # small files, whole, in the ring shared with the walker
            _, bid, items = header
            assert ring is not None
            found = [(fid, _scan(files, io.BytesIO(ring[at : at + n]), path, size)) for fid, path, size, at, n in items]
            results.put((index, bid, found))
            continue
        if header[0] == "bundle":  # small files, whole
            _, bid, items = header
            results.put(
                (index, bid, [(fid, _scan(files, io.BytesIO(data), path, size)) for fid, path, size, data in items])
            )
            continue
        if header[0] == "spooled":  # a large file, in a temporary file of its own
            _, bid, fid, path, size, name = header
            results.put((index, bid, [(fid, _scan_spooled(files, name, path, size))]))
            continue
        if header[0] == "located":  # a large file, read from the image file where the walker read it
            _, bid, fid, path, size, file, offset = header
            results.put((index, bid, [(fid, _scan_located(files, file, offset, path, size))]))
            continue
        _, bid, fid, path, size = header
        reader = _PipeReader(conn)
        result = _scan(files, reader, path, size)
        reader.drain()
        results.put((index, bid, [(fid, result)]))


def _scan_spooled(files: FileScanner, name: str, path: str, size: int) -> Result | int | str:
    try:
        spool = open(name, "rb", buffering=0)  # noqa: SIM115  # closed below, after the unlink
    except OSError as exc:
        return safe_reason(exc)
    with spool:
        with contextlib.suppress(OSError):
            os.unlink(name)  # gone from the disk once it is closed, whatever happens next
        return _scan(files, spool, path, size)


def _scan_located(files: FileScanner, file: str, offset: int, path: str, size: int) -> Result | int | str:
    try:
        span = FileSpan(file, offset, size)
    except OSError as exc:
        return safe_reason(exc)
    try:
        return _scan(files, span, path, size)  # a short file: FileSpan's read error, the file's result
    finally:
        span.close()


def _scan(files: FileScanner, stream: Readable, path: str, size: int) -> Result | int | str:
    """The file's hits and skips; only its count when it has neither (most files: less to hold)."""
    try:
        found, skips, count = files.scan(stream, path, size)
    except Exception as exc:  # the worker goes on; the layer is reported incomplete
        return safe_reason(exc)
    return (found, skips, count) if found or skips else count


@dataclass
class _Worker:
    proc: Any
    conn: Connection
    outstanding: int = 0  # messages sent whose results have not come back
    load: int = 0  # their bytes (and PER_FILE a file): what the worker has in hand
    loads: collections.deque[int] = field(default_factory=collections.deque)  # each message's, in order
    ring: mmap.mmap | None = None  # shared with the process (see RING)
    spans: collections.deque[tuple[int, int]] = field(default_factory=collections.deque)  # each message's in it
    ring_at: int = 0  # where the next bundle goes in the ring

    def place(self, size: int) -> int | None:
        """Where in the ring ``size`` bytes fit, in one piece, past what the worker has yet to
        scan (messages are scanned in the order they are sent); None where they do not."""
        if self.ring is None or not 0 < size <= len(self.ring):
            return None
        busy = [span for span in self.spans if span[1]]
        if not busy:
            return 0
        start, at = busy[0][0], self.ring_at
        if at > start:  # in use: [start, at); free: the end, then the start
            return at if at + size <= len(self.ring) else (0 if size <= start else None)
        return at if at + size <= start else None  # in use: from start to the end, then [0, at)


@dataclass
class FilePool:
    """N forked scanning processes for one image; use as a context manager."""

    files: FileScanner
    jobs: int
    workers: list[_Worker] = field(default_factory=list)
    whole: int = WHOLE  # the thresholds above (tests make them small)
    spool: int = SPOOL
    spool_waiting: int = SPOOL_WAITING
    here_floor: int | None = HERE_FLOOR  # None: every file goes to a worker (see HERE_FLOOR)
    ring: int = RING  # 0: bundles through the pipe only
    scanned_here: int = 0  # files the walker scanned itself
    busy: Any = None  # a fanout walker's: the layers under way in all walkers (a shared int)
    cores: int = 0  # with ``busy``: as many layers under way as this, and the walker scans alone

    def __enter__(self) -> FilePool:
        import multiprocessing  # only when workers start: a cached rescan never forks

        ctx = multiprocessing.get_context("fork")
        tune_allocator()  # before the fork: the workers allocate most
        self.results = ctx.Queue()
        self.batches = 0
        self.spool_dir: str | None = None  # made when a file is first spooled
        try:
            self._start(ctx)
        except BaseException:
            self.__exit__()  # the workers that did start
            raise
        return self

    def _start(self, ctx: Any) -> None:
        for index in range(self.jobs):
            receive, send = ctx.Pipe(duplex=False)
            with contextlib.suppress(OSError, AttributeError):  # a deeper pipe: the walker waits less
                fcntl.fcntl(send.fileno(), fcntl.F_SETPIPE_SZ, PIPE_SIZE)
            ring = None
            if self.ring:
                with contextlib.suppress(OSError, ValueError):  # no shared memory: the pipe only
                    ring = mmap.mmap(-1, self.ring)  # anonymous and shared: the child sees its writes
            proc = ctx.Process(target=_work, args=(index, receive, self.results, self.files, ring), daemon=True)
            proc.start()
            receive.close()
            self.workers.append(_Worker(proc, send, ring=ring))

    def __exit__(self, *exc: object) -> None:
        for w in self.workers:
            try:
                w.conn.send(None)
                w.conn.close()
            except OSError:
                pass
        for w in self.workers:
            w.proc.join(5)
            if w.proc.is_alive():
                w.proc.kill()
                w.proc.join(5)
        if self.spool_dir is not None:  # what a worker that died left there
            shutil.rmtree(self.spool_dir, ignore_errors=True)

    def batch(self) -> Batch:
        self.batches += 1
        return Batch(self, self.batches)


class Batch:
    """The files of one layer: submitted in order, collected in the same order."""

    def __init__(self, pool: FilePool, bid: int) -> None:
        self.pool = pool
        self.bid = bid
        self.owner: list[_Worker | None] = []  # None: still in the bundle being filled
        self.done: dict[int, Result | int | str] = {}
        self.bundle: list[tuple[int, str, int, bytes | memoryview]] = []
        self.bundle_bytes = 0
        self.spooled: dict[int, int] = {}  # file id -> bytes, of the temporary files not yet scanned
        self.spooled_bytes = 0

    def _worker(self, load: int) -> _Worker:
        """The worker with the least in hand, counted in bytes, with the results that came taken
        first: by message counts taken when results were, a worker that had finished could sit
        idle while the walker waited on the other's full pipe (a jar is one message, and so is a
        bundle of 256 small files)."""
        return self._give(self._least(), load)

    def _least(self) -> _Worker:
        self._poll(block=False)
        return min(self.pool.workers, key=lambda w: w.load)

    def _give(self, worker: _Worker, load: int, span: tuple[int, int] = (0, 0)) -> _Worker:
        """``worker``, with a message of ``load`` (its bytes in the ring: ``span``) in hand."""
        worker.outstanding += 1
        worker.load += load
        worker.loads.append(load)
        worker.spans.append(span)
        return worker

    def _here(self, load: int) -> bool:
        """Whether the walker should scan this much itself: every worker has more in hand than a
        pipe holds, and at least as much as this (results taken first)."""
        floor = self.pool.here_floor
        if floor is None:
            return False
        if self.pool.busy is not None and self.pool.busy.value >= self.pool.cores:
            return True  # every core walks a layer: a hand-off would only add work
        self._poll(block=False)
        return min(w.load for w in self.pool.workers) >= max(floor, load)

    def _scan_here(self, fid: int, stream: Readable, path: str, size: int) -> None:
        """The file scanned by the walker, as a worker would scan it.  A read error mid-file ends
        the file there, as the worker's end of a pipe does: what was read is scanned, then the
        error goes on to end the layer."""
        tap = _Tap(stream)
        self.done[fid] = _scan(self.pool.files, tap, path, size)
        self.pool.scanned_here += 1
        if tap.error is not None:
            raise tap.error

    def _flush(self) -> None:
        if not self.bundle:
            return
        load = self.bundle_bytes + PER_FILE * len(self.bundle)
        if self._here(load):
            for fid, path, size, data in self.bundle:
                # bytes (a copy of a view, the same object otherwise): read whole, BytesIO then
                # hands them on as they are, where over a view it would copy them twice
                self._scan_here(fid, io.BytesIO(bytes(data)), path, size)
            self.bundle, self.bundle_bytes = [], 0
            return
        worker = self._least()
        start = worker.place(self.bundle_bytes)
        if start is not None and worker.ring is not None:
            at, items = start, []
            for fid, path, size, data in self.bundle:
                worker.ring[at : at + len(data)] = data
                items.append((fid, path, size, at, len(data)))
                at += len(data)
            worker.ring_at = at
            message: tuple[Any, ...] = ("ring", self.bid, items)
            self._give(worker, load, (start, self.bundle_bytes))
        else:
            message = ("bundle", self.bid, [(fid, path, size, bytes(data)) for fid, path, size, data in self.bundle])
            self._give(worker, load)
        for fid, *_ in self.bundle:
            self.owner[fid] = worker
        _send(worker, message)
        self.bundle, self.bundle_bytes = [], 0

    def submit(self, stream: Readable, path: str, size: int, at: tuple[str, int] | None = None) -> None:
        """``at``: where the file's bytes lie in a file on disk that holds still (the image file,
        its identity checked by the walker before and after the layer): a large file is then read
        there by its worker, and the walker leaves its bytes to the tar walk's skip (which hashes
        them) instead of copying them to a temporary file."""
        fid = len(self.owner)
        whole = self.pool.whole
        if size <= whole:  # one message per many small files: the pipes' cost is per message
            self.owner.append(None)
            try:
                # a view of the walk's buffer where the stream has one (MemberReader.take)
                data = stream.take(whole + 1) if isinstance(stream, MemberReader) else stream.read(whole + 1)
            except BaseException:
                self.done[fid] = "the file could not be read to its end"  # the layer error says why
                raise
            self.bundle.append((fid, path, size, data))
            self.bundle_bytes += len(data)
            if self.bundle_bytes >= BUNDLE_BYTES or len(self.bundle) >= BUNDLE_FILES:
                self._flush()
                self._poll(block=False)
            return
        if self._here(size + PER_FILE):  # no copy to a temporary file or through a pipe
            self.owner.append(None)
            self._scan_here(fid, stream, path, size)
            return
        if at is not None:
            worker = self._worker(size + PER_FILE)
            self.owner.append(worker)
            _send(worker, ("located", self.bid, fid, path, size, *at))
            self._poll(block=False)
            return
        if size <= self.pool.spool and self._spool(stream, fid, path, size):
            return
        worker = self._worker(size + PER_FILE)
        self.owner.append(worker)
        self._stream(worker, fid, path, size, stream)

    def _stream(self, worker: _Worker, fid: int, path: str, size: int, stream: Readable, head: bytes = b"") -> None:
        try:
            worker.conn.send(("file", self.bid, fid, path, size))
            try:
                if head:
                    worker.conn.send_bytes(head)
                while chunk := stream.read(CHUNK):
                    worker.conn.send_bytes(chunk)
            finally:  # a read error mid-file still ends the file for the worker, which would wait forever
                worker.conn.send_bytes(b"")
        except (BrokenPipeError, ConnectionError):
            raise WorkerLost("a scanning process died") from None
        self._poll(block=False)

    def _spool(self, stream: Readable, fid: int, path: str, size: int) -> bool:
        """Write the file to a temporary file and hand its name to a worker; False, with nothing
        read, where no temporary file can be made.  A disk that fills up mid-file: what was written
        and the rest of the file go through the pipe instead."""
        while self.spooled and self.spooled_bytes + size > self.pool.spool_waiting:
            self._wait()
        try:
            if self.pool.spool_dir is None:
                self.pool.spool_dir = _spool_dir()
            fd, name = tempfile.mkstemp(dir=self.pool.spool_dir)
        except OSError:
            return False
        self.owner.append(None)
        written = 0
        try:
            while chunk := stream.read(CHUNK):
                view = memoryview(chunk)
                try:
                    while view:
                        n = os.write(fd, view)
                        written += n
                        view = view[n:]
                except OSError:  # the disk is full: through the pipe after all
                    os.lseek(fd, 0, os.SEEK_SET)
                    head = _read_all(fd, written) + bytes(view)
                    os.close(fd)
                    fd = -1
                    os.unlink(name)
                    worker = self._worker(size + PER_FILE)
                    self.owner[fid] = worker
                    self._stream(worker, fid, path, size, stream, head)
                    return True
        finally:  # after a read error too: what was read is scanned, as when a file streams
            if fd >= 0:
                os.close(fd)
                self._hand_over(fid, path, size, name, written)
        self._poll(block=False)
        return True

    def _hand_over(self, fid: int, path: str, size: int, name: str, written: int) -> None:
        worker = self._worker(written + PER_FILE)
        self.owner[fid] = worker
        self.spooled[fid] = written
        self.spooled_bytes += written
        _send(worker, ("spooled", self.bid, fid, path, size, name))

    def _wait(self) -> None:
        """Wait for a result (a second at most); WorkerLost if a worker with files in hand died."""
        if self._poll(block=True) or all(w.proc.is_alive() for w in self.pool.workers if w.outstanding):
            return
        if not self._poll(block=False):
            raise WorkerLost("a scanning process died")

    def _poll(self, block: bool, timeout: float = 1.0) -> bool:
        """Take the results that have come (with ``block``: wait for one); False if none came."""
        got = False
        while True:
            try:
                index, bid, found = self.pool.results.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                return got
            got = True
            worker = self.pool.workers[index]
            worker.outstanding -= 1
            worker.load -= worker.loads.popleft()
            worker.spans.popleft()
            if bid == self.bid:  # a layer that ended in an error may leave results behind: not ours
                self.done.update(found)
                for fid, _ in found:
                    self.spooled_bytes -= self.spooled.pop(fid, 0)
            if block:
                return got

    def collect(self, deadline: float | None = None) -> list[Result | int | str]:
        """Each file's (hits, skips, count), its count alone, or the reason it has none, in order."""
        self._flush()
        while len(self.done) < len(self.owner):
            if self._poll(block=True):
                continue
            if not all(w.proc.is_alive() for w in self.pool.workers if w.outstanding):  # a second quiet
                self._poll(block=False)
                if len(self.done) < len(self.owner):
                    raise WorkerLost("a scanning process died")
            if deadline is not None and time.monotonic() > deadline:
                raise WorkerLost("the time limit for the image ran out while files were being scanned")
        return [self.done[f] for f in range(len(self.owner))]


class _Tap:
    """A stream whose read error ends it (the error kept for later), as a pipe's end does."""

    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        if self.error is not None:
            return b""
        try:
            return self.stream.read(size)
        except Exception as exc:  # raised again once what was read is scanned
            self.error = exc
            return b""


def _send(worker: _Worker, message: tuple[Any, ...]) -> None:
    """A message to a worker; WorkerLost if its process is gone (its pipe broken)."""
    try:
        worker.conn.send(message)
    except (BrokenPipeError, ConnectionError):
        raise WorkerLost("a scanning process died") from None


def _spool_dir() -> str:
    for root in SPOOL_ROOTS:
        try:
            return tempfile.mkdtemp(prefix="leakscan-jobs-", dir=root)
        except OSError:
            continue
    raise OSError("no folder for temporary files")


def _read_all(fd: int, size: int) -> bytes:
    parts, left = [], size
    while left and (data := os.read(fd, left)):
        parts.append(data)
        left -= len(data)
    return b"".join(parts)
