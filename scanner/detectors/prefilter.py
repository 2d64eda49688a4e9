"""Hyperscan passes: which of many regexes can match a window, and where literals and runs lie.

Every rule's regex is compiled with HS_FLAG_PREFILTER (constructs Hyperscan lacks, such as
lookbehind, are widened, never narrowed) and HS_FLAG_SINGLEMATCH, so a scan of a window reports
each rule that *may* match, at a few GB/s.  Only those rules then run their exact Python regex.
The content scanner puts every detector's expressions into one database (:class:`HsPass`): one
read of a window for all of them.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import re
import threading
from abc import abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

import hyperscan

from ..cache import default_dir, touch, write_atomically
from .interface import Detector, Match

_INLINE_M = "(?m)"
_SHIFT = 24  # an expression's id in a pass: its group (a detector) above, its index below
_LOCAL = (1 << _SHIFT) - 1

Expr = tuple[bytes, int]  # a Hyperscan expression and its flags
Event = tuple[int, int, int]  # (index of the expression in its group, start, end); (i, -1, -1): "may match anywhere"


def prefilter_expression(regex: str, flags: int) -> Expr:
    """A Python regex as a Hyperscan prefilter: reported once per window if it may match there."""
    hs_flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
    if flags & re.IGNORECASE:
        hs_flags |= hyperscan.HS_FLAG_CASELESS
    if regex.startswith(_INLINE_M):
        regex = regex[len(_INLINE_M) :]
        hs_flags |= hyperscan.HS_FLAG_MULTILINE
    if flags & re.MULTILINE:
        hs_flags |= hyperscan.HS_FLAG_MULTILINE
    return regex.encode(), hs_flags


def caseless_literal(text: bytes) -> Expr:
    """An exact text, in any case, as an expression that reports every place it ends."""
    return re.escape(text), hyperscan.HS_FLAG_CASELESS


class HsPass:
    """One Hyperscan pass over a window for groups of expressions, one group per detector.

    The content scanner puts every detector's expressions (rule prefilters, detect-secrets' and the
    entropy detector's gates, base64 runs) into one database, so a window is read once, not once
    per detector.  Events come
    back split by group.  An expression Hyperscan cannot compile, even as a prefilter (a user's
    custom rule, say), gives the event ``(i, -1, -1)`` in every window: slower, never a miss.
    Compiled on first use: a scan whose layers all come from the cache never pays for it.
    """

    def __init__(self, groups: Sequence[Sequence[Expr]]) -> None:
        self._groups = [list(g) for g in groups]
        if len(self._groups) > 127 or any(len(g) > _LOCAL for g in self._groups):
            raise ValueError("too many expressions for one Hyperscan pass")
        self._ready = False
        self._any_always = False
        self._always: list[list[Event]] = [[] for _ in self._groups]
        self._db: hyperscan.Database | None = None
        self._scratch = threading.local()  # a scratch space is not thread-safe; a database is
        # an expression that several groups declare (an assignment gate that the entropy, vendor
        # context and pattern detectors all wait for) is compiled once: its events go to each
        self._also: dict[int, list[tuple[int, int]]] = {}

    def _build(self) -> None:
        self._ready = True
        entries = []
        first: dict[Expr, int] = {}
        for g, group in enumerate(self._groups):
            for i, (expr, flags) in enumerate(group):
                ident = (g << _SHIFT) | i
                if (expr, flags) in first:
                    self._also.setdefault(first[expr, flags], []).append((g, i))
                    continue
                first[expr, flags] = ident
                entries.append((ident, expr, flags))
        usable = _compile(entries)
        if usable is None:  # find the expressions Hyperscan rejects and report those everywhere
            good = []
            for entry in entries:
                if _compile([entry]) is None:
                    for g, i in [(entry[0] >> _SHIFT, entry[0] & _LOCAL), *self._also.get(entry[0], ())]:
                        self._always[g].append((i, -1, -1))
                else:
                    good.append(entry)
            usable = _compile(good) if good else None
        self._db = usable
        self._any_always = any(self._always)

    def scan(self, data: bytes) -> list[list[Event]]:
        """Every group's events in ``data``, in the order Hyperscan reports them."""
        events = self.events(data)
        return [[] for _ in self._groups] if events is None else events

    def events(self, data: bytes) -> list[list[Event]] | None:
        """:meth:`scan`, or None when no group has an event: most windows of an image, which a
        caller can then pass over without asking each group."""
        if not self._ready:
            self._build()
        found: list[Event] = []
        if self._db is not None and data:
            scratch = getattr(self._scratch, "space", None)
            if scratch is None:
                scratch = self._scratch.space = hyperscan.Scratch(self._db)
            # positional arguments and a callback made once: keywords cost 0.3 us a call (the
            # binding makes each keyword's name a string to look it up) and a closure made per
            # call a little more, in a pass run on every window
            self._db.scan(data, _collect, 0, found, scratch)  # type: ignore[arg-type]  # the stub's context: object
        if not found and not self._any_always:
            return None
        if len(self._groups) == 1 and not self._any_always and not self._also:
            return [found]  # one group, each expression once: its ids are its indexes
        out = [list(a) for a in self._always] if self._any_always else [[] for _ in self._groups]
        also = self._also
        for ident, start, end in found:
            out[ident >> _SHIFT].append((ident & _LOCAL, start, end))
            if also and ident in also:
                for g, i in also[ident]:
                    out[g].append((i, start, end))
        return out


def _collect(ident: int, start: int, end: int, flags: int, found: list[Event]) -> None:
    found.append((ident, start, end))


def _add_end(ident: int, start: int, end: int, flags: int, found: list[int]) -> None:
    found.append(end)


class OneExpression:
    """A pass of one expression of ours, asked only where its matches end: the base64 runs' gate
    and search, run on most windows, where HsPass's groups and tuples were a third of the cost of a
    small window's call.  The expression must compile (a test builds each one)."""

    def __init__(self, expr: bytes, flags: int) -> None:
        self._entry = (0, expr, flags)
        self._db: hyperscan.Database | None = None
        self._scratch = threading.local()

    def _ready(self) -> tuple[hyperscan.Database, hyperscan.Scratch]:
        """The database and this thread's scratch space, kept together in one thread-local
        attribute: asked twice a window (a lookup and a call each, not two and a call)."""
        db = self._db
        if db is None:
            db = _compile([self._entry])
            if db is None:
                raise ValueError(f"Hyperscan cannot compile {self._entry[1]!r}")
            self._db = db
        ready: tuple[hyperscan.Database, hyperscan.Scratch] = (db, hyperscan.Scratch(db))
        self._scratch.ready = ready
        return ready

    def first_end(self, data: bytes | memoryview) -> int:
        """Where the first match in ``data`` ends, or -1.  For an expression compiled with
        HS_FLAG_SINGLEMATCH (one report; stopping the scan from the callback costs more than the
        rest of the window: Hyperscan raises through Python to stop)."""
        db, scratch = getattr(self._scratch, "ready", None) or self._ready()
        found: list[int] = []
        db.scan(data, _add_end, 0, found, scratch)  # type: ignore[arg-type,type-var]  # positional: see HsPass.events
        return found[0] if found else -1

    def ends(self, data: bytes | memoryview) -> list[int]:
        """Where every match in ``data`` ends, in order."""
        db, scratch = getattr(self._scratch, "ready", None) or self._ready()
        found: list[int] = []
        db.scan(data, _add_end, 0, found, scratch)  # type: ignore[arg-type,type-var]  # positional: see HsPass.events
        return found


def _compile(entries: Sequence[tuple[int, bytes, int]]) -> hyperscan.Database | None:
    if not entries:
        return None
    cached = _load_compiled(entries)
    if cached is not None:
        return cached
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    try:
        db.compile(
            expressions=[e[1] for e in entries],
            ids=[e[0] for e in entries],
            elements=len(entries),
            flags=[e[2] for e in entries],
        )
    except hyperscan.error:
        return None
    _save_compiled(entries, db)
    return db


# Compiling ~200 rules takes about 0.5 s, paid by every run; a compiled database is kept on disk,
# keyed by the exact expressions, flags and ids and by the Hyperscan build and machine, and loaded
# in milliseconds.  Hyperscan checks a loaded database against this CPU; any failure is a compile.


def _compiled_path(entries: Sequence[tuple[int, bytes, int]]) -> Path:
    h = hashlib.sha256(f"{getattr(hyperscan, '__version__', '?')}|{platform.machine()}|".encode())
    for i, expr, flags in entries:
        h.update(b"%d|%d|%d|" % (i, flags, len(expr)) + expr)
    return default_dir().parent / "hyperscan" / f"{h.hexdigest()[:40]}.db"  # beside the layer cache


def _load_compiled(entries: Sequence[tuple[int, bytes, int]]) -> hyperscan.Database | None:
    path = _compiled_path(entries)
    try:
        db = hyperscan.loadb(path.read_bytes(), mode=hyperscan.HS_MODE_BLOCK)  # scratch: HsPass
    except (OSError, hyperscan.error):
        return None
    touch(path)
    return db


def _save_compiled(entries: Sequence[tuple[int, bytes, int]], db: hyperscan.Database) -> None:
    with contextlib.suppress(hyperscan.error):  # only a slower start next time
        write_atomically(_compiled_path(entries), hyperscan.dumpb(db))


_passes: dict[tuple[tuple[Expr, ...], ...], HsPass] = {}
_passes_lock = threading.Lock()


def pass_for(groups: Sequence[Sequence[Expr]]) -> HsPass:
    """A pass over these groups, shared by every detector and scanner of this process that asks."""
    key = tuple(tuple(g) for g in groups)
    with _passes_lock:
        if key not in _passes:
            _passes[key] = HsPass(key)
        return _passes[key]


class PassDetector(Detector):
    """A detector gated by Hyperscan expressions: in the content scanner they join the shared pass
    and their events come to :meth:`find_events`; alone, :meth:`find` runs them in a pass of its own."""

    _expressions: list[Expr]
    _own_pass: HsPass | None = None

    def expressions(self) -> list[Expr]:
        return self._expressions

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        if self._own_pass is None:
            self._own_pass = pass_for([self._expressions])
        return self.find_events(data, path, self._own_pass.scan(data)[0])

    @abstractmethod
    def find_events(self, data: bytes, path: str | None, events: list[Event]) -> Iterator[Match]:
        """The matches in a window, given this detector's events in it.  With no event there is
        no match: the content scanner does not call it then (tests check every detector)."""
