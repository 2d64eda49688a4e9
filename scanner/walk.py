"""One layer blob -> what is in it: every entry, the hits in every regular file, the digests.

The blob is read once, as a stream: compression is detected from magic bytes, the raw and the
uncompressed bytes are hashed on the way (blob digest and diff_id), and each regular file is handed
to the content scanner in chunks.  Nothing is extracted to disk.  A read error ends the walk with
``LayerScan.error`` set; what was found before it is kept.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import zstandard

from .detectors import ContentScanner
from .models import EntryKind, FileHits, LayerEntry, LayerScan, Readable, Skip

READ_SIZE = 1 << 20
WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


def sniff(head: bytes) -> str:
    """Compression of a blob from its first bytes (FORMATS.md 1.7)."""
    if head[:3] == b"\x1f\x8b\x08":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    if len(head) >= 8 and (int.from_bytes(head[:4], "little") & 0xFFFFFFF0) == 0x184D2A50:
        return "zstd"
    if head[:3] == b"BZh":
        return "bzip2"
    if head[:6] == b"\xfd7zXZ\x00":
        return "xz"
    return "none"


def looks_like_tar(head: bytes) -> bool:
    if len(head) >= 262 and head[257:262] == b"ustar":
        return True
    if len(head) >= 512 and head[:512] == bytes(512):  # an empty layer: end-of-archive blocks only
        return True
    if len(head) >= 512:  # v7 tar: checksum field must match the header
        try:
            stored = int(head[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
        except ValueError:
            return False
        computed = sum(head[:148]) + 8 * 32 + sum(head[156:512])
        return stored == computed
    return False


class RawReader(io.RawIOBase):
    """Any object with ``read`` as a raw stream (for io.BufferedReader), with bytes put back in front."""

    def __init__(self, raw: Readable, prefix: bytes = b"") -> None:
        self._raw = raw
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def _next(self, size: int) -> bytes:
        if self._prefix:
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return self._raw.read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._next(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class HashingReader(RawReader):
    """Passes bytes through while hashing and counting them."""

    def __init__(self, raw: Readable, prefix: bytes = b"") -> None:
        super().__init__(raw, prefix)
        self.sha = hashlib.sha256()
        self.count = 0

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._next(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.sha.update(data)
        self.count += n
        return n

    def drain(self) -> None:
        while self.read(READ_SIZE):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


def decompressor(kind: str, raw: io.BufferedIOBase) -> Readable:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind == "zstd":
        # typeshed-less zstandard and lzma want IO[bytes]; a buffered reader is one at run time
        reader: Readable = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)  # type: ignore[arg-type]
        return reader
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)  # type: ignore[arg-type]
    return raw


def normalize(name: str) -> str:
    """A tar member name as a path inside the image: no leading ./ or /, no . or .. parts."""
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    path = posixpath.normpath("/" + name)  # anchors .. at the root
    return path.lstrip("/") or "."


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


READ_ERRORS = (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError, OSError, ValueError)


class LayerWalker:
    def __init__(
        self, scanner: ContentScanner, limits: WalkLimits = WalkLimits(), on_bytes: Callable[[int], None] | None = None
    ) -> None:
        self.scanner = scanner
        self.limits = limits
        self.on_bytes = on_bytes

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
            with tarfile.open(fileobj=stream, mode="r|", bufsize=READ_SIZE) as tar:
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
                    hits = self.scanner.scan_stream(fobj)
                    scanned += 1
                    if hits:
                        files.append(FileHits(path, tuple(hits)))
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
