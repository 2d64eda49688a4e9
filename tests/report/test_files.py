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


def test_pieces_are_written_as_their_text(tmp_path: Path) -> None:
    """A renderer's pieces (JSON's: thousands) are joined and encoded a batch at a time: the file
    holds their text, whatever the batches' edges split, UTF-8 included."""
    from scanner.report import files

    pieces = [f"{n}é€\n" for n in range(3 * files._BATCH + 7)]
    target = tmp_path / "report.json"
    write_atomically(target, pieces)
    assert target.read_text(encoding="utf-8") == "".join(pieces)
    write_atomically(target, [])
    assert target.read_bytes() == b""


@pytest.mark.parametrize("pieces", [["ok\n", "bad \udcff name\n"], "bad \udcff name\n"])
def test_text_that_is_not_utf8_leaves_the_report_as_it_was(tmp_path: Path, pieces: list[str] | str) -> None:
    """A name from the image with a lone surrogate cannot be written as UTF-8: a ReportWriteError
    that names the file, the old report untouched and no temporary file left."""
    from scanner.errors import ReportWriteError

    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(ReportWriteError, match=r"report\.json.*not valid UTF-8"):
        write_atomically(target, pieces)
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_a_fifo_is_written_to_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    check_writable(fifo)
    write_atomically(fifo, ["through ", "the pipe\n"])
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


def test_the_new_file_is_made_as_mkstemp_makes_one(tmp_path: Path) -> None:
    from scanner.report.files import _new_file

    fd, name = _new_file(str(tmp_path), ".report.json.", ".tmp")
    try:
        st = os.fstat(fd)
        assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
        assert os.path.dirname(name) == str(tmp_path)
        assert os.path.basename(name).startswith(".report.json.") and name.endswith(".tmp")
        assert not os.get_inheritable(fd)
    finally:
        os.close(fd)
    second = _new_file(str(tmp_path), ".report.json.", ".tmp")
    os.close(second[0])
    assert second[1] != name


def test_a_name_taken_is_never_opened_and_a_link_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from scanner.report import files

    names = iter([b"\x01" * 6, b"\x02" * 6, b"\x03" * 6])
    monkeypatch.setattr(files.os, "urandom", lambda n: next(names))
    (tmp_path / f"x.{'01' * 6}.tmp").write_text("kept")
    target = tmp_path / "elsewhere"
    (tmp_path / f"x.{'02' * 6}.tmp").symlink_to(target)
    fd, name = files._new_file(str(tmp_path), "x.", ".tmp")
    os.close(fd)
    assert name.endswith(f"x.{'03' * 6}.tmp")
    assert (tmp_path / f"x.{'01' * 6}.tmp").read_text() == "kept" and not target.exists()


def test_no_free_name_is_a_write_error_not_a_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.errors import ReportWriteError
    from scanner.report import files

    monkeypatch.setattr(files.os, "urandom", lambda n: b"\x07" * n)
    (tmp_path / f".report.json.{'07' * 6}.tmp").write_text("")
    with pytest.raises(ReportWriteError, match="cannot be written"):
        write_atomically(tmp_path / "report.json", "{}")
    assert not (tmp_path / "report.json").exists()
