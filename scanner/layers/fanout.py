"""``--jobs N`` over layers: the layers of a seekable source walked several at once.

A tarball on disk or an OCI layout can read each layer blob again on a file handle of its own
(``Member.detached``).  :func:`scanner.layers.collect.collect` then leaves such layers for the end
of the archive's walk and hands them here: W forked processes (W <= N, from the layers' sizes:
:func:`walkers`) each take a whole layer, largest first, and decompress, hash and scan it
themselves, so the one serial process of the pipeline (decompression, tar walk and digests in the
main process, see :mod:`scanner.layers.parallel`) is no longer one for the whole image.  Each
walker has max(1, N // W) file workers of its own, and hands them files only while fewer layers
are under way than N: while every core walks a layer, it runs the detectors itself (a hand-off
costs CPU), and once the other layers are done, its file workers take the cores they left (a
layer that holds most of the image is then not scanned by a single process).

A layer's result is worked out as a *plan* (a generator run in this process, where the layer cache
is): it asks for steps on the layer's bytes, ``"hash"`` (their digest) and ``"walk"`` (a
``LayerScan``), which the processes carry out; every result comes back to its own plan, so the
results, put in the archive's order, are the serial walk's.  Fork, as for the file workers: the
processes inherit the compiled detectors.  Where no process can start (a daemonic process) or one
dies, the steps run here, one after the other: the same results, slower.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..models import LayerScan, Readable
from .nested import FileScanner
from .parallel import FilePool
from .streams import HashingReader
from .walk import READ_ERRORS, LayerWalker, WalkLimits

if TYPE_CHECKING:  # imported when layers are walked at once: multiprocessing is a tenth of start-up
    from concurrent.futures import Future, ProcessPoolExecutor

    from ..detectors.content import ContentScanner

Step = Literal["hash", "walk"]
Plan = Generator[Step, Any, Any]  # sends str (a digest) or LayerScan, returns the layer's result


@dataclass
class Task:
    plan: Plan
    open: Callable[[], Readable]  # the layer's bytes from the first, on a handle of its own (picklable)
    size: int  # for the order: the largest layer first, so that it does not start last


_WALKER: LayerWalker | None = None  # in a fanout process: its walker, made once when it starts
_BUSY: Any = None  # in a fanout process: the count of layer steps under way in all of them


def _start(scanner: ContentScanner, limits: WalkLimits, workers: int, busy: Any, jobs: int) -> None:
    """A fanout process's walker, which hands its files to ``workers`` file workers of its own, as
    the main process does with one layer.  With as many layers under way (``busy``) as ``jobs``,
    the walker scans its files itself: the cores are taken, and a hand-off through a pipe costs
    CPU (a venv image: 6.4 -> 7.8 s); once fewer layers are left than cores, its workers take the
    files (a layer that holds most of the image no longer runs on one core)."""
    from multiprocessing.util import Finalize

    global _WALKER, _BUSY  # one per forked process, never set in the main one
    _BUSY = busy
    pool = None
    try:
        pool = FilePool(FileScanner(scanner, limits.nested), max(1, workers), busy=busy, cores=jobs).__enter__()
    except (OSError, ValueError, AssertionError):  # ends with the process
        pool = None  # the same scan, in this process
    else:  # closed when the process ends (its folder of temporary files had stayed in /dev/shm)
        Finalize(pool, pool.__exit__, exitpriority=10)
    _WALKER = LayerWalker(scanner, limits, pool=pool)


def run_step(walker: LayerWalker, step: Step, opener: Callable[[], Readable]) -> tuple[str | LayerScan, int]:
    """One step on a layer's bytes, and how many bytes of files it scanned (for the progress)."""
    stream = opener()
    try:
        if step == "hash":
            reader = HashingReader(stream)
            reader.drain()
            return reader.digest, 0
        scanned = [0]
        walker.on_bytes = lambda n: scanned.__setitem__(0, scanned[0] + n)
        return walker.walk(stream), scanned[0]
    finally:
        close = getattr(stream, "close", None)
        if close is not None:
            close()


def _child_step(step: Step, opener: Callable[[], Readable]) -> tuple[str | LayerScan, int]:
    assert _WALKER is not None
    with _BUSY.get_lock():
        _BUSY.value += 1
    try:
        return run_step(_WALKER, step, opener)
    finally:
        with _BUSY.get_lock():
            _BUSY.value -= 1


# The pipeline's measured shape (docs/performance.md, "Scaling past two cores"): the main process's
# stages (read, decompress, hash, tar walk, hand-off) are 38-45 % (an uncompressed layer) to 59 %
# (gzip) of a layer's work since the detectors got cheaper (a third before), and two cores gave it
# 1.2-1.3 times the speed of one: its speed-up on N cores is taken as
# min(PIPE_EFFICIENCY * N, 1 / PIPE_SERIAL), and a layer's time as its size (see walkers()).
PIPE_SERIAL, PIPE_EFFICIENCY = 0.40, 0.65


def _speedup(jobs: int) -> float:
    """The pipeline's speed-up with ``jobs`` file workers (1: the detectors in the walker)."""
    return min(PIPE_EFFICIENCY * jobs, 1 / PIPE_SERIAL) if jobs > 1 else 1.0


def fanout_time(sizes: list[int], jobs: int, n: int) -> float:
    """How long ``sizes`` take on ``n`` walkers, the largest first, each walker with max(1,
    ``jobs`` // n) file workers: while as many layers are under way as ``jobs``, each walker scans
    alone (speed 1); while fewer, the cores they leave go to the walkers still busy (their file
    workers and the walker: the pipeline's speed-up on those cores)."""
    todo, spent = sorted(sizes, reverse=True), 0.0
    busy: list[float] = []  # what is left of each layer under way
    pool = max(1, jobs // n)
    while todo or busy:
        while todo and len(busy) < n:
            busy.append(float(todo.pop(0)))
        speed = 1.0 if len(busy) >= jobs else _speedup(min(pool + 1, jobs // len(busy)))
        step = min(busy)
        spent += step / speed
        busy = [left - step for left in busy if left > step]
    return spent


# A walker's results travel back pickled, serial and left out of the model (see docs/performance.md,
# "Scaling past two cores"): the fanout must win by this much.  Where the other layers are a few
# kilobytes, the pipeline walks them in no time and the pickling is saved.
FANOUT_MARGIN = 0.97


def walkers(sizes: list[int], jobs: int) -> int:
    """How many layers to walk at once (:func:`fanout_time`) so that the layers, by their sizes,
    should take the least time; 0 when walking them one after the other through the pipeline with
    ``jobs`` file workers should be fastest (one layer, or one and a few small ones)."""
    best, choice = FANOUT_MARGIN * sum(sizes) / _speedup(jobs), 0
    for n in range(2, min(jobs, len(sizes)) + 1):
        if (spent := fanout_time(sizes, jobs, n)) < best:
            best, choice = spent, n
    return choice


class Fanout:
    """Forked layer walkers, started on first use; use as a context manager.  With W layers at
    once (:func:`walkers`) and ``jobs`` // W > 1, each walker has that many file workers."""

    def __init__(
        self,
        scanner: Callable[[], ContentScanner],
        limits: WalkLimits,
        jobs: int,
        on_bytes: Callable[[int], None] | None = None,
    ) -> None:
        self.scanner, self.limits = scanner, limits
        self.jobs = jobs
        self.on_bytes = on_bytes
        self.pool: ProcessPoolExecutor | None = None
        self.here: LayerWalker | None = None  # for the steps run in this process

    def __enter__(self) -> Fanout:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def _local(self, step: Step, opener: Callable[[], Readable]) -> tuple[str | LayerScan, int]:
        if self.here is None:
            self.here = LayerWalker(self.scanner(), self.limits)
        return run_step(self.here, step, opener)

    def run(self, tasks: list[Task], walkers: int) -> list[Any]:
        """Each task's plan run to its end, ``walkers`` at once: its result, or the read error
        that ended it (as the serial walk would have raised it), in the order of ``tasks``."""
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        if self.pool is None:
            fork = multiprocessing.get_context("fork")
            start = (self.scanner(), self.limits, self.jobs // walkers, fork.Value("i", 0), self.jobs)
            self.pool = ProcessPoolExecutor(walkers, fork, initializer=_start, initargs=start)
        results: list[Any] = [None] * len(tasks)
        pending: dict[Future[tuple[str | LayerScan, int]], tuple[int, Step]] = {}
        here: list[tuple[int, Step]] = []  # steps to run in this process: no process could start, or one died

        def advance(k: int, value: Any) -> None:
            try:
                step = tasks[k].plan.send(value)
            except StopIteration as done:
                results[k] = done.value
                return
            try:
                pending[self.pool.submit(_child_step, step, tasks[k].open)] = (k, step)  # type: ignore[union-attr]
            except (BrokenProcessPool, RuntimeError, AssertionError, OSError):  # AssertionError: a daemonic process
                here.append((k, step))

        def settle(k: int, outcome: Callable[[], tuple[str | LayerScan, int]]) -> None:
            try:
                value, scanned = outcome()
            except READ_ERRORS as exc:
                results[k] = exc
                tasks[k].plan.close()
                return
            if scanned and self.on_bytes is not None:
                self.on_bytes(scanned)
            advance(k, value)

        for k in sorted(range(len(tasks)), key=lambda k: -tasks[k].size):
            advance(k, None)
        while pending or here:
            if here:
                k, step = here.pop(0)
                settle(k, functools.partial(self._local, step, tasks[k].open))
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                k, step = pending.pop(future)
                if isinstance(future.exception(), BrokenProcessPool):  # a walker died: the step again, here
                    here.append((k, step))
                else:
                    settle(k, future.result)
        return results
