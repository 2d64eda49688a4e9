"""Byte-stream plumbing shared by the stages: compression sniffing, decompressors, readers that
hash or put bytes back, and archive member names made safe.

The decoders (ISA-L, zstandard, bz2, lzma) are imported with the first stream that needs one, and
the tuples of what they raise (``GZIP_ERRORS``, ``READ_ERRORS``) when first named: a rescan from
the cache decompresses nothing (start-up time, docs/performance.md).  A module that only catches
them on an error path names them there (``except streams.READ_ERRORS``), not at its import.
"""

from __future__ import annotations

import functools
import io
import posixpath
import tarfile
import zlib
from typing import TYPE_CHECKING, Self

from ..models import Readable

if TYPE_CHECKING:
    import hashlib

READ_SIZE = 1 << 20


# glibc's malloc gives a freed block above its (moving) mmap threshold back to the system, and trims
# the heap's free top above twice that; a scan allocates and frees a window (up to about a MiB) per
# file or chunk, so, depending on what was allocated before (the number of known secrets changed
# it), each new window could be fresh pages, zeroed by the kernel: with 2 known secrets, 257,000
# page faults and an eighth of the CPU time of a --jobs 2 scan of 350 MB, most in the workers.
# Fixed thresholds keep blocks up to 4 MiB in the heap and at most 32 MiB of free heap in hand
# (33,000 faults, whatever came before).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt's parameter numbers (malloc.h)
MMAP_THRESHOLD, TRIM_THRESHOLD = 4 << 20, 32 << 20


@functools.cache
def tune_allocator() -> bool:
    """Keep freed windows in this process's heap for the next one (see above); forked workers
    inherit it.  False where the C library has no glibc ``mallopt`` (musl): nothing changes."""
    try:
        import ctypes  # only for a scan that reads layers

        mallopt = ctypes.CDLL(None).mallopt
    except (ImportError, OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


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
        field = head[148:156].split(b"\0", 1)[0].strip()
        if field.translate(None, b"0123456789_+-"):
            return False  # what int() refuses, without raising: most files checked here are not tars
        try:
            stored = int(field or b"-1", 8)
        except ValueError:
            return False
        return stored == block_sum(head[:148] + b" " * 8 + head[156:512])
    return False


class RawReader(io.RawIOBase):
    """Any object with ``read`` as a raw stream (for io.BufferedReader), with bytes put back in front.

    ``read`` and ``readinto`` both take their bytes from ``_next``: a subclass that changes what is
    read (decodes, counts against a limit) overrides ``_next``, and no way of reading goes around it.
    """

    def __init__(self, raw: Readable, prefix: bytes = b"") -> None:
        self._raw = raw
        self._prefix = prefix

    def readable(self) -> bool:
        return True

    def _next(self, size: int) -> bytes:
        if self._prefix:
            if len(self._prefix) >= size:
                data, self._prefix = self._prefix[:size], self._prefix[size:]
                return data
            data, self._prefix = self._prefix, b""
            return data + self._raw.read(size - len(data))
        return self._raw.read(size)

    def read(self, size: int | None = -1) -> bytes:
        """The underlying bytes themselves (a short read, as any raw stream's): RawIOBase.read
        would copy them twice, through a bytearray and readinto."""
        if size is None or size < 0:
            return self.readall()
        return self._next(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._next(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class HashingReader(RawReader):
    """Passes bytes through while hashing and counting them."""

    def __init__(self, raw: Readable, prefix: bytes = b"", hashing: bool = True) -> None:
        super().__init__(raw, prefix)
        self.sha = _layer_sha256() if hashing else None
        self.hashing = hashing  # False: count only (the same bytes are hashed elsewhere)
        self.count = 0

    def _next(self, size: int) -> bytes:
        data = super()._next(size)
        if self.sha is not None:
            self.sha.update(data)
        self.count += len(data)
        return data

    def drain(self) -> None:
        while self.read(READ_SIZE):
            pass

    @property
    def digest(self) -> str:
        if self.sha is None:
            raise ValueError("a reader made with hashing=False has no digest")
        return "sha256:" + self.sha.hexdigest()


def _layer_sha256() -> hashlib._Hash:
    """OpenSSL's SHA-256 (1.3 GB/s here), imported by the first reader that hashes a layer, not
    with the module: a rescan from the cache hashes none, and loading OpenSSL is 2.3 ms of it
    (scanner.models.small_sha256)."""
    import hashlib

    return hashlib.sha256()


class ZstdReader(RawReader):
    """zstd frames one after the other; a stream that ends inside a frame is an error.

    python-zstandard's stream_reader returns a clean EOF for a cut stream (found by tests/fuzz:
    a truncated layer would read as a shorter, clean one), so frames are decoded here with
    decompress objects, which give back everything their input decodes to in one call.  So the
    input goes in slices of STEP bytes: a block's header is 3 bytes and it regenerates at most
    128 KiB (an RLE block from one byte more), so a slice of STEP decodes to at most 32 MiB
    whatever the stream.  Slices of 128 KiB let 64 KB of zeros (2 GiB compressed at level 19)
    allocate 2 GiB in one call; the small slices cost 0.05 s per 200 MB of layer.
    """

    STEP = 1 << 10

    def __init__(self, raw: Readable) -> None:
        import zstandard  # with the first zstd stream (see decompressor)

        super().__init__(raw)
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._fed = False
        self._pending = memoryview(b"")
        self._out = b""
        self._at = 0  # read position in _out (slicing off the front would copy a bomb's output per read)
        self._done = False

    def _feed(self) -> None:
        import zstandard  # imported by __init__: a name here

        if not self._pending:
            chunk = self._raw.read(READ_SIZE)
            if not chunk:
                self._done = True
                if self._fed and not self._dobj.eof:
                    raise zstandard.ZstdError("zstd stream ends inside a frame (truncated)")
                return
            self._pending = memoryview(chunk)
        if self._dobj.eof:  # the next frame
            self._dobj = zstandard.ZstdDecompressor().decompressobj()
        piece, self._pending = self._pending[: self.STEP], self._pending[self.STEP :]
        self._fed = True
        out = self._dobj.decompress(piece)
        if self._dobj.eof and self._dobj.unused_data:  # the rest belongs to the next frame
            self._pending = memoryview(bytes(self._dobj.unused_data) + bytes(self._pending))
        self._out, self._at = out, 0

    def _next(self, size: int) -> bytes:
        while self._at >= len(self._out) and not self._done:
            self._feed()
        data = self._out[self._at : self._at + size]
        self._at += len(data)
        return data


def decompressor(kind: str, raw: Readable) -> Readable:
    """A reader of the decompressed bytes; every kind but "none" wants ``raw`` buffered (peek).
    Each decoder is imported for its first stream."""
    if kind == "gzip":
        from isal import igzip

        # ISA-L's inflate: 950 MB/s against zlib's 390 on a layer of python's library
        return igzip.IGzipFile(fileobj=raw, mode="rb")  # type: ignore[no-untyped-call]
    if kind == "zstd":
        return io.BufferedReader(ZstdReader(raw), READ_SIZE)
    if kind == "bzip2":
        import bz2

        return bz2.BZ2File(raw)  # type: ignore[call-overload,no-any-return]  # a buffered reader is a file object
    if kind == "xz":
        import lzma

        return lzma.LZMAFile(raw)  # type: ignore[arg-type]  # lzma wants IO[bytes]; a buffered reader is one
    return raw


def normalize(name: str) -> str:
    """A tar member name as a path inside the image: no leading ./ or /, no . or .. parts."""
    plain = name.isascii() and name[:1] not in ("", ".", "/") and name[-1] not in "./"
    if plain and "/." not in name and "//" not in name:
        return name  # already normal (nearly every member of a layer): what the lines below return
    name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    path = posixpath.normpath("/" + name)  # anchors .. at the root
    return path.lstrip("/") or "."


def read_head(stream: Readable, n: int = 512) -> bytes:
    """The first ``n`` bytes (fewer at the end), however short the underlying reads are."""
    head = b""
    while len(head) < n:
        chunk = stream.read(n - len(head))
        if not chunk:
            break
        head += chunk
    return head


@functools.cache
def _errors() -> dict[str, tuple[type[Exception], ...]]:
    import lzma

    import zstandard
    from isal import igzip_lib

    # what a corrupt gzip raises through ISA-L (next to zlib.error, EOFError and OSError)
    # (isal's stubs declare IsalError as an instance; at run time it is the class, and isal_zlib.error is it too)
    gzip: tuple[type[Exception], ...] = (igzip_lib.IsalError,)  # type: ignore[assignment]
    # errors whose messages describe the damage and never quote the data (decoders, tar headers)
    descriptive: tuple[type[Exception], ...] = (
        tarfile.TarError,
        EOFError,
        zlib.error,
        lzma.LZMAError,
        zstandard.ZstdError,
        *gzip,
    )
    # what reading a layer or an archive's stream can raise: a damaged or cut stream, a read error
    return {"GZIP_ERRORS": gzip, "DESCRIPTIVE": descriptive, "READ_ERRORS": (*descriptive, OSError, ValueError)}


def __getattr__(name: str) -> tuple[type[Exception], ...]:
    """``GZIP_ERRORS`` and ``READ_ERRORS``, made when first named (see the module's docstring)."""
    if name not in ("GZIP_ERRORS", "READ_ERRORS"):
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return _errors()[name]


def safe_reason(exc: BaseException) -> str:
    """``Type: message`` for a report, never holding data: only the decoders' own messages are kept
    (a ValueError raised anywhere else could quote the bytes being scanned, a secret among them)."""
    if isinstance(exc, OSError):
        return f"{type(exc).__name__}: {exc.strerror or 'I/O error'}"
    if isinstance(exc, _errors()["DESCRIPTIVE"]) and str(exc):
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return f"{type(exc).__name__} (details withheld: they could quote the data)"


# --- tar headers ---------------------------------------------------------------------------------
# tarfile decodes each 512-byte header field by field through small helper calls: 24 us a header,
# a third of the walk's time on a layer of small files.  FastTarInfo decodes the common headers by
# slicing, with the fields that repeat from member to member decoded once per layer, and hands
# anything unusual (old GNU sparse, short or empty blocks) to tarfile itself;
# tests/test_tarheaders.py checks both agree on real and mutated headers.

_ZERO_BLOCK = bytes(tarfile.BLOCKSIZE)
_INVALID: type[Exception] = tarfile.InvalidHeaderError  # type: ignore[attr-defined]  # tarfile.next() catches it


# A layer's modes, owners, names and device fields repeat from member to member: each field, or
# group of fields, is decoded once per distinct raw bytes (a field that does not decode raises and
# is not kept).
_REPEATS = 4096


@functools.lru_cache(maxsize=_REPEATS)
def tar_number(field: bytes) -> int:
    if field and field[0] in (0o200, 0o377):  # GNU base-256
        return int(tarfile.nti(field))  # type: ignore[attr-defined]
    try:
        # str.strip, as tarfile does: it strips more than bytes.strip (\x1c to \x1f, for one)
        return int(field.split(b"\0", 1)[0].decode("ascii").strip() or "0", 8)
    except ValueError:
        raise _INVALID("invalid header") from None


def block_sum(block: bytes | bytearray) -> int:
    """sum(block) for a 512-byte block, in C: Adler-32's first half is 1 + the sum of the bytes,
    modulo 65521, which a 256-byte half (at most 65280) never reaches."""
    return (zlib.adler32(block[:256]) & 0xFFFF) + (zlib.adler32(block[256:]) & 0xFFFF) - 2


def checksum_ok(block: bytes | bytearray) -> bool:
    """A 512-byte header's stored checksum against its bytes (the checksum field read as spaces),
    unsigned or signed as tarfile accepts; a checksum field that is not a number raises."""
    stored = tar_number(bytes(block[148:156]))
    return stored == block_sum(block) - sum(block[148:156]) + 256 or stored in tarfile.calc_chksums(block)  # type: ignore[attr-defined]


def _text(field: bytes, encoding: str, errors: str) -> str:
    return field.split(b"\0", 1)[0].decode(encoding, errors)


@functools.lru_cache(maxsize=_REPEATS)
def _owners(field: bytes) -> tuple[int, int, int]:
    """mode, uid, gid (header bytes 100-124)."""
    return tar_number(field[:8]), tar_number(field[8:16]), tar_number(field[16:24])


@functools.lru_cache(maxsize=_REPEATS)
def _names(field: bytes, encoding: str, errors: str) -> tuple[str, str, int, int]:
    """uname, gname, devmajor, devminor (header bytes 265-345)."""
    return (
        _text(field[:32], encoding, errors),
        _text(field[32:64], encoding, errors),
        tar_number(field[64:72]),
        tar_number(field[72:80]),
    )


# The form nearly every header of a layer comes in (Go's archive/tar, which Docker and BuildKit
# use, GNU tar and tarfile all write it): each number field octal digits to its width less one and
# a NUL (the checksum six digits, a NUL and a space), and a type tarfile reads as it is.  In that
# form (bytes 100-156 mapped by _SHAPE: an octal digit to 0, NUL and space to themselves, any other
# byte to x), every number field is what tar_number makes of it (int of its digits), and the
# unsigned checksum (the bytes' sum, the checksum field read as 8 spaces) is block_sum's two
# Adler-32 halves (each 1 + its bytes' sum) less the field's digits (Adler-32 again: 1 + their
# sum) and its NUL and space (32), plus the 8 spaces (256): a1 + a2 - a3 + 223.  Such a header is
# read by slicing: 3.8 -> 2.6 us (the venv image's 54,000 headers); any other takes the way after.
_SHAPE = b"\0" + b"x" * 31 + b" " + b"x" * 15 + b"0" * 8 + b"x" * 200
_PLAIN_SHAPE = b"0000000\0" * 3 + b"00000000000\0" * 2 + b"000000\0 "
_PLAIN_KINDS = b"\x0001234567"  # tarfile reads these types as they are (no GNU long name, pax or sparse)
_adler32 = zlib.adler32


class FastTarInfo(tarfile.TarInfo):
    @classmethod
    def frombuf(cls, buf: bytes | bytearray, encoding: str, errors: str) -> Self:
        buf = bytes(buf)
        if (
            buf[100:156].translate(_SHAPE) == _PLAIN_SHAPE
            and len(buf) == tarfile.BLOCKSIZE
            and buf[156] in _PLAIN_KINDS
            and (chksum := int(buf[148:154], 8))
            == (_adler32(buf[:256]) & 0xFFFF) + (_adler32(buf[256:]) & 0xFFFF) - (_adler32(buf[148:154]) & 0xFFFF) + 223
        ):
            obj = cls()
            obj.mode, obj.uid, obj.gid = _owners(buf[100:124])
            obj.size = int(buf[124:135], 8)
            obj.mtime = int(buf[136:147], 8)
            obj.chksum = chksum
        else:
            if len(buf) != tarfile.BLOCKSIZE or buf[156:157] == tarfile.GNUTYPE_SPARSE or buf == _ZERO_BLOCK:
                return super().frombuf(buf, encoding, errors)
            if not checksum_ok(buf):
                raise _INVALID("bad checksum")
            obj = cls()
            # in tarfile's order, so that the first field it cannot read is the one that raises
            obj.mode, obj.uid, obj.gid = _owners(buf[100:124])
            obj.size = tar_number(buf[124:136])
            obj.mtime = tar_number(buf[136:148])
            obj.chksum = tar_number(buf[148:156])
        name = buf[:100]
        obj.name = name[: name.find(b"\0")].decode(encoding, errors) if name[99] == 0 else _text(name, encoding, errors)
        obj.type = kind = buf[156:157]
        obj.linkname = "" if buf[157] == 0 else _text(buf[157:257], encoding, errors)
        obj.uname, obj.gname, obj.devmajor, obj.devminor = _names(buf[265:345], encoding, errors)
        before = "" if buf[345] == 0 else _text(buf[345:500], encoding, errors)
        if kind == tarfile.AREGTYPE and obj.name.endswith("/"):  # old V7: a directory
            obj.type = tarfile.DIRTYPE
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if before and obj.type not in tarfile.GNU_TYPES:
            obj.name = before + "/" + obj.name
        return obj
