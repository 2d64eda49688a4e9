"""One layer blob -> what is in it: every entry, the hits in every regular file, the digests.

The blob is read once, as a stream: compression is detected from magic bytes, the raw and the
uncompressed bytes are hashed on the way (blob digest and diff_id), and each regular file is handed
to the content scanner in chunks.  Nothing is extracted to disk.  A read error ends the walk with
``LayerScan.error`` set; what was found before it is kept.
"""

from __future__ import annotations

import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

import zstandard

from .detectors import ContentScanner
from .models import EntryKind, FileHits, LayerEntry, LayerScan, Readable, Skip
from .nested import FileScanner, NestedLimits
from .streams import READ_SIZE, TAR_BUFSIZE, HashingReader, RawReader, decompressor, looks_like_tar, normalize, sniff

__all__ = [
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

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


def classify(member: tarfile.TarInfo, path: str) -> EntryKind:
    base = posixpath.basename(path)
    if base == OPAQUE:
        return EntryKind.OPAQUE
    if base.startswith(WHITEOUT_PREFIX):
        return EntryKind.OTHER if base.startswith(".wh..wh.") else EntryKind.WHITEOUT
    if member.isreg():
        return EntryKind.FILE
    if member.isdir():
        return EntryKind.DIR
    if member.issym():
        return EntryKind.SYMLINK
    if member.islnk():
        return EntryKind.HARDLINK
    return EntryKind.OTHER


@dataclass(frozen=True, slots=True)
class WalkLimits:
    max_file_size: int | None = None  # None: every file, however large, in chunks
    nested: NestedLimits = field(default_factory=NestedLimits)


READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError, OSError, ValueError)


class LayerWalker:
    def __init__(
        self, scanner: ContentScanner, limits: WalkLimits = WalkLimits(), on_bytes: Callable[[int], None] | None = None
    ) -> None:
        self.scanner = scanner
        self.limits = limits
        self.on_bytes = on_bytes
        self.files = FileScanner(scanner, limits.nested)

    def walk(self, blob: Readable, head: bytes = b"") -> LayerScan:
        raw = HashingReader(blob, head)
        buffered = io.BufferedReader(raw, READ_SIZE)
        kind = sniff(buffered.peek(16)[:16])
        plain = HashingReader(decompressor(kind, buffered))
        stream = io.BufferedReader(plain, READ_SIZE)
        entries: list[LayerEntry] = []
        files: list[FileHits] = []
        skips: list[Skip] = []
        scanned = 0
        error: str | None = None
        try:
            with tarfile.open(fileobj=stream, mode="r|", bufsize=TAR_BUFSIZE) as tar:
                for member in tar:
                    path = normalize(member.name)
                    if ".." in member.name.split("/"):
                        skips.append(Skip(path, "member name has '..' parts; scanned where it would land"))
                    kind_ = classify(member, path)
                    target = normalize(member.linkname) if member.islnk() else (member.linkname or None)
                    entries.append(LayerEntry(path, kind_, member.size if member.isreg() else 0, target))
                    if kind_ is not EntryKind.FILE:
                        continue
                    if self.limits.max_file_size is not None and member.size > self.limits.max_file_size:
                        skips.append(Skip(path, f"file larger than --max-file-size ({member.size} bytes)"))
                        continue
                    fobj = tar.extractfile(member)
                    if fobj is None:  # pragma: no cover - isreg() members always have data
                        continue
                    found, nested_skips, count = self.files.scan(fobj, path)
                    scanned += count
                    files.extend(found)
                    skips.extend(nested_skips)
                    if self.on_bytes is not None:
                        self.on_bytes(member.size)
            plain.drain()  # the tar's end padding counts towards the diff_id
            raw.drain()
        except READ_ERRORS as exc:
            error = f"{type(exc).__name__}: {_safe_message(exc)}"
        return LayerScan(
            blob_digest=raw.digest,
            diff_id=plain.digest,
            compression=kind,
            compressed_size=raw.count,
            size=plain.count,
            entries=tuple(entries),
            files=tuple(files),
            files_scanned=scanned,
            skips=tuple(skips),
            error=error,
        )


def _safe_message(exc: BaseException) -> str:
    """An exception's message, cut short: decoders do not echo data, but keep it bounded anyway."""
    text = str(exc).splitlines()[0] if str(exc) else "unreadable data"
    return text[:160]
