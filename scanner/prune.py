"""Keeping the cache folders within bounds.

Nothing in the caches is ever stale (every name is a hash of what it depends on), but a name can
be dead: a layer cached under the namespace of leakscan's previous version, of rules since
changed, of a known secret rotated since (a per-run token makes a namespace per run), the
Hyperscan databases and parsed rules of a configuration since changed.  Left alone they grow
without end on a CI runner that keeps its cache.

So after a scan that used the layer cache, at most once a day (a stamp file), leakscan removes
from its own folders the files that no run has used for :data:`MAX_AGE`, and then, while what is
left is larger than the limit (``--cache-max-size``), the least recently used ones.  A file is
used when it is written or read (:func:`scanner.cache.touch`), so its mtime says when it last was.
A file used in the last :data:`RECENT` seconds is never removed (a scan running now may need it
again).  Only files with the names leakscan gives them are candidates: a ``--cache-dir`` pointed at
a folder that holds other files (the fingerprint key, say) keeps them.  Every step is best effort:
a file that cannot be removed (another process took it first, a read-only cache) is left, and a
scan never fails for it.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from pathlib import Path

MAX_BYTES = 2 << 30  # --cache-max-size's default
MAX_AGE = 30 * 86400  # unused for this long: removed, whatever the size
RECENT = 3600  # used this recently: kept, whatever the size
EVERY = 86400  # at most one pruning a day
STAMP = ".pruned"
TEMP_AGE = 86400  # a write_atomically temporary file this old was left by a process that died

# (folder, the names of its files that leakscan writes), relative to the layer cache's folder or
# (the other caches) to leakscan's cache folder beside it (see cache.default_dir); compiled when a
# pruning is due, not at every run's import
_NAMESPACE = r"[0-9a-f]{32}"
_IN_NAMESPACE = r"[a-z0-9][a-z0-9.-]*\.json"  # sha256-<hex>, meta-<hex>, owners-<hex>, export-sha256-<hex>
_LAYERS_FIXED = (("proofs", r"sha256-[0-9a-f]{64}\.json"),)
_OTHERS = (
    ("hyperscan", r"[0-9a-f]{40}\.db|anchored-[0-9a-f]{40}\.json"),
    ("rules", r"[0-9a-f]{40}\.json"),
    ("code", r"[0-9a-f]{64}"),
)
_TEMP = r"\.tmp-[A-Za-z0-9_]+"  # write_atomically's


def due(layers: Path) -> bool:
    """Whether the stamp in the layer cache's folder is a day old (or missing)."""
    try:
        return time.time() - os.stat(layers / STAMP).st_mtime >= EVERY
    except OSError:
        return True


def maybe_prune(layers: Path, max_bytes: int, others: Path | None = None) -> tuple[int, int] | None:
    """Prune if :func:`due`, stamping first (a concurrent scan then skips); (files, bytes) removed."""
    if not due(layers):
        return None
    try:
        layers.mkdir(parents=True, exist_ok=True)
        (layers / STAMP).touch()
    except OSError:
        return None  # a read-only cache: nothing to prune there either
    return prune(layers, max_bytes, others)


def _namespaces(layers: Path) -> list[tuple[Path, re.Pattern[str]]]:
    """The layer cache's namespace folders, with the names of their files."""
    name, files = re.compile(_NAMESPACE), re.compile(_IN_NAMESPACE)
    try:
        with os.scandir(layers) as it:
            return [(Path(e.path), files) for e in it if name.fullmatch(e.name) and e.is_dir(follow_symlinks=False)]
    except OSError:
        return []


def prune(layers: Path, max_bytes: int, others: Path | None = None, now: float | None = None) -> tuple[int, int]:
    """Remove leakscan's files unused for MAX_AGE, then the least recently used while the rest is
    over ``max_bytes`` (0: no limit); ``others``: the folder of the Hyperscan, rules and code
    caches.  Returns (files, bytes) removed."""
    now = time.time() if now is None else now
    kept: list[tuple[float, int, str]] = []
    removed = [0, 0]

    def remove(path: str, size: int) -> None:
        try:
            os.unlink(path)
        except OSError:
            return
        removed[0] += 1
        removed[1] += size

    namespaces = _namespaces(layers)
    folders = namespaces + [(layers / name, re.compile(files)) for name, files in _LAYERS_FIXED]
    if others is not None:
        folders += [(others / name, re.compile(files)) for name, files in _OTHERS]
    temp = re.compile(_TEMP)
    for folder, files in folders:
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError:
            continue
        for entry in entries:
            ours, stray = files.fullmatch(entry.name), temp.fullmatch(entry.name)
            if not (ours or stray):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if not entry.is_file(follow_symlinks=False):
                continue
            age = now - st.st_mtime
            if stray:
                if age > TEMP_AGE:
                    remove(entry.path, st.st_size)
            elif age > MAX_AGE:
                remove(entry.path, st.st_size)
            else:
                kept.append((st.st_mtime, st.st_size, entry.path))
    total = sum(size for _, size, _ in kept)
    if max_bytes and total > max_bytes:
        for mtime, size, path in sorted(kept):
            if total <= max_bytes * 3 // 4 or now - mtime < RECENT:
                break  # oldest first: the rest is more recent still
            remove(path, size)
            total -= size
    for folder, _ in namespaces:
        with contextlib.suppress(OSError):
            folder.rmdir()  # a namespace left empty; one that is not fails
    return removed[0], removed[1]
