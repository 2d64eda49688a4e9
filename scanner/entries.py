"""A layer's entries (every tar member's path, kind, size and link target), kept compactly.

A layer of python's library repeated to 3 GB has 173,000 members, and every path is kept to work
out what later layers delete or overwrite.  As one named tuple a member (its path a str, its size
an int) took about 220 bytes of Python's heap; here the paths are one UTF-8 blob with their ends
in an array, the kinds one byte each and the sizes an array of 8-byte integers: about the path's
own bytes plus 17.  :class:`PathIndex` finds a path's last entry by its hash, in two arrays.
"""

from __future__ import annotations

import itertools
import json
import re
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import overload

from .models import EntryKind, LayerEntry, Stored, compiled

WHITEOUT_PREFIX = ".wh."  # a layer's entry that deletes the path after it from the layers below
OPAQUE = ".wh..wh..opq"  # ... that hides everything below in its directory

_KIND_LIST = tuple(EntryKind)
_CODE = {kind: ord("0") + n for n, kind in enumerate(_KIND_LIST)}  # a kind as one ASCII digit
_CODES = compiled(rb"[0-%d]*" % (len(_KIND_LIST) - 1))
_ENCODING = ("utf-8", "surrogatepass")  # any str (a link target may carry surrogates) round-trips


class LayerEntries(Sequence[LayerEntry]):
    """Read as a sequence of :class:`LayerEntry`, each made when read."""

    __slots__ = ("_big", "_ends", "_kinds", "_links", "_names", "_sizes")

    def __init__(
        self,
        names: bytes,
        ends: array[int],
        kinds: bytes,
        sizes: array[int],
        links: dict[int, str],
        big: dict[int, int],
    ) -> None:
        self._names = names  # every path's UTF-8 bytes, one after the other
        self._ends = ends  # where each path ends in names
        self._kinds = kinds  # one ASCII digit per entry: its kind's place in EntryKind
        self._sizes = sizes
        self._links = links  # entry index -> link target (symlinks and hard links)
        self._big = big  # sizes beyond 64 bits (a crafted header), by entry index

    def __len__(self) -> int:
        return len(self._kinds)

    def path(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        return self._names[start : self._ends[i]].decode(*_ENCODING)

    def paths(self) -> Iterator[str]:
        names, start = self._names, 0
        for end in self._ends:
            yield names[start:end].decode(*_ENCODING)
            start = end

    def kind(self, i: int) -> EntryKind:
        return _KIND_LIST[self._kinds[i] - 48]

    def _entry(self, i: int) -> LayerEntry:
        size = self._sizes[i] if i not in self._big else self._big[i]
        return LayerEntry(self.path(i), self.kind(i), size, self._links.get(i))

    @overload
    def __getitem__(self, index: int) -> LayerEntry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LayerEntry]: ...
    def __getitem__(self, index: int | slice) -> LayerEntry | Sequence[LayerEntry]:
        if isinstance(index, slice):
            return tuple(self._entry(i) for i in range(len(self))[index])
        return self._entry(range(len(self))[index])  # a negative index counts from the end; IndexError

    def __iter__(self) -> Iterator[LayerEntry]:
        return (self._entry(i) for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def hard_links(self) -> list[LayerEntry]:
        hard = _CODE[EntryKind.HARDLINK]
        return [self._entry(i) for i in self._links if self._kinds[i] == hard]

    def containing(self, part: str) -> list[int]:
        """The entries whose path contains ``part``, found in the blob (no path made for the rest)."""
        found: list[int] = []
        for m in re.finditer(re.escape(part.encode(*_ENCODING)), self._names):
            i = bisect_right(self._ends, m.start())
            # the match must lie inside one path, not across the end of one and the start of the next
            if m.end() <= self._ends[i] and (not found or found[-1] != i):
                found.append(i)
        return found

    def to_json(self) -> str:
        """The JSON text of ``[names, path lengths in bytes, kinds, sizes, [[index, target], ...]]``."""
        starts = itertools.chain((0,), self._ends)
        lengths = [end - start for start, end in zip(starts, self._ends, strict=False)]
        sizes: list[int] = self._sizes.tolist()
        for i, size in self._big.items():
            sizes[i] = size
        doc = [self._names.decode(*_ENCODING), lengths, self._kinds.decode("ascii"), sizes, list(self._links.items())]
        return json.dumps(doc)

    @classmethod
    def from_json(cls, text: str | bytes) -> LayerEntries:
        """What :meth:`to_json` wrote; ValueError for anything else."""
        try:
            names_text, lengths, kinds_text, sizes, links = json.loads(text)
            names, kinds = names_text.encode(*_ENCODING), kinds_text.encode("ascii")
            ends = array("Q", itertools.accumulate(lengths))
            if (
                not all(isinstance(n, int) for n in lengths)
                or not _CODES().fullmatch(kinds)
                or len(ends) != len(kinds)
                or (ends[-1] if ends else 0) != len(names)
                or len(sizes) != len(kinds)
                or not all(isinstance(n, int) and n >= 0 for n in sizes)
            ):
                raise ValueError
            links_map = {int(i): str(t) for i, t in links if isinstance(i, int) and isinstance(t, str)}
            if len(links_map) != len(links) or any(not 0 <= i < len(kinds) for i in links_map):
                raise ValueError
        except (ValueError, TypeError, AttributeError, OverflowError, RecursionError, UnicodeError):
            raise ValueError("a cached layer's entries are damaged") from None
        packed, big = _pack_sizes(sizes)
        return cls(names, ends, kinds, packed, links_map, big)

    @classmethod
    def of(cls, entries: Iterable[LayerEntry]) -> LayerEntries:
        if isinstance(entries, LayerEntries):
            return entries
        builder = EntriesBuilder()
        for e in entries:
            builder.add(e.path, e.kind, e.size, e.link_target)
        return builder.build()


def _pack_sizes(sizes: Iterable[int]) -> tuple[array[int], dict[int, int]]:
    packed, big = array("q"), {}
    for i, size in enumerate(sizes):
        try:
            packed.append(size)
        except OverflowError:
            packed.append(-1)
            big[i] = size
    return packed, big


class EntriesBuilder:
    """A layer's entries as the walk meets them; :meth:`build` gives the :class:`LayerEntries`."""

    __slots__ = ("_big", "_ends", "_kinds", "_links", "_names", "_sizes")

    def __init__(self) -> None:
        self._names = bytearray()
        self._ends: array[int] = array("Q")
        self._kinds = bytearray()
        self._sizes: array[int] = array("q")
        self._links: dict[int, str] = {}
        self._big: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self._kinds)

    def add(self, path: str, kind: EntryKind, size: int = 0, link_target: str | None = None) -> None:
        self._names += path.encode(*_ENCODING)
        self._ends.append(len(self._names))
        if link_target is not None:
            self._links[len(self._kinds)] = link_target
        try:
            self._sizes.append(size)
        except OverflowError:
            self._sizes.append(-1)
            self._big[len(self._kinds)] = size
        self._kinds.append(_CODE[kind])

    def path(self, i: int) -> str:
        start = self._ends[i - 1] if i else 0
        return self._names[start : self._ends[i]].decode(*_ENCODING)

    def build(self) -> LayerEntries:
        return LayerEntries(bytes(self._names), self._ends, bytes(self._kinds), self._sizes, self._links, self._big)


class PathIndex:
    """The kind of each path's last entry among those ``keep`` accepts, found by the path's hash:
    two arrays of 8 bytes an entry instead of a dict of str keys."""

    __slots__ = ("_entries", "_hashes", "_order")

    def __init__(self, entries: LayerEntries, keep: Callable[[int], bool] = lambda i: True) -> None:
        names, ends = entries._names, entries._ends
        starts = itertools.chain((0,), ends)
        kept = [i for i in range(len(entries)) if keep(i)]
        hashes = [hash(names[s:e]) for s, e in zip(starts, ends, strict=False)]
        kept.sort(key=hashes.__getitem__)  # stable: a path's entries stay in the order of the layer
        self._entries = entries
        self._order: array[int] = array("Q", kept)
        self._hashes: array[int] = array("q", [hashes[i] for i in kept])

    def get(self, path: str) -> EntryKind | None:
        key = path.encode(*_ENCODING)
        at, last = bisect_left(self._hashes, hash(key)), None
        names, ends = self._entries._names, self._entries._ends
        while at < len(self._hashes) and self._hashes[at] == hash(key):
            i = self._order[at]
            if names[(ends[i - 1] if i else 0) : ends[i]] == key:
                last = i
            at += 1
        return self._entries.kind(last) if last is not None else None


class LazyEntries(Sequence[LayerEntry]):
    """A cached layer's entries, parsed (and their stored text checked) by ``load`` when first read
    (scanner.cache): a rescan of a one-layer image only looks for hard links, which the cache keeps
    apart, and never reads the rest."""

    __slots__ = ("_count", "_links", "_stored")

    def __init__(self, load: Callable[[], LayerEntries], count: int, links: list[LayerEntry]) -> None:
        self._stored = Stored(load)
        self._count = count
        self._links = links

    def compact(self) -> LayerEntries:
        return self._stored.load()

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> LayerEntry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LayerEntry]: ...
    def __getitem__(self, index: int | slice) -> LayerEntry | Sequence[LayerEntry]:
        return self.compact()[index]

    def __iter__(self) -> Iterator[LayerEntry]:
        return iter(self.compact())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and tuple(self) == tuple(other)

    __hash__ = None  # type: ignore[assignment]

    def hard_links(self) -> list[LayerEntry]:
        return list(self._links)


def compact(entries: Sequence[LayerEntry]) -> LayerEntries:
    """Any layer's entries as :class:`LayerEntries` (made from a tuple, parsed from the cache)."""
    if isinstance(entries, LazyEntries):
        return entries.compact()
    return LayerEntries.of(entries)


def hard_links(entries: Sequence[LayerEntry]) -> list[LayerEntry]:
    """The hard links among a layer's entries (without parsing a cached layer's entries)."""
    if isinstance(entries, LazyEntries | LayerEntries):
        return entries.hard_links()
    return [e for e in entries if e.kind is EntryKind.HARDLINK]
