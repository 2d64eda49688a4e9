"""A forward-only walk of a tar stream, for layers: tarfile's header parsing, our own buffer.

tarfile's stream mode (``r|``) reads through ``_Stream``, which copies the rest of its buffer on
every read, and through a ``_FileInFile`` and a ``BufferedReader`` per member: on a layer of small
files that plumbing, not the parsing, was most of the walk (about 100 MB/s on python's library).
:class:`TarStream` keeps one buffer with an offset into it, parses each header with
``FastTarInfo.fromtarfile`` (every format tarfile knows: ustar, GNU long names, pax, sparse), and
hands out each member's data as a reader that slices that buffer.  A plain member (a common header
type after at most one pax header without sparse or charset records: nearly every member of a
layer) is decoded here, as ``fromtarfile`` would decode it; anything else goes to tarfile's own
parser with nothing consumed.  Sparse members are read through tarfile's ``ExFileObject`` on top of
this stream.

End-of-archive and damage are handled as ``TarFile.next`` handles them; :func:`check_tar_end` then
turns a walk cut short by a damaged header into an error.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator

from ..models import Readable
from .streams import READ_SIZE, FastTarInfo, checksum_ok, tar_number

_H = tarfile  # tarfile's header errors are not in its __all__
BLOCK = tarfile.BLOCKSIZE
_PLAIN_TYPES = {tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.LNKTYPE, tarfile.SYMTYPE, tarfile.DIRTYPE}
_DATA_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)  # of the plain types, those with data (_next_header)
_PAX_RECORD = re.compile(rb"(\d+) ([^=]+)=")


def _next_header(info: tarfile.TarInfo) -> int:
    """Where the header after ``info`` starts, as tarfile works it out (data padded to blocks)."""
    has_data = info.type in tarfile.REGULAR_TYPES or info.type not in tarfile.SUPPORTED_TYPES  # isreg()
    return info.offset_data + (info._block(info.size) if has_data else 0)  # type: ignore[attr-defined]


_QUIET_END = (_H.InvalidHeaderError, _H.TruncatedHeaderError)  # type: ignore[attr-defined]


class TarStream:
    """Members of a tar stream in order; each member's reader is valid until the next member.

    Also the file object (``read``/``tell``/forward ``seek``) and the ``TarFile`` stand-in that
    tarfile's header code reads through (``fileobj``, ``offset``, ``pax_headers``, ``encoding``).
    """

    def __init__(self, raw: Readable, chunk: int = READ_SIZE, seekable: bool = False) -> None:
        self._raw = raw
        # a file on disk, read from its first byte: skipped data is seeked over, not read, and a
        # member can be read again (``reopen``)
        self._seekable = seekable
        self._chunk = chunk
        self._buf = b""
        self._pos = 0  # read position in _buf
        self._base = 0  # stream offset of _buf[0]
        self._eof = False
        # what TarInfo.fromtarfile and its _proc_* methods use of a TarFile
        self.fileobj = self
        self.offset = 0
        self.pax_headers: dict[str, str] = {}
        self.encoding = tarfile.ENCODING
        self.errors = "surrogateescape"

    # --- the file object --------------------------------------------------------------------------
    def _more(self, want: int) -> None:
        """Make at least ``want`` unread bytes available in the buffer, if the stream has them.  An
        empty buffer is refilled with a chunk; a buffer with bytes left gets only the bytes missing,
        so that only ``want`` bytes are joined (joining a whole chunk to what was left copied
        every chunk of the layer once more: 0.1 s of CPU on an 880 MB layer)."""
        have = len(self._buf) - self._pos
        self._base += self._pos
        if not have:
            self._buf, self._pos = self._fill(want, self._chunk), 0
            return
        self._buf, self._pos = b"".join((memoryview(self._buf)[self._pos :], self._fill(want - have))), 0

    def _fill(self, want: int, ask: int = 0) -> bytes:
        """At least ``want`` bytes of the stream (fewer at its end), each read asking for at
        least ``ask``."""
        parts: list[bytes] = []
        have = 0
        while have < want and not self._eof:
            data = self._raw.read(max(ask, want - have))
            if not data:
                self._eof = True
                break
            parts.append(data)
            have += len(data)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read(self, size: int) -> bytes:
        have = len(self._buf) - self._pos
        if have >= size:
            start = self._pos
            self._pos = start + size
            return self._buf[start : self._pos]
        if not have and size < self._chunk:
            self._more(size)
            start = self._pos
            self._pos = min(size, len(self._buf))
            return self._buf[start : self._pos]
        # what is buffered, then the stream's own bytes: only the bytes asked for are joined,
        # once (what is left of the buffer is joined through a view, not sliced first)
        rest = memoryview(self._buf)[self._pos :]
        self._base, self._buf, self._pos = self._base + len(self._buf), b"", 0
        data = self._fill(size - have)
        self._base += len(data)
        return b"".join((rest, data)) if rest else data

    def tell(self) -> int:
        return self._base + self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        """Forward only (or back within the buffer): skipped bytes are read, so a stream under this
        one hashes them.  A seekable file is seeked instead: a short file then reads short."""
        if whence != 0:
            raise OSError("TarStream seeks from the start only")
        if offset < self._base:
            raise OSError("seeking backwards in a stream")
        skip = offset - self.tell()
        if skip <= len(self._buf) - self._pos:
            self._pos = offset - self._base
            return offset
        if self._seekable:
            self._jump(offset)
            return offset
        skip -= len(self._buf) - self._pos
        self._base, self._buf, self._pos = self._base + len(self._buf), b"", 0
        while skip > 0 and not self._eof:
            data = self._raw.read(min(skip, self._chunk))
            if not data:
                self._eof = True
                break
            self._base += len(data)
            skip -= len(data)
        return self.tell()

    def _jump(self, offset: int) -> None:
        self._raw.seek(offset)  # type: ignore[attr-defined]
        self._base, self._buf, self._pos, self._eof = offset, b"", 0, False

    # --- the walk ---------------------------------------------------------------------------------
    def __iter__(self) -> Iterator[tarfile.TarInfo]:
        plain = self.encoding == "utf-8"  # what _plain_member decodes
        while True:
            at = self.offset
            if (pos := at - self._base) != self._pos:  # past the rest of the last member's data and its padding
                if 0 < pos <= len(self._buf):  # in the buffer: what seek and read(1) do
                    self._pos = pos
                else:
                    self.seek(at - 1)
                    if not self.read(1):
                        raise tarfile.ReadError("unexpected end of data")
            info = self._plain_member() if plain else None
            if info is not None:
                yield info
                continue
            try:
                info = FastTarInfo.fromtarfile(self)  # type: ignore[arg-type]
            except _H.EOFHeaderError:  # type: ignore[attr-defined]
                return  # a zero block: the end of the archive
            except _H.EmptyHeaderError:  # type: ignore[attr-defined]
                if self.offset == 0:
                    raise tarfile.ReadError("empty file") from None
                return
            except _QUIET_END as exc:
                if self.offset == 0:
                    raise tarfile.ReadError(str(exc)) from None
                return  # as tarfile ends; check_tar_end then finds the data that follows
            except _H.SubsequentHeaderError as exc:  # type: ignore[attr-defined]
                raise tarfile.ReadError(str(exc)) from None
            yield info

    def _plain_member(self) -> tarfile.TarInfo | None:
        """The next member, read here when it is plain (a header of a common type, after at most
        one pax header of common keys): what ``fromtarfile`` would make of it, without its calls
        per field and per record.  None, with nothing read: tarfile's own parser takes it."""
        buf, start = self._buf, self._pos
        if len(buf) - start < 2 * BLOCK:
            self._more(2 * BLOCK)
            buf, start = self._buf, self._pos
        header = buf[start : start + BLOCK]
        if len(header) < BLOCK:
            return None
        if header[156:157] == tarfile.XHDTYPE or self.pax_headers:
            return self._pax_member(header)
        if header[156:157] not in _PLAIN_TYPES:
            return None
        try:
            info = FastTarInfo.frombuf(header, "utf-8", self.errors)
        except tarfile.TarError:
            return None  # tarfile reads it again and raises or ends as it does
        # what _pax_member does with no pax records, its calls written out (nearly every member)
        info.offset = at = self._base + start
        info.offset_data = at + BLOCK
        self.offset = at + BLOCK + (-(-info.size // BLOCK) * BLOCK if info.type in _DATA_TYPES else 0)
        self._pos = start + BLOCK
        return info

    def _pax_member(self, header: bytes) -> tarfile.TarInfo | None:
        """_plain_member's member after a pax header, or under global pax records."""
        pax: dict[str, str] | None = None
        pax_bytes = 0  # the pax header and its records, before the member's own header
        if header[156:157] == tarfile.XHDTYPE:
            found = self._pax(header)
            if found is None:
                return None
            pax, header, pax_bytes = found
        if header[156:157] not in _PLAIN_TYPES:
            return None
        try:
            info = FastTarInfo.frombuf(header, self.encoding, self.errors)
        except tarfile.TarError:
            return None  # tarfile reads it again and raises or ends as it does
        at = self._base + self._pos  # the first header (a refill in _pax moves the buffer)
        info.offset = at
        info.offset_data = at + pax_bytes + BLOCK
        self.offset = _next_header(info)  # from the header's size, before the pax records apply
        if self.pax_headers:  # global pax records (rare); with none, the call only copied an empty dict
            info._apply_pax_info(self.pax_headers, self.encoding, self.errors)  # type: ignore[attr-defined]
        if info.type == tarfile.DIRTYPE:
            info.name = info.name.rstrip("/")
        if pax is not None:
            merged = {**self.pax_headers, **pax} if self.pax_headers else pax
            info._apply_pax_info(merged, self.encoding, self.errors)  # type: ignore[attr-defined]
            if "size" in merged:
                self.offset = _next_header(info)
        self._pos = info.offset_data - self._base
        return info

    def _pax(self, header: bytes) -> tuple[dict[str, str], bytes, int] | None:
        """For a pax header at the read position, if plain: its records, the header after them and
        how many bytes the pax header and its records take."""
        try:
            size = tar_number(header[124:136])
            if not checksum_ok(header):
                return None
        except tarfile.TarError:
            return None
        blocks = (size + BLOCK - 1) // BLOCK * BLOCK
        if len(self._buf) - self._pos < BLOCK + blocks + BLOCK:
            self._more(BLOCK + blocks + BLOCK)
        start = self._pos + BLOCK
        records = self._buf[start : start + size]
        after = self._buf[start + blocks : start + blocks + BLOCK]
        if len(records) < size or len(after) < BLOCK or b"hdrcharset" in records or b"GNU.sparse" in records:
            return None
        found: dict[str, str] = {}
        pos = 0
        while (m := _PAX_RECORD.match(records, pos)) is not None:  # as tarfile reads them
            length = int(m.group(1))
            if length == 0:
                return None
            value = records[m.end(2) + 1 : m.start(1) + length - 1]
            found[m.group(2).decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
            pos += length
        return found, after, BLOCK + blocks

    def extract(self, info: tarfile.TarInfo) -> Readable:
        """The data of the member just yielded."""
        if info.sparse is not None:
            return tarfile.ExFileObject(self, info)  # type: ignore[arg-type]
        if self._base + self._pos != info.offset_data:
            self.seek(info.offset_data)
        return MemberReader(self, info.offset_data, info.size)

    def reopen(self, info: tarfile.TarInfo) -> Readable:
        """The data of the member just yielded, again from its first byte (a seekable file, not a
        sparse member); the walk then goes on from there."""
        if not self._seekable or info.sparse is not None:
            raise ValueError("only a plain member of a seekable file can be read again")
        self._jump(info.offset_data)
        return MemberReader(self, info.offset_data, info.size)


class FileSpan:
    """``size`` bytes of a tar file on disk from ``offset``, on a file handle of its own: a member
    read again after the walk of the archive moved on, or in another process (see
    :mod:`scanner.layers.fanout`), with the same check as the walk's own reader (a short file is
    an error).  Read unbuffered, each read as asked: a buffer here (a TarStream's, then) copied
    each chunk of a layer once more wherever the walk above asked for other sizes than its chunks
    (0.1 s of CPU on the venv image's 880 MB layer)."""

    def __init__(self, file: str, offset: int, size: int) -> None:
        self._fh = open(file, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._fh.seek(offset)
        self._left = size
        self.file, self.offset = file, offset  # where the span lies (LayerWalker.walk: _located)

    def read(self, size: int = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        if n <= 0:
            return b""
        data = self._fh.read(n)
        if len(data) < n:  # a raw read may stop short of what is there (a signal): read on
            parts = [data]
            have = len(data)
            while have < n and (more := self._fh.read(n - have)):
                parts.append(more)
                have += len(more)
            data = b"".join(parts)
            if have != n:
                raise tarfile.ReadError("unexpected end of data")
        self._left -= n
        return data

    def close(self) -> None:
        self._fh.close()


class MemberReader:
    """``size`` bytes of the stream from ``start``; a short stream is an error, as in tarfile."""

    __slots__ = ("_at", "_left", "_stream")

    def __init__(self, stream: TarStream, start: int, size: int) -> None:
        self._stream = stream
        self._at = start
        self._left = size

    def read(self, size: int = -1) -> bytes:
        n = self._left if size is None or size < 0 else min(size, self._left)
        if n <= 0:
            return b""
        stream = self._stream
        pos = stream._pos
        if stream._base + pos != self._at:
            raise ValueError("a member's data is read after the walk moved on")
        if len(stream._buf) - pos >= n:  # in the buffer (most members): what stream.read does
            stream._pos = pos + n
            self._at += n
            self._left -= n
            return stream._buf[pos : pos + n]
        data = stream.read(n)
        if len(data) != n:
            raise tarfile.ReadError("unexpected end of data")
        self._at += n
        self._left -= n
        return data

    def take(self, size: int) -> bytes | memoryview:
        """``read(size)``, as a view of the walk's buffer where those bytes lie in it (no copy:
        a small file handed to a worker is then copied once, into the ring it goes through).
        The view holds that buffer until it is dropped."""
        n = min(size, self._left)
        stream = self._stream
        pos = stream._pos
        if n > 0 and stream._base + pos == self._at and len(stream._buf) - pos >= n:
            stream._pos = pos + n
            self._at += n
            self._left -= n
            return memoryview(stream._buf)[pos : pos + n]
        return self.read(size)


def check_tar_end(stream: TarStream) -> None:
    """After the last member: only zero padding may follow.  tarfile ends an archive quietly at a
    header it cannot read (a bad checksum, say), which would drop every later member from the
    scan without a word; data after the end is such a header, and an error."""
    while chunk := stream.read(1 << 16):
        if chunk.count(0) != len(chunk):
            raise tarfile.ReadError("data after the end of the tar archive: a damaged header cut the walk short")
