"""The limits of a layer walk and of the archives inside a layer's files, and how many processes
scan by default: what the engine and the command line need to set a scan up, without the walk,
its decompressors or its worker pool (a rescan from the cache imports none of them)."""

from __future__ import annotations

import os
from dataclasses import field

from ..models import Value, value


@value(slots=True)
class NestedLimits(Value):
    """How far the scan goes into archives and compressed files inside a layer."""

    max_depth: int = 5  # archives inside archives (inside the layer)
    max_expanded: int = 4 << 30  # bytes decompressed out of one file of the layer, all levels together
    max_ratio: int = 1100  # ... and at most this many times the file's own size (past the first 64 MiB)
    spool_in_memory: int = 32 << 20  # a zip needs random access: larger ones go to a temporary file


@value(slots=True)
class WalkLimits(Value):
    """What one layer's walk may cost before it stops (and the layer is reported as cut short)."""

    max_file_size: int | None = None  # None: every file, however large, in chunks
    nested: NestedLimits = field(default_factory=NestedLimits)
    max_layer_bytes: int = 64 << 30  # uncompressed bytes in one layer
    max_ratio: int = 1100  # uncompressed / compressed bytes (gzip of zeros reaches ~1030)
    max_members: int = 2_000_000
    max_path: int = 4096
    deadline: float | None = None  # time.monotonic() after which the walk stops


def default_jobs() -> int:
    """Every core this process may use (at least 1); 1 means no extra processes at all."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)
