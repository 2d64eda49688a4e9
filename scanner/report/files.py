"""Report files: checked before a scan starts, written whole or not at all.

A report path that cannot be written is a usage error (exit 2) that names the file, found before
any scan work when the path can be checked first; a report is written to a temporary file in the
same directory and renamed over the target, so a reader (a CI upload step, say) never sees half a
report.  What is not a regular file is written to as it is, never replaced: a device
(``-o /dev/null``, ``/dev/stdout``), a FIFO or a socket (a rename over /dev/null, as root, had
turned the machine's /dev/null into a regular file); a symbolic link is followed to its file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from ..errors import ReportWriteError


def _special(path: Path) -> bool:
    """An existing file that is not a regular file or a directory (a device, a FIFO, a socket)."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def check_writable(path: Path, what: str = "report") -> None:
    """Raise ReportWriteError (naming ``path``) when a file cannot be made there."""
    if _special(path):
        if not os.access(path, os.W_OK):
            raise ReportWriteError(f"{what} file {path}: not writable")
        return
    path = Path(os.path.realpath(path)) if path.is_symlink() else path
    parent = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise ReportWriteError(f"{what} file {path}: is a directory")
    if not parent.is_dir():
        raise ReportWriteError(f"{what} file {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ReportWriteError(f"{what} file {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise ReportWriteError(f"{what} file {path}: not writable")


def write_atomically(path: Path, text: str | Sequence[str], what: str = "report") -> None:
    """Replace ``path`` with ``text`` (or its pieces, joined) whole; ReportWriteError (naming
    ``path``) when it cannot.  Pieces are joined and encoded a batch at a time: a report of a
    megabyte is never one more string and one more bytes of a megabyte each (in a new process
    their memory is new pages: 0.7 ms of a 60 ms rescan from the cache)."""
    shown = path
    try:
        if _special(path):  # a device, a FIFO, a socket: written to, never replaced
            with open(path, "wb") as fh:
                _write(fh, text)
            return
        path = Path(os.path.realpath(path)) if path.is_symlink() else path
        tmp: str | None = None
        try:
            fd, tmp = _new_file(str(path.parent) or ".", f".{path.name}.", ".tmp")
            with os.fdopen(fd, "wb") as fh:
                _write(fh, text)
            os.chmod(tmp, 0o666 & ~_umask())
            os.replace(tmp, path)
            tmp = None
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
    except OSError as exc:
        raise ReportWriteError(
            f"{what} file {shown}: cannot be written ({exc.strerror or type(exc).__name__})"
        ) from None
    except UnicodeError:  # a name from the image that is not text; the report is left as it was
        raise ReportWriteError(f"{what} file {shown}: cannot be written (the text is not valid UTF-8)") from None


_BATCH = 2048  # pieces joined and encoded at a time (a report's pieces: some 50 characters each)


def _write(fh: BinaryIO, text: str | Sequence[str]) -> None:
    if isinstance(text, str):
        fh.write(text.encode("utf-8"))
        return
    for at in range(0, len(text), _BATCH):
        fh.write("".join(text[at : at + _BATCH]).encode("utf-8"))


def _new_file(folder: str, prefix: str, suffix: str) -> tuple[int, str]:
    """``tempfile.mkstemp(dir=folder, prefix=prefix, suffix=suffix)``: a new file only this
    process can read or write, opened as mkstemp opens it (never an existing file or a link), under
    a random name; without importing tempfile and, with it, random (1.2 ms of a 100 ms rescan from
    the cache)."""
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):  # mkstemp's own number of tries
        name = os.path.join(folder, f"{prefix}{os.urandom(6).hex()}{suffix}")
        try:
            return os.open(name, flags, 0o600), name
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused name for a new file", folder)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
