"""Which layer hides a file: whiteouts, opaque directories, overwrites; hard links across layers.

Follows the OCI layer rules (image-spec layer.md, FORMATS.md 2.1-2.2): a whiteout or an opaque
directory applies only to lower layers; the first later layer that removes, replaces or masks a
path decides its status.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..models import EntryKind, LayerScan, Status
from .walk import WHITEOUT_PREFIX


@dataclass
class _LayerIndex:
    entries: dict[str, EntryKind] = field(default_factory=dict)
    whiteouts: set[str] = field(default_factory=set)  # paths removed from lower layers
    opaque: set[str] = field(default_factory=set)  # directories whose lower children are hidden

    @classmethod
    def of(cls, scan: LayerScan | None) -> _LayerIndex:
        index = cls()
        if scan is None:
            return index
        entries = index.entries
        for e in scan.entries:
            if WHITEOUT_PREFIX not in e.path:  # nearly every entry: no split needed
                entries[e.path] = e.kind
                continue
            parent, base = posixpath.split(e.path)
            if e.kind is EntryKind.OPAQUE:
                index.opaque.add(parent)
            elif e.kind is EntryKind.WHITEOUT:
                index.whiteouts.add(posixpath.join(parent, base[len(WHITEOUT_PREFIX) :]))
            elif not base.startswith(WHITEOUT_PREFIX):  # .wh..wh.* is AUFS metadata, not a file
                index.entries[e.path] = e.kind
        return index


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
            index = self._indexes[layer] = _LayerIndex.of(self._scans[layer])
        return index

    def hider(self, layer: int, path: str, upto: int | None = None) -> tuple[Status, int | None]:
        """Status of ``path`` added in ``layer``, looking at layers above it (up to ``upto``)."""
        ancestors = _ancestors(path)
        end = len(self._scans) if upto is None else upto
        for j in range(layer + 1, end):
            idx = self._index(j)
            if path in idx.whiteouts or any(a in idx.whiteouts for a in ancestors):
                return Status.DELETED, j
            if any(a in idx.opaque for a in ancestors):
                return Status.DELETED, j
            if path in idx.entries and idx.entries[path] is not EntryKind.DIR:
                return Status.OVERWRITTEN, j
            if any(idx.entries.get(a, EntryKind.DIR) is not EntryKind.DIR for a in ancestors):
                return Status.OVERWRITTEN, j  # a parent directory was replaced by a file or link
        return Status.PRESENT, None

    def link_source(self, layer: int, target: str) -> int | None:
        """The layer whose copy of ``target`` a hard link in ``layer`` points at."""
        if self._index(layer).entries.get(target) is EntryKind.FILE:
            return layer
        for k in range(layer - 1, -1, -1):
            if self._index(k).entries.get(target) is EntryKind.FILE:
                status, _ = self.hider(k, target, upto=layer)
                return k if status is Status.PRESENT else None
        return None
