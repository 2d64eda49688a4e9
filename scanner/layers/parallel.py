"""``--jobs N``: the detectors run in N forked processes while this one decompresses and walks tars.

The walker hands each regular file to a worker through a pipe, in chunks (a file of any size,
never whole in memory); the worker runs the same :class:`FileScanner` (nested archives included)
and sends back the hits.  A file goes to the worker with the fewest files in hand; a full pipe
makes the walker wait, so memory stays bounded.  Results are put back in the order the files came,
so a report does not depend on the number of jobs.  Fork (not spawn): the workers inherit the
compiled detectors and the known secrets, which never travel through a pipe.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import io
import os
import queue
import signal
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..models import FileHits, Readable, Skip

if TYPE_CHECKING:
    from multiprocessing.connection import Connection
from .nested import FileScanner
from .streams import safe_reason, tune_allocator

CHUNK = 1 << 18
SMALL = 1 << 16  # files up to this size travel whole, many to a message
BUNDLE_BYTES, BUNDLE_FILES = (
    1 << 18,
    256,
)  # a pipe holds four: the walker seldom waits on a busy worker while the other idles
PIPE_SIZE = 1 << 20  # Linux allows unprivileged pipes up to /proc/sys/fs/pipe-max-size (1 MiB by default)
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


def _work(index: int, conn: Connection, results: Any, files: FileScanner) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        try:
            header = conn.recv()
        except EOFError:
            return
        if header is None:
            return
        if header[0] == "bundle":  # small files, whole
            _, bid, items = header
            results.put(
                (index, bid, [(fid, _scan(files, io.BytesIO(data), path, size)) for fid, path, size, data in items])
            )
            continue
        _, bid, fid, path, size = header
        reader = _PipeReader(conn)
        result = _scan(files, reader, path, size)
        reader.drain()
        results.put((index, bid, [(fid, result)]))


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
    outstanding: int = 0


@dataclass
class FilePool:
    """N forked scanning processes for one image; use as a context manager."""

    files: FileScanner
    jobs: int
    workers: list[_Worker] = field(default_factory=list)

    def __enter__(self) -> FilePool:
        import multiprocessing  # only when workers start: a cached rescan never forks

        ctx = multiprocessing.get_context("fork")
        tune_allocator()  # before the fork: the workers allocate most
        self.results = ctx.Queue()
        self.batches = 0
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
            proc = ctx.Process(target=_work, args=(index, receive, self.results, self.files), daemon=True)
            proc.start()
            receive.close()
            self.workers.append(_Worker(proc, send))

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
        self.bundle: list[tuple[int, str, int, bytes]] = []
        self.bundle_bytes = 0

    def _worker(self) -> _Worker:
        worker = min(self.pool.workers, key=lambda w: w.outstanding)
        worker.outstanding += 1
        return worker

    def _flush(self) -> None:
        if not self.bundle:
            return
        worker = self._worker()
        for fid, *_ in self.bundle:
            self.owner[fid] = worker
        try:
            worker.conn.send(("bundle", self.bid, self.bundle))
        except (BrokenPipeError, ConnectionError):
            raise WorkerLost("a scanning process died") from None
        self.bundle, self.bundle_bytes = [], 0

    def submit(self, stream: Readable, path: str, size: int) -> None:
        fid = len(self.owner)
        if size <= SMALL:  # one message per many small files: the pipes' cost is per message
            self.owner.append(None)
            try:
                data = stream.read(SMALL + 1)
            except BaseException:
                self.done[fid] = "the file could not be read to its end"  # the layer error says why
                raise
            self.bundle.append((fid, path, size, data))
            self.bundle_bytes += len(data)
            if self.bundle_bytes >= BUNDLE_BYTES or len(self.bundle) >= BUNDLE_FILES:
                self._flush()
                self._poll(block=False)
            return
        worker = self._worker()
        self.owner.append(worker)
        try:
            worker.conn.send(("file", self.bid, fid, path, size))
            try:
                while chunk := stream.read(CHUNK):
                    worker.conn.send_bytes(chunk)
            finally:  # a read error mid-file still ends the file for the worker, which would wait forever
                worker.conn.send_bytes(b"")
        except (BrokenPipeError, ConnectionError):
            raise WorkerLost("a scanning process died") from None
        self._poll(block=False)

    def _poll(self, block: bool, timeout: float = 1.0) -> bool:
        """Take the results that have come (with ``block``: wait for one); False if none came."""
        got = False
        while True:
            try:
                index, bid, found = self.pool.results.get(block=block, timeout=timeout if block else None)
            except queue.Empty:
                return got
            got = True
            self.pool.workers[index].outstanding -= 1
            if bid == self.bid:  # a layer that ended in an error may leave results behind: not ours
                self.done.update(found)
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


def default_jobs() -> int:
    """Every core this process may use (at least 1); 1 means no extra processes at all."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
