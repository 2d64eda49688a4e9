"""Which layer hides a file: whiteouts, opaque directories, overwrites; hard links across layers.

Follows the OCI layer rules (image-spec layer.md, FORMATS.md 2.1-2.2): a whiteout or an opaque
directory applies only to lower layers; the first later layer that removes, replaces or masks a
path decides its status.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

from ..entries import WHITEOUT_PREFIX, PathIndex, compact
from ..models import EntryKind, LayerScan, Status


class _LayerIndex:
    """What one layer does to the layers below it: the kind of each path it holds (its last entry;
    whiteouts and AUFS metadata aside), the paths it removes and the directories it makes opaque."""

    def __init__(self, scan: LayerScan | None) -> None:
        self.whiteouts: set[str] = set()  # paths removed from lower layers
        self.opaque: set[str] = set()  # directories whose lower children are hidden
        self._kinds: PathIndex | None = None
        if scan is None or not scan.entries:
            return
        entries = compact(scan.entries)
        hidden: set[int] = set()  # entries that are no path of the filesystem
        for i in entries.containing(WHITEOUT_PREFIX):  # few: only these are split
            parent, base = posixpath.split(entries.path(i))
            kind = entries.kind(i)
            if kind is EntryKind.OPAQUE:
                self.opaque.add(parent)
            elif kind is EntryKind.WHITEOUT:
                self.whiteouts.add(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]))
            elif not base.startswith(WHITEOUT_PREFIX):  # .wh..wh.* is AUFS metadata, not a file
                continue
            hidden.add(i)
        self._kinds = PathIndex(entries, lambda i: i not in hidden)

    def kind(self, path: str) -> EntryKind | None:
        return self._kinds.get(path) if self._kinds is not None else None


def _ancestors(path: str) -> list[str]:
    out: list[str] = []
    while True:
        path = posixpath.dirname(path)
        if not path:
            return out
        out.append(path)


class Visibility:
    """Answers, for a path in layer i, which later layer (if any) hides it and how."""

    def __init__(self, layers: Sequence[LayerScan | None]) -> None:
        self._scans = list(layers)
        self._indexes: dict[int, _LayerIndex] = {}  # built when first asked about: a single-layer
        # image (or the top layer of any) never needs its own

    def __len__(self) -> int:
        return len(self._scans)

    def _index(self, layer: int) -> _LayerIndex:
        index = self._indexes.get(layer)
        if index is None:
            index = self._indexes[layer] = _LayerIndex(self._scans[layer])
        return index

    def hider(self, layer: int, path: str, upto: int | None = None) -> tuple[Status, int | None]:
        """Status of ``path`` added in ``layer``, looking at layers above it (up to ``upto``)."""
        end = len(self._scans) if upto is None else upto
        if layer + 1 >= end:
            return Status.PRESENT, None  # no layer above: its ancestors are not even listed
        ancestors = _ancestors(path)
        for j in range(layer + 1, end):
            idx = self._index(j)
            if path in idx.whiteouts or any(a in idx.whiteouts for a in ancestors):
                return Status.DELETED, j
            if any(a in idx.opaque for a in ancestors):
                return Status.DELETED, j
            if idx.kind(path) not in (None, EntryKind.DIR):
                return Status.OVERWRITTEN, j
            if any(idx.kind(a) not in (None, EntryKind.DIR) for a in ancestors):
                return Status.OVERWRITTEN, j  # a parent directory was replaced by a file or link
        return Status.PRESENT, None

    def link_source(self, layer: int, target: str) -> int | None:
        """The layer whose copy of ``target`` a hard link in ``layer`` points at."""
        if self._index(layer).kind(target) is EntryKind.FILE:
            return layer
        for k in range(layer - 1, -1, -1):
            if self._index(k).kind(target) is EntryKind.FILE:
                status, _ = self.hider(k, target, upto=layer)
                return k if status is Status.PRESENT else None
        return None
