"""Which of many regexes can match a window, in one pass: Hyperscan in prefilter mode.

Every rule's regex is compiled into one Hyperscan database with HS_FLAG_PREFILTER (constructs
Hyperscan lacks, such as lookbehind, are widened, never narrowed) and HS_FLAG_SINGLEMATCH, so a
scan of a window reports each rule that *may* match, at a few GB/s.  Only those rules then run
their exact Python regex.  A regex that Hyperscan cannot compile even as a prefilter (a user's
custom rule, say) is reported as a candidate for every window: slower, never a miss.
"""

from __future__ import annotations

import contextlib
import hashlib
import platform
import re
import threading
from collections.abc import Sequence
from pathlib import Path

import hyperscan

from ..cache import default_dir, write_atomically

_INLINE_M = "(?m)"


def _hs_expression(regex: str, flags: int) -> tuple[bytes, int]:
    hs_flags = hyperscan.HS_FLAG_PREFILTER | hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY
    if flags & re.IGNORECASE:
        hs_flags |= hyperscan.HS_FLAG_CASELESS
    if regex.startswith(_INLINE_M):
        regex = regex[len(_INLINE_M) :]
        hs_flags |= hyperscan.HS_FLAG_MULTILINE
    if flags & re.MULTILINE:
        hs_flags |= hyperscan.HS_FLAG_MULTILINE
    return regex.encode(), hs_flags


class Prefilter:
    """Compiled on first use: a scan whose layers all come from the cache never pays for it."""

    def __init__(self, patterns: Sequence[tuple[str, int]]) -> None:
        self._patterns = list(patterns)
        self._ready = False
        self.always: set[int] = set()
        self._db: hyperscan.Database | None = None

    def _build(self) -> None:
        self._ready = True
        compiled = [(i, *_hs_expression(regex, flags)) for i, (regex, flags) in enumerate(self._patterns)]
        usable = self._compile(compiled)
        if usable is None:  # find the expressions Hyperscan rejects and run those everywhere
            good = []
            for entry in compiled:
                if self._compile([entry]) is None:
                    self.always.add(entry[0])
                else:
                    good.append(entry)
            usable = self._compile(good) if good else None
        self._db = usable

    @staticmethod
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

    def candidates(self, data: bytes) -> set[int]:
        """Indexes of the patterns that may match somewhere in ``data``."""
        if not self._ready:
            self._build()
        found = set(self.always)
        if self._db is not None and data:

            def on_match(pattern: int, start: int, end: int, flags: int, context: object) -> None:
                found.add(pattern)

            self._db.scan(data, match_event_handler=on_match)
        return found


# Compiling ~200 rules takes about 0.5 s, paid by every run; a compiled database is kept on disk,
# keyed by the exact expressions, flags and ids and by the Hyperscan build and machine, and loaded
# in milliseconds.  Hyperscan checks a loaded database against this CPU; any failure is a compile.


def _compiled_path(entries: Sequence[tuple[int, bytes, int]]) -> Path:
    h = hashlib.sha256(f"{getattr(hyperscan, '__version__', '?')}|{platform.machine()}|".encode())
    for i, expr, flags in entries:
        h.update(b"%d|%d|%d|" % (i, flags, len(expr)) + expr)
    return default_dir().parent / "hyperscan" / f"{h.hexdigest()[:40]}.db"  # beside the layer cache


def _load_compiled(entries: Sequence[tuple[int, bytes, int]]) -> hyperscan.Database | None:
    try:
        db = hyperscan.loadb(_compiled_path(entries).read_bytes(), mode=hyperscan.HS_MODE_BLOCK)
        db.scratch = hyperscan.Scratch(db)
        return db
    except (OSError, hyperscan.error):
        return None


def _save_compiled(entries: Sequence[tuple[int, bytes, int]], db: hyperscan.Database) -> None:
    with contextlib.suppress(hyperscan.error):  # only a slower start next time
        write_atomically(_compiled_path(entries), hyperscan.dumpb(db))


_local = threading.local()


def prefilter_for(patterns: Sequence[tuple[str, int]]) -> Prefilter:
    """A compiled prefilter, reused within a thread (a Hyperscan scratch space is not thread-safe)."""
    key = tuple(patterns)
    cache: dict[tuple[tuple[str, int], ...], Prefilter] = _local.__dict__.setdefault("cache", {})
    if key not in cache:
        cache[key] = Prefilter(key)
    return cache[key]
