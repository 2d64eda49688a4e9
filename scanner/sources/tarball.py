"""A ``docker save`` / ``podman save`` / OCI archive tarball, from a file or standard input.

Read as a stream (:class:`~scanner.layers.tarstream.TarStream`), optionally compressed as a whole
(``docker save | gzip``).
"""

from __future__ import annotations

import functools
import io
import itertools
import os
import posixpath
import sys
from collections.abc import Iterator
from pathlib import Path

from ..models import Readable
from .interface import ImageSource, Member, SourceError, file_identity


def tar_members(stream: Readable, file: str | None = None) -> Iterator[Member]:
    """Members of a (possibly compressed) tar stream; ``file``: the path of the file ``stream``
    reads, whose plain members can then be read again on their own (``Member.detached``).  The
    reading modules (and tarfile) are imported here: a rescan of an unchanged file from the cache
    opens it no more (scanner.layers.collect.replay_shell), and their imports were 4 ms of it."""
    import tarfile

    from ..layers.streams import READ_SIZE, HashingReader, RawReader, decompressor, normalize, read_head, sniff
    from ..layers.tarstream import FileSpan, TarStream, check_tar_end

    head = read_head(stream, 16)
    kind = sniff(head)
    seekable = kind == "none" and _at_start(stream, len(head))
    source = HashingReader(stream, head, hashing=False)  # the bytes as they come, head put back
    if seekable:  # a plain tar file: seeked over where a member's data is not needed
        stream.seek(0)  # type: ignore[attr-defined]
        tar = TarStream(stream, seekable=True)
    elif kind == "none":
        tar = TarStream(source)
    else:
        tar = TarStream(RawReader(decompressor(kind, io.BufferedReader(source, READ_SIZE))))
    members = iter(tar)
    try:
        first = next(members, None)
    except tarfile.ReadError as exc:
        raise SourceError(
            f"not a tar archive ({kind} data): {str(exc)[:120]}",
            remedy="pass the output of docker save, podman save or skopeo copy ...-archive:",
        ) from None
    for info in itertools.chain((first,) if first is not None else (), members):
        path = normalize(info.name)
        if info.issym():
            yield Member(path, 0, link=posixpath.normpath(posixpath.join(posixpath.dirname(path), info.linkname)))
        elif info.islnk():
            yield Member(path, 0, link=normalize(info.linkname))
        elif info.isreg():
            plain = seekable and info.sparse is None
            reopen = functools.partial(tar.reopen, info) if plain else None
            detached = functools.partial(FileSpan, file, info.offset_data, info.size) if plain and file else None
            yield Member(path, info.size, stream=tar.extract(info), reopen=reopen, detached=detached)
    check_tar_end(tar)


def _at_start(stream: Readable, consumed: int) -> bool:
    """Whether ``stream`` is a seekable file that was read from its first byte."""
    try:
        return bool(stream.seekable()) and stream.tell() == consumed  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False


class TarballSource(ImageSource):
    kind = "archive"

    def rereadable(self) -> bool:
        return self.ref != "-"

    def identity(self) -> str | None:
        """The file's stat (see :func:`file_identity`); None for standard input."""
        return None if self.ref == "-" else file_identity(os.path.realpath(self.ref))

    def members(self) -> Iterator[Member]:
        if self.ref == "-":
            yield from tar_members(sys.stdin.buffer)
            return
        path = Path(self.ref)
        try:
            fh = path.open("rb")
        except OSError as exc:
            raise SourceError(f"cannot open {self.ref}: {exc.strerror or type(exc).__name__}") from None
        with fh:
            yield from tar_members(fh, file=os.path.realpath(self.ref))
