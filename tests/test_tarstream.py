"""TarStream against tarfile's stream mode: the same members, the same data, the same end or error,
for archives of every format GNU tar and tarfile write (sparse ones included), cut or damaged
anywhere."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.layers.streams import FastTarInfo
from scanner.layers.tarstream import FileSpan, MemberReader, TarStream, check_tar_end
from tests.fuzz.test_fuzz import FUZZ


class Dribble(io.RawIOBase):
    """A stream that hands out at most ``step`` bytes a read, as pipes and decompressors do."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self._step if size < 0 else min(size, self._step)
        out = self._data[self._pos : self._pos + n]
        self._pos += len(out)
        return out


def walk_ours(data: bytes, step: int = 1 << 20, chunk: int = 1 << 20) -> tuple[list[tuple[object, ...]], str | None]:
    out: list[tuple[object, ...]] = []
    try:
        tar = TarStream(Dribble(data, step), chunk=chunk)
        for info in tar:
            body = tar.extract(info).read() if info.isreg() else b""
            out.append((info.name, info.type, info.size, info.linkname, info.mode, info.mtime, info.uname, body))
        check_tar_end(tar)
    except (tarfile.TarError, EOFError) as exc:
        return out, type(exc).__name__
    return out, None


def walk_seekable(data: bytes, every: int = 2) -> tuple[list[tuple[object, ...]], str | None]:
    """A seekable file: the data of all but every ``every``-th member is seeked over, and the data
    that is read is read twice (``reopen``)."""
    out: list[tuple[object, ...]] = []
    try:
        tar = TarStream(io.BytesIO(data), chunk=1 << 12, seekable=True)
        for n, info in enumerate(tar):
            body = b""
            if info.isreg() and n % every == 0:
                body = tar.extract(info).read()
                if info.sparse is None:
                    assert tar.reopen(info).read() == body
            out.append((info.name, info.type, info.size, info.linkname, info.mode, info.mtime, info.uname, body))
        check_tar_end(tar)
    except (tarfile.TarError, EOFError) as exc:
        return out, type(exc).__name__
    return out, None


def _bodies_every(members: list[tuple[object, ...]], every: int) -> list[tuple[object, ...]]:
    return [m if n % every == 0 else (*m[:7], b"") for n, m in enumerate(members)]


def walk_tarfile(data: bytes) -> tuple[list[tuple[object, ...]], str | None]:
    out: list[tuple[object, ...]] = []
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r|", tarinfo=FastTarInfo) as tar:
            for info in tar:
                f = tar.extractfile(info) if info.isreg() else None
                body = f.read() if f is not None else b""
                out.append((info.name, info.type, info.size, info.linkname, info.mode, info.mtime, info.uname, body))
            rest = tar.fileobj.read(1 << 30)  # type: ignore[union-attr]
            if rest.count(0) != len(rest):
                raise tarfile.ReadError("data after the end")
    except (tarfile.TarError, EOFError) as exc:
        return out, type(exc).__name__
    return out, None


def tarfile_archive(fmt: int, seed: int) -> bytes:
    buf = io.BytesIO()
    # a global pax header (pax only) applies to every member after it: mtime and owner here
    extra = {"pax_headers": {"mtime": "1600000000.5", "uname": "global-owner"}} if fmt == tarfile.PAX_FORMAT else {}
    with tarfile.open(fileobj=buf, mode="w", format=fmt, encoding="utf-8", **extra) as tar:
        for k in range(12):
            name = (
                ("deep/" * (seed % 30) if k % 3 == 0 else "") + f"f{k}-caf\xe9.txt"
                if fmt != tarfile.USTAR_FORMAT
                else f"f{k}"
            )
            info = tarfile.TarInfo(name)
            body = os.urandom((seed * 977 + k * 4099) % 70_000)
            info.size, info.mtime, info.mode = len(body), 1_700_000_000 + k, 0o640
            tar.addfile(info, io.BytesIO(body))
            for kind in (tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE):
                link = tarfile.TarInfo(f"{name}.{kind.decode()}")
                link.type, link.linkname = kind, name if k % 2 else "x/" * 60 + "long-target"
                with contextlib.suppress(ValueError):  # ustar cannot hold a long link name
                    tar.addfile(link)
    return buf.getvalue()


ARCHIVES = [
    tarfile_archive(fmt, seed)
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT)
    for seed in (1, 7)
]


def gnu_tar_archives(tmp: Path) -> list[bytes]:
    """Sparse members (old GNU, pax 0.0/0.1/1.0) and long names, written by GNU tar."""
    (tmp / "src").mkdir()
    with (tmp / "src" / "disk.img").open("wb") as f:
        for at in (5000, 300_000, 2_000_000):
            f.seek(at)
            f.write(b"data-%d-" % at * 50)
        f.truncate(3_000_000)
    (tmp / "src" / ("n" * 150)).write_bytes(b"long name")
    out = []
    for fmt, extra in (
        ("gnu", []),
        ("pax", ["--sparse-version=0.0"]),
        ("pax", ["--sparse-version=0.1"]),
        ("pax", ["--sparse-version=1.0"]),
        ("posix", []),
    ):
        path = tmp / f"{fmt}{len(out)}.tar"
        subprocess.run(
            ["tar", "--sparse", f"--format={fmt}", *extra, "-cf", str(path), "-C", str(tmp / "src"), "."], check=True
        )
        out.append(path.read_bytes())
    return out


@pytest.mark.parametrize("index", range(len(ARCHIVES)))
@pytest.mark.parametrize("step", [1 << 20, 4097, 512, 7])
def test_members_and_data_match_tarfile(index: int, step: int) -> None:
    ours = walk_ours(ARCHIVES[index], step=step, chunk=1 << 14)
    assert ours == walk_tarfile(ARCHIVES[index])
    assert ours[1] is None and len(ours[0]) > 12


@pytest.mark.parametrize("index", range(len(ARCHIVES)))
@pytest.mark.parametrize("every", [1, 2, 3])
def test_a_seekable_file_seeks_over_data_and_reads_a_member_again(index: int, every: int) -> None:
    theirs = walk_tarfile(ARCHIVES[index])
    assert walk_seekable(ARCHIVES[index], every) == (_bodies_every(theirs[0], every), None)


@pytest.mark.skipif(shutil.which("tar") is None, reason="GNU tar writes the sparse formats")
def test_sparse_and_long_names_written_by_gnu_tar_match_tarfile(tmp_path: Path) -> None:
    for data in gnu_tar_archives(tmp_path):
        ours = walk_ours(data, step=1000, chunk=1 << 12)
        assert ours == walk_tarfile(data)
        bodies = [m[7] for m in ours[0] if isinstance(m[0], str) and m[0].endswith("disk.img")]
        assert bodies and len(bodies[0]) == 3_000_000 and b"data-2000000-" in bodies[0]


@FUZZ
@given(
    index=st.integers(0, len(ARCHIVES) - 1),
    cut=st.integers(0, 1 << 20),
    edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)), max_size=4),
)
def test_cut_or_damaged_archives_end_alike(index: int, cut: int, edits: list[tuple[int, int]]) -> None:
    data = bytearray(ARCHIVES[index])
    for at, value in edits:
        data[at % len(data)] = value
    damaged = bytes(data[: cut % (len(data) + 1)])
    ours, theirs = walk_ours(damaged, step=3001, chunk=1 << 13), walk_tarfile(damaged)
    assert ours[0] == theirs[0]
    assert (ours[1] is None) == (theirs[1] is None)
    # seeking over data instead of reading it ends the same way: a cut member is an error
    # (a member whose data is cut is listed when its data is not read: tarfile's walk above reads it)
    seeked = walk_seekable(damaged, 3)
    assert seeked[0][: len(theirs[0])] == _bodies_every(theirs[0], 3)
    assert len(seeked[0]) <= len(theirs[0]) + (theirs[1] is not None)
    assert (seeked[1] is None) == (theirs[1] is None)


def test_a_member_read_after_the_walk_moved_on_is_refused() -> None:
    tar = TarStream(io.BytesIO(ARCHIVES[2]))
    members = iter(tar)
    first = tar.extract(next(members))
    next(members)
    with pytest.raises(ValueError):
        first.read(1)


@pytest.mark.parametrize("chunk", [1 << 10, 1 << 14, 1 << 20])
def test_take_gives_what_read_gives_and_a_view_keeps_its_bytes_after_the_walk_moved_on(chunk: int) -> None:
    """``take``: a view of the buffer where the member lies in it whole (no copy), else read; the
    views stay right after the buffer is refilled (they hold the old one), and a limit below the
    member's size takes that many bytes, as read does."""
    data = ARCHIVES[1]
    expected = walk_tarfile(data)[0]
    tar = TarStream(io.BytesIO(data), chunk=chunk)
    taken: list[tuple[str, bytes | memoryview]] = []
    views = 0
    for info in tar:
        if info.isreg():
            reader = tar.extract(info)
            assert isinstance(reader, MemberReader)
            part = reader.take(1 << 30 if len(taken) % 2 else 4000)
            views += isinstance(part, memoryview)
            taken.append((info.name, part))
    check_tar_end(tar)
    bodies = {m[0]: m[7] for m in expected}
    assert [(name, bytes(part)) for name, part in taken] == [
        (name, bodies[name] if n % 2 else bodies[name][:4000])  # type: ignore[index]  # bodies: bytes
        for n, (name, _) in enumerate(taken)
    ]
    # ARCHIVES[1]: 12 files of 7-52 KB, 400 KB in all: none fits in 1 KiB, some in 16, all in 1 MiB
    expected_views = {1 << 10: range(0, 1), 1 << 14: range(1, len(taken)), 1 << 20: range(len(taken), len(taken) + 1)}
    assert views in expected_views[chunk]


def test_a_file_span_reads_its_bytes_and_a_short_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    data = os.urandom(300_000)
    path.write_bytes(data)
    span = FileSpan(str(path), 1000, 200_000)
    parts = [span.read(n) for n in (1, 4095, 1 << 16, 1 << 20, 10)]
    span.close()
    assert b"".join(parts) == data[1000:201_000] and parts[-1] == b""
    short = FileSpan(str(path), 250_000, 60_000)
    assert short.read(40_000) == data[250_000:290_000]
    with pytest.raises(tarfile.ReadError, match="unexpected end of data"):
        short.read(-1)
    short.close()
