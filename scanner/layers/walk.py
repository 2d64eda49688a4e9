"""One layer blob -> what is in it: every entry, the hits in every regular file, the digests.

The blob is read once, as a stream: compression is detected from magic bytes, the raw and the
uncompressed bytes are hashed on the way (blob digest and diff_id), and each regular file is handed
to the content scanner in chunks.  Nothing is extracted to disk.  A read error ends the walk with
``LayerScan.error`` set; what was found before it is kept.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..entries import OPAQUE, WHITEOUT_PREFIX, EntriesBuilder, LayerEntries
from ..models import EntryKind, FileHits, LayerScan, Readable, Skip
from .limits import WalkLimits
from .nested import FileScanner
from .parallel import FilePool, WorkerLost
from .provenance import MAX_RECORD, RECORD_LAST, RecordCollector, is_record
from .streams import (
    READ_ERRORS,
    READ_SIZE,
    HashingReader,
    RawReader,
    decompressor,
    looks_like_tar,
    normalize,
    read_head,
    safe_reason,
    sniff,
    tune_allocator,
)
from .tarstream import FileSpan, TarStream, check_tar_end

if TYPE_CHECKING:  # the content scanner is imported when one is made (a rescan from the cache makes none)
    from ..detectors.content import ContentScanner

__all__ = [
    "READ_ERRORS",
    "READ_SIZE",
    "HashingReader",
    "LayerWalker",
    "RawReader",
    "WalkLimits",
    "decompressor",
    "looks_like_tar",
    "normalize",
    "sniff",
]


_KINDS = {t: EntryKind.FILE for t in tarfile.REGULAR_TYPES} | {
    tarfile.DIRTYPE: EntryKind.DIR,
    tarfile.SYMTYPE: EntryKind.SYMLINK,
    tarfile.LNKTYPE: EntryKind.HARDLINK,
}


_LNKTYPE, _REGULAR = tarfile.LNKTYPE, frozenset(tarfile.REGULAR_TYPES)


def classify(member: tarfile.TarInfo, path: str) -> EntryKind:
    base = path.rpartition("/")[2]
    if base.startswith(WHITEOUT_PREFIX):
        if base == OPAQUE:
            return EntryKind.OPAQUE
        return EntryKind.OTHER if base.startswith(".wh..wh.") else EntryKind.WHITEOUT
    return _KINDS.get(member.type, EntryKind.OTHER)  # isreg, isdir, issym, islnk


class LimitExceeded(Exception):
    """A layer that is bigger, more compressed, fuller or slower than the limits allow."""


class _Limited(RawReader):
    def __init__(self, raw: Readable, compressed: HashingReader, limits: WalkLimits, compressed_layer: bool) -> None:
        super().__init__(raw)
        self._compressed = compressed
        self._limits = limits
        self._check_ratio = compressed_layer
        self.count = 0

    def _next(self, size: int) -> bytes:
        data = super()._next(size)
        self._check(len(data))
        return data

    def _check(self, n: int) -> None:
        self.count += n
        if self.count > self._limits.max_layer_bytes:
            raise LimitExceeded(f"layer expands beyond {self._limits.max_layer_bytes} bytes")
        if (
            self._check_ratio
            and self.count > (64 << 20)
            and self.count > self._limits.max_ratio * self._compressed.count
        ):
            raise LimitExceeded(f"layer expands more than {self._limits.max_ratio} times (a decompression bomb)")


class LayerWalker:
    def __init__(
        self,
        scanner: ContentScanner,
        limits: WalkLimits = WalkLimits(),
        on_bytes: Callable[[int], None] | None = None,
        pool: FilePool | None = None,
    ) -> None:
        self.scanner = scanner
        self.limits = limits
        self.on_bytes = on_bytes
        self.files = pool.files if pool is not None else FileScanner(scanner, limits.nested)
        self.pool = pool  # None: files are scanned here, one after the other
        tune_allocator()

    def walk(self, blob: Readable, head: bytes = b"") -> LayerScan:
        if len(head) < 16:
            head += read_head(blob, 16 - len(head))
        raw = HashingReader(blob, head)
        kind = sniff(head[:16])
        # decompressors want a buffered stream; an uncompressed layer is read as it comes
        source = io.BufferedReader(raw, READ_SIZE) if kind != "none" else raw
        # an uncompressed layer's diff_id is its blob digest: its bytes are hashed once, not twice
        plain = HashingReader(
            _Limited(decompressor(kind, source), raw, self.limits, kind != "none"), hashing=kind != "none"
        )
        located = _located(blob) if kind == "none" and self.pool is not None else None
        entries = EntriesBuilder()
        files: list[FileHits] = []
        file_entry: list[int] = []  # for each of files, the index of its entry in entries
        submitted: list[int] = []  # --jobs: the entry index of each file handed to a worker
        batch = self.pool.batch() if self.pool is not None else None
        skips: list[Skip] = []
        records = RecordCollector()
        scanned = 0
        error: str | None = None

        def absorb(entry: int, found: list[FileHits], nested_skips: list[Skip], count: int) -> None:
            nonlocal scanned
            scanned += count
            files.extend(found)
            file_entry.extend([entry] * len(found))
            skips.extend(nested_skips)

        limits = self.limits
        max_members, max_path, deadline, max_file_size = (
            limits.max_members,
            limits.max_path,
            limits.deadline,
            limits.max_file_size,
        )
        count = 0  # entries added: len(entries)
        on_bytes = self.on_bytes
        try:
            tar = TarStream(plain)
            for n, member in enumerate(tar):
                if n >= max_members:
                    raise LimitExceeded(f"more than {max_members} members")
                if deadline is not None and time.monotonic() > deadline:
                    raise LimitExceeded("the time limit for the image ran out")
                name, linkname = member.name, member.linkname
                if len(name) > max_path or len(linkname) > max_path:
                    skips.append(
                        Skip(normalize(name[:200]) + "...", f"name longer than {max_path}: not scanned", limit=True)
                    )
                    continue
                path = normalize(name)
                if ".." in name and ".." in name.split("/"):
                    skips.append(Skip(path, "member name has '..' parts; scanned where it would land"))
                type_ = member.type
                # classify(), its call saved where no whiteout can be (nearly every member)
                kind_ = classify(member, path) if WHITEOUT_PREFIX in path else _KINDS.get(type_, EntryKind.OTHER)
                target = normalize(linkname) if type_ == _LNKTYPE else (linkname or None)
                size = member.size
                entries.add(path, kind_, size if type_ in _REGULAR else 0, target)
                entry = count
                count += 1
                if kind_ is not EntryKind.FILE:
                    continue
                if max_file_size is not None and size > max_file_size:
                    skips.append(Skip(path, f"file larger than --max-file-size ({size} bytes)"))
                    continue
                fobj = tar.extract(member)
                if (path[-1] in RECORD_LAST or "status.d/" in path) and is_record(path):  # a package record
                    if member.size <= MAX_RECORD:
                        data = fobj.read(member.size)
                        records.add(path, data)
                        fobj = io.BytesIO(data)
                    else:
                        skips.append(Skip(path, f"package record larger than {MAX_RECORD} bytes: not parsed"))
                if batch is not None:
                    submitted.append(entry)  # first: a read error mid-file still has a result
                    if located is not None and member.sparse is None and not isinstance(fobj, io.BytesIO):
                        batch.submit(fobj, path, size, (located[0], located[1] + member.offset_data))
                    else:
                        batch.submit(fobj, path, size)
                else:
                    absorb(entry, *self.files.scan(fobj, path, size))
                if on_bytes is not None:
                    on_bytes(size)
            check_tar_end(tar)
            plain.drain()  # the tar's end padding counts towards the diff_id
            raw.drain()
        except READ_ERRORS as exc:
            error = safe_reason(exc)
        except LimitExceeded as exc:
            error = f"limit: {exc}"
        except WorkerLost as exc:
            error = str(exc)
        if batch is not None:
            try:
                for k, result in zip(submitted, batch.collect(self.limits.deadline), strict=True):
                    if isinstance(result, str):
                        error = error or f"{entries.path(k)}: {result}"
                        continue
                    absorb(k, [], [], result) if isinstance(result, int) else absorb(k, *result)
            except WorkerLost as exc:
                error = error or str(exc)
        if located is not None and _identity(located[0]) != located[2]:
            error = error or "the image file changed while this layer was read: scan it again"
        layer_entries = entries.build()
        files = _mark_replaced(files, file_entry, layer_entries)
        return LayerScan(
            blob_digest=raw.digest,
            diff_id=plain.digest if plain.hashing else raw.digest,
            compression=kind,
            compressed_size=raw.count,
            size=plain.count,
            entries=layer_entries,
            files=tuple(files),
            files_scanned=scanned,
            skips=tuple(skips),
            error=error,
            records=records.records(),
        )


def _identity(file: str) -> str | None:
    from ..sources.interface import file_identity  # a source is open by now: no import cost

    return file_identity(file)


def _located(blob: Readable) -> tuple[str, int, str] | None:
    """Where an uncompressed layer read from a file on disk lies (a :class:`FileSpan`: a layer of a
    tarball walked on a file handle of its own, see collect's ``later``), with the file's identity
    (its stat, as for a rescan: see docs/how-it-works.md); None for a stream, or a file changed in
    the last few seconds.  A large file of the layer is then read by its worker at its place in
    the image file, and the walker checks after the layer that the file's identity did not change
    (else the layer is reported as not read whole): what the worker scanned is what was hashed."""
    if type(blob) is not FileSpan:
        return None
    identity = _identity(blob.file)
    return (blob.file, blob.offset, identity) if identity is not None else None


def _mark_replaced(files: list[FileHits], file_entry: list[int], entries: LayerEntries) -> list[FileHits]:
    """A file whose path comes again later in the same layer was replaced when the layer is
    extracted (a duplicate member): its findings are reported as overwritten, not present."""
    if not files:
        return files
    paths = {f.path for f in files}
    last = {path: k for k, path in enumerate(entries.paths()) if path in paths}
    return [
        dataclasses.replace(f, replaced=True) if last[f.path] > k else f for f, k in zip(files, file_entry, strict=True)
    ]
