"""Report files are replaced whole when they are regular files, and never replaced when they are not:
``-o /dev/null`` as root once turned the machine's /dev/null into a regular file (a rename over it)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from scanner.report.files import check_writable, write_atomically


def test_a_regular_file_is_replaced_whole(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    target.write_text("old")
    write_atomically(target, '{"new": true}\n')
    assert target.read_text() == '{"new": true}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    check_writable(fifo)
    write_atomically(fifo, "through the pipe\n")
    reader.join(10)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_character_device_stays_a_device(tmp_path: Path) -> None:
    null = tmp_path / "null"
    try:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))  # the null device, in a private directory
    except PermissionError:
        pytest.skip("making a device node needs root")
    check_writable(null)
    write_atomically(null, "discarded\n")
    assert stat.S_ISCHR(os.stat(null).st_mode), "the device was replaced by a regular file"
    assert os.stat(null).st_rdev == os.makedev(1, 3)


def test_a_symbolic_link_is_followed_and_kept(tmp_path: Path) -> None:
    real = tmp_path / "reports" / "leakscan.sarif"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "latest.sarif"
    link.symlink_to(real)
    write_atomically(link, "new\n")
    assert link.is_symlink() and real.read_text() == "new\n"
