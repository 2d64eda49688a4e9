"""One file's content -> hits, opening what is inside it.

Archives (zip, jar/war/ear, whl/egg, tar) and compressed files (gzip, bzip2, xz, zstd, hence
tar.gz/tgz) are recognised by their magic bytes and opened recursively up to ``max_depth``; a
finding inside one is reported as ``path!/member`` (``app.war!/WEB-INF/lib/x.jar!/a.properties``).
UTF-16 text is decoded before it is scanned.  Everything else, binaries included (ELF, .pyc,
SQLite), is scanned as bytes.  Whatever is not opened or read in full is a reported skip.
"""

from __future__ import annotations

import codecs
import dataclasses
import hashlib
import io
import lzma
import posixpath
import re
import struct
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

import zstandard
from isal import isal_zlib

from ..models import FileHits, Hit, Readable, Skip
from .limits import NestedLimits
from .streams import GZIP_ERRORS, READ_SIZE, RawReader, decompressor, looks_like_tar, read_head, sniff
from .tarstream import TarStream

if TYPE_CHECKING:  # the content scanner is imported when one is made (a rescan from the cache makes none)
    from ..detectors.content import ContentScanner

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
# the first bytes of a zip ("P") and of what streams.sniff knows: gzip, zstd and its skippable
# frames (0x50-0x5F), bzip2 ("B"), xz; a head starting with any other byte is none of them
_PACKED_FIRST = bytes(c in (0x1F, 0x28, 0x42, 0xFD) or 0x50 <= c <= 0x5F for c in range(256))
_ZEROS = bytes(512)
# What the first byte of a v7 tar header's checksum field (148) may be: an octal digit, or what int()
# also takes, or a blank or NUL before it.  looks_like_tar refuses a head with no ustar magic whose
# field starts with any other byte (text, bytecode, most binaries), so it is not asked (1 us a file)
_CHECKSUM_FIRST = bytes(c in b"0123456789_+-\x00 \t\n\r\x0b\x0c" for c in range(256))
_SUFFIXES = {".gz": "", ".tgz": ".tar", ".bz2": "", ".tbz2": ".tar", ".xz": "", ".txz": ".tar", ".zst": "", ".zstd": ""}
NESTED_ERRORS: tuple[type[Exception], ...] = (
    *GZIP_ERRORS,  # found by tests/fuzz when ISA-L came in: IsalError is not a zlib.error
    lzma.LZMAError,  # found by tests/fuzz: a corrupt .xz raised out of the scan
    zstandard.ZstdError,
    tarfile.TarError,
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    zlib.error,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
)


class ExpansionLimit(Exception):
    pass


MEMBER_FLOOR = 64 << 20  # what any file or member may expand to, whatever its ratio
MEMBER_RESERVE = 64 << 20  # ... less this much (at most half of what is left), kept for its siblings


class _Budget(RawReader):
    """Counts bytes read out of decompressors and archives against the file's budget."""

    def __init__(self, raw: Readable, state: _State) -> None:
        super().__init__(raw)
        self._state = state

    def _next(self, size: int) -> bytes:
        data = super()._next(size)
        self._state.expanded += len(data)
        if self._state.expanded > self._state.budget:
            raise ExpansionLimit
        return data


class _Utf16(RawReader):
    """UTF-16 text decoded to UTF-8 as it is read."""

    def __init__(self, raw: Readable, encoding: str) -> None:
        super().__init__(raw)
        self._decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
        self._out = b""
        self._eof = False

    def _next(self, size: int) -> bytes:
        while not self._out and not self._eof:
            chunk = self._raw.read(READ_SIZE)
            self._eof = not chunk
            self._out = self._decoder.decode(chunk, final=self._eof).encode("utf-8", "surrogatepass")
        data, self._out = self._out[:size], self._out[size:]
        return data


def utf16_encoding(head: bytes) -> str | None:
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") and head[2:4] != b"\x00\x00":
        return "utf-16"  # the BOM says which
    if len(head) < 64 or head.count(0) < 0.9 * (len(head) // 2):
        return None  # neither half of the bytes can be 90 % zeros: not UTF-16 (most files)
    even, odd = head[0::2], head[1::2]
    for text, zeros, enc in ((even, odd, "utf-16-le"), (odd, even, "utf-16-be")):
        if (
            zeros.count(0) >= 0.9 * len(zeros)
            and text.count(0) == 0
            and sum(32 <= c < 127 or c in (9, 10, 13) for c in text) >= 0.9 * len(text)
        ):
            return enc
    return None


def _inner_name(name: str) -> str:
    base = posixpath.basename(name)
    for suffix, replacement in _SUFFIXES.items():
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] + replacement
    return base + ".decompressed"


@dataclass
class _State:
    limits: NestedLimits
    outer: str
    hits: list[FileHits] = field(default_factory=list)
    skips: list[Skip] = field(default_factory=list)
    files: int = 0
    expanded: int = 0
    budget: int = 0  # ``expanded`` may not pass this: the limit of the innermost member being read


WHOLE_MEMBER = 1 << 20  # a plain member up to this size (and the scanner's window) is read whole
# A file up to this size is held whole while it is scanned (it travels whole to a worker anyway:
# parallel.py), so that its digests can be taken when it has findings: the package records are
# checked against them (a 2 MB library of a package, with its self-test keys, is then verified as
# shipped unmodified).  Only a file with findings is hashed.
HASHED_WHOLE = 8 << 20


class FileScanner:
    def __init__(self, content: ContentScanner, limits: NestedLimits = NestedLimits()) -> None:
        self.content = content
        self.limits = limits

    def scan(self, stream: Readable, path: str, size: int | None = None) -> tuple[list[FileHits], list[Skip], int]:
        """(hits per file or member, skips, how many files and members were scanned)."""
        data: bytes | None = None
        if size is not None and size <= self.content.chunk_size:  # a small file: read whole, one window
            data = stream.read(size)
            if (hits := self._whole(data, path)) is not None:
                return ([FileHits(path, tuple(hits), None, digests=_digests(data))] if hits else []), [], 1
            stream = io.BytesIO(data)
        elif size is not None and size <= HASHED_WHOLE:
            data = stream.read(size)
            stream = io.BytesIO(data)
        budget = self.limits.max_expanded
        if size is not None:
            budget = min(budget, max(MEMBER_FLOOR, self.limits.max_ratio * size))
        state = _State(self.limits, path, budget=budget)
        try:
            self._scan(stream, None, 0, state, held=data)
        except ExpansionLimit:
            state.skips.append(
                Skip(
                    path,
                    f"archive expands beyond {state.budget} bytes (a decompression bomb?); rest not scanned",
                    limit=True,
                )
            )
        if data is not None and state.hits:  # the package records are checked against these
            digests = _digests(data)
            state.hits = [dataclasses.replace(f, digests=digests) for f in state.hits]
        return state.hits, state.skips, state.files

    def _where(self, member: str | None, state: _State) -> str:
        return f"{state.outer}!/{member}" if member else state.outer

    def _whole(self, data: bytes, where: str) -> list[Hit] | None:
        """The hits of a small file or member read whole, scanned as one window; None for an
        archive, a compressed stream or UTF-16 text, which the stream path reads."""
        head = data[:512]
        if self._container(head) or utf16_encoding(head):
            return None
        return self.content.scan_window(data, where)

    @staticmethod
    def _container(head: bytes) -> str:
        """What kind of archive or compressed stream a file is, from its head ("" for neither).
        Asked of every file and member: most first bytes start none of the magics, and a head
        shorter than a tar header's magic is no tar."""
        kind = "none"
        if head and _PACKED_FIRST[head[0]]:
            kind = "zip" if head[:4] in ZIP_MAGIC else sniff(head)
        if (
            kind == "none"
            and (head[257:262] == b"ustar" or (len(head) >= 512 and _CHECKSUM_FIRST[head[148]]))
            and looks_like_tar(head)
            and head[:512] != _ZEROS
        ):
            kind = "tar"
        return "" if kind == "none" else kind

    def _scan(
        self,
        stream: Readable,
        member: str | None,
        depth: int,
        state: _State,
        size: int | None = None,
        held: bytes | None = None,
    ) -> None:
        """``size``: what the member's header says; a small member of plain content is then read
        whole and scanned as one window, as a small file is (a wheel holds hundreds).  ``held``:
        all of the stream's bytes, when the caller holds them (a file read whole)."""
        head = read_head(stream)
        kind = self._container(head) or "none"
        if kind != "none" and depth >= self.limits.max_depth:
            state.skips.append(
                Skip(
                    self._where(member, state),
                    f"{kind} nested deeper than {self.limits.max_depth}: scanned as bytes",
                    limit=True,
                )
            )
            kind = "none"
        if kind == "none" and size is not None and size <= min(WHOLE_MEMBER, self.content.chunk_size):
            if held is not None and len(held) <= size:  # all of it in hand (inflated): no read and join
                data, stream = held, io.BytesIO()
            else:
                data = head + stream.read(size + 1 - len(head)) if len(head) <= size else head
            if len(data) <= size and (hits := self._whole(data, self._where(member, state))) is not None:
                state.files += 1
                if hits:
                    state.hits.append(FileHits(state.outer, tuple(hits), member))
                return
            head = data  # longer than its header said, or UTF-16: the stream path below
        whole = RawReader(stream, head)
        try:
            if kind == "zip":
                self._zip(whole, member, depth, state)
                return
            if kind == "tar":
                self._tar(whole, member, depth, state)
                return
            if kind != "none":
                name = _inner_name(member or state.outer)
                if kind == "gzip" and held is not None and self._gunzipped(held, name, member, depth, state):
                    return
                inner = decompressor(kind, io.BufferedReader(whole, READ_SIZE))
                self._scan(_Budget(inner, state), f"{member}!/{name}" if member else name, depth + 1, state)
                return
        except ExpansionLimit:
            raise
        except NESTED_ERRORS as exc:
            state.skips.append(
                Skip(
                    self._where(member, state),
                    f"{kind} could not be read in full ({type(exc).__name__}); what was read is scanned",
                )
            )
            return
        encoding = utf16_encoding(head)
        where = self._where(member, state)
        if encoding:
            hits = self.content.scan_stream(io.BufferedReader(_Utf16(whole, encoding), READ_SIZE), path=where)
        elif held is not None:  # the stream's bytes are these: windows sliced from them
            hits = self.content.scan_held(held, path=where)
        else:
            hits = self.content.scan_stream(whole, path=where)
        state.files += 1
        if hits:
            state.hits.append(FileHits(state.outer, tuple(hits), member))

    def _gunzipped(self, held: bytes, name: str, member: str | None, depth: int, state: _State) -> bool:
        """A gzip file held whole, inflated in one go and scanned as the stream path would scan it,
        when it inflates cleanly to plain content of at most GUNZIP_WHOLE bytes within the budget;
        False, with nothing done, for anything else (the stream path then reads it and reports as it
        does).  A venv holds thousands of small .json.gz files: a gzip reader and its buffers each
        cost more than the inflating."""
        inflated = _gunzip(held, min(GUNZIP_WHOLE, state.budget - state.expanded))
        if inflated is None or self._container(inflated[:512]):
            return False  # an archive inside: the stream path's budgets count its members as they come
        state.expanded += len(inflated)
        where = f"{member}!/{name}" if member else name
        self._scan(io.BytesIO(inflated), where, depth + 1, state, len(inflated), held=inflated)
        return True

    def _tar(self, stream: RawReader, member: str | None, depth: int, state: _State) -> None:
        tar = TarStream(stream)
        for info in tar:
            if info.isreg():
                name = info.name.lstrip("./")
                inner = f"{member}!/{name}" if member else name
                size = info.size if info.sparse is None else None
                self._member(tar.extract(info), inner, depth, state, info.size, size)

    def _zip(self, stream: RawReader, member: str | None, depth: int, state: _State) -> None:
        with tempfile.SpooledTemporaryFile(max_size=self.limits.spool_in_memory, prefix="leakscan-") as spool:
            while chunk := stream.read(READ_SIZE):
                spool.write(chunk)
                state.expanded += len(chunk) if depth else 0
                if state.expanded > state.budget:
                    raise ExpansionLimit
            spool.seek(0)
            with zipfile.ZipFile(spool) as zf:
                first = len(state.hits)
                artifact = _maven_artifact(zf)
                for info in zf.infolist():
                    if info.is_dir():
                        continue
                    inner = f"{member}!/{info.filename}" if member else info.filename
                    if info.flag_bits & 0x1:
                        state.skips.append(Skip(self._where(inner, state), "encrypted zip member: not readable"))
                        continue
                    data = _member_bytes(spool, zf, info)
                    if data is not None:
                        self._member(io.BytesIO(data), inner, depth, state, info.compress_size, info.file_size)
                        continue
                    with zf.open(info) as f:
                        self._member(f, inner, depth, state, info.compress_size, info.file_size)
                if artifact is not None:  # what this jar holds is the artifact's, unless a jar inside says otherwise
                    state.hits[first:] = [
                        f if f.maven else dataclasses.replace(f, maven=artifact) for f in state.hits[first:]
                    ]

    def _member(self, data: Readable, inner: str, depth: int, state: _State, stored: int, size: int | None) -> None:
        """One member of a zip or tar, under a budget of its own: what a file of its ``stored`` size
        may expand to, less a reserve for the members after it.  A member over its budget (a bomb)
        is a limit skip, and the walk goes on to the next member: the bomb costs only itself."""
        outer = state.budget
        left = outer - state.expanded
        own = min(
            outer - min(left // 2, MEMBER_RESERVE), state.expanded + max(MEMBER_FLOOR, self.limits.max_ratio * stored)
        )
        if own >= outer:  # nothing to keep back: the member shares its archive's budget
            self._scan(_Budget(data, state), inner, depth + 1, state, size)
            return
        state.budget = own
        try:
            self._scan(_Budget(data, state), inner, depth + 1, state, size)
        except ExpansionLimit:  # this member's own (an inner member's is caught where it is read)
            state.expanded = own  # the read that went past it is not scanned: no charge to the siblings
            state.skips.append(
                Skip(
                    self._where(inner, state),
                    f"member expands beyond {own - (outer - left)} bytes (a decompression bomb?); the rest of"
                    " this member is not scanned, the archive's other members are",
                    limit=True,
                )
            )
        finally:
            state.budget = outer


GUNZIP_WHOLE = HASHED_WHOLE  # the most a gzip file held whole is inflated to in one go (_gunzipped)


def _gunzip(data: bytes, limit: int) -> bytes | None:
    """Every member of a gzip file, inflated, when they take all of ``data`` and inflate to at
    most ``limit`` bytes, their checksums and lengths right; None for anything else (trailing
    bytes, a cut or damaged member, more than ``limit``)."""
    from isal import isal_zlib

    parts: list[bytes] = []
    total = 0
    rest = data
    while True:
        inflate = isal_zlib.decompressobj(31)  # a gzip member: header, deflate, CRC-32 and length checked
        try:
            part = inflate.decompress(rest, limit - total + 1)
        except NESTED_ERRORS:
            return None
        total += len(part)
        if total > limit or not inflate.eof:
            return None
        parts.append(part)
        rest = inflate.unused_data
        if not rest:
            return parts[0] if len(parts) == 1 else b"".join(parts)
        if rest[:2] != b"\x1f\x8b":
            return None  # zero padding or anything else after a member: the stream path decides


_LOCAL_HEADER = struct.Struct("<4s2B4HL2L2H")  # zipfile's structFileHeader
_MEMBER_ERRORS: tuple[type[Exception], ...] = (OSError, ValueError, zlib.error, struct.error, *GZIP_ERRORS)
_ODD_FLAGS = 0x1 | 0x20 | 0x40  # encrypted, compressed patched data, strong encryption
_UTF8_NAME = 0x800


def _member_bytes(spool: IO[bytes], zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes | None:
    """A small stored or deflated member's bytes, read in one go: what ``zf.open(info).read()``
    returns, without its per-member objects and reads (a jar holds thousands of members).  None
    for anything else or anything unusual (a bad header, a short or long stream, a CRC that does
    not match): ``zf.open`` then reads it and raises as it does, so that damage is reported alike."""
    method = info.compress_type
    if (
        info.file_size > WHOLE_MEMBER
        or info.compress_size > WHOLE_MEMBER
        or info.flag_bits & _ODD_FLAGS
        or method not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
        or (method == zipfile.ZIP_STORED and info.compress_size != info.file_size)
    ):
        return None
    try:
        spool.seek(info.header_offset)
        header = spool.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            return None
        fields = _LOCAL_HEADER.unpack(header)
        if fields[0] != zipfile.stringFileHeader:  # type: ignore[attr-defined]
            return None
        name = spool.read(fields[10])
        encoding = "utf-8" if fields[3] & _UTF8_NAME else (zf.metadata_encoding or "cp437")  # type: ignore[attr-defined]
        if len(name) != fields[10] or name.decode(encoding) != info.orig_filename:
            return None
        start = info.header_offset + _LOCAL_HEADER.size + fields[10] + fields[11]
        end = getattr(info, "_end_offset", None)  # newer zipfiles refuse overlapping members
        if end is not None and start + info.compress_size > end:
            return None
        spool.seek(start)
        raw = spool.read(info.compress_size)
        if len(raw) != info.compress_size:
            return None
        if method == zipfile.ZIP_STORED:
            data = raw
        else:
            # ISA-L inflates about twice as fast as zlib (the JVM image's 76,000 members: 1.0 s in
            # zlib); the length and CRC below hold what it gives to what zipfile would give
            inflate = isal_zlib.decompressobj(-15)
            data = inflate.decompress(raw)
            if not inflate.eof:
                return None
    except _MEMBER_ERRORS:
        return None
    if len(data) != info.file_size or isal_zlib.crc32(data) != info.CRC:
        return None
    return data


_POM = re.compile(r"^META-INF/maven/[^/]+/[^/]+/pom\.properties$")


def _maven_artifact(zf: zipfile.ZipFile) -> str | None:
    """``group:artifact:version`` from a jar's own Maven metadata (when it holds one artifact's)."""
    poms = [info for info in zf.infolist() if _POM.match(info.filename) and info.file_size <= 65536]
    if len(poms) != 1 or poms[0].flag_bits & 0x1:
        return None
    try:
        text = zf.read(poms[0]).decode("utf-8", "replace")
    except NESTED_ERRORS:
        return None
    props = dict(re.findall(r"(?m)^\s*(groupId|artifactId|version)\s*[=:]\s*(\S+)\s*$", text))
    if len(props) != 3:
        return None
    return f"{props['groupId']}:{props['artifactId']}:{props['version']}"


def _digests(data: bytes) -> tuple[str, str, str]:
    """md5 (dpkg), sha1 (apk), sha256 (pip): what the package managers record of a file."""
    md5, sha1 = hashlib.md5(data, usedforsecurity=False), hashlib.sha1(data, usedforsecurity=False)
    return md5.hexdigest(), sha1.hexdigest(), hashlib.sha256(data).hexdigest()
