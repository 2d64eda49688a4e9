"""FastTarInfo against tarfile's own TarInfo: the same member or the same error, for headers of
every format and for mutated headers; and a header tarfile cannot read never ends a layer quietly."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.detectors import ContentScanner, build_detectors
from scanner.layers.streams import FastTarInfo
from scanner.layers.walk import LayerWalker
from tests.fuzz.test_fuzz import FUZZ
from tests.support.tars import layer_tar

TOKEN = b"ghp_" + b"Zq8w" * 9


def headers() -> list[bytes]:
    out = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for name, kind, size in (
            ("etc/app.conf", tarfile.REGTYPE, 10),
            ("d/" * 40 + "deep.txt", tarfile.REGTYPE, 3),  # over 100 bytes: prefix (ustar) or long name
            ("dir", tarfile.DIRTYPE, 0),
            ("link", tarfile.SYMTYPE, 0),
            ("hard", tarfile.LNKTYPE, 0),
            ("fifo", tarfile.FIFOTYPE, 0),
            ("dev", tarfile.CHRTYPE, 0),
            ("big", tarfile.REGTYPE, 9 << 33),  # over 8 GiB: base-256 (GNU) or a pax record
            ("v7dir/", tarfile.AREGTYPE, 0),
            ("caf\xe9", tarfile.REGTYPE, 1),
        ):
            info = tarfile.TarInfo(name)
            info.type, info.size, info.linkname = kind, size, "target" if kind in (b"1", b"2") else ""
            info.mtime, info.uid, info.devmajor = 1700000000, 2**22 if fmt == tarfile.GNU_FORMAT else 7, 5
            try:
                buf = info.tobuf(format=fmt, encoding="utf-8", errors="surrogateescape")
            except ValueError:
                continue  # a value this format cannot hold
            out += [buf[i : i + 512] for i in range(0, len(buf), 512)]
    return out


HEADERS = headers()


def parse(cls: type[tarfile.TarInfo], buf: bytes) -> object:
    try:
        info = cls.frombuf(buf, "utf-8", "surrogateescape")
    except Exception as exc:
        return type(exc)
    return (info.get_info(), info.chksum, getattr(info, "_sparse_structs", None))


@pytest.mark.parametrize("buf", HEADERS)
def test_real_headers_parse_alike(buf: bytes) -> None:
    assert parse(FastTarInfo, buf) == parse(tarfile.TarInfo, buf)


@FUZZ
@given(
    index=st.integers(min_value=0, max_value=len(HEADERS) - 1),
    edits=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=6),
    fix_checksum=st.booleans(),
)
def test_mutated_headers_parse_alike(index: int, edits: list[tuple[int, int]], fix_checksum: bool) -> None:
    buf = bytearray(HEADERS[index])
    for pos, value in edits:
        buf[pos] = value
    if fix_checksum:  # so that the fields behind the checksum are compared too
        buf[148:156] = b" " * 8
        buf[148:156] = b"%06o\0 " % (sum(buf) & 0o777777)
    assert parse(FastTarInfo, bytes(buf)) == parse(tarfile.TarInfo, bytes(buf))


def test_a_damaged_header_mid_layer_is_an_error_not_the_end_of_the_layer() -> None:
    layer = bytearray(layer_tar([("a.txt", b"hello\n"), ("b.txt", b"x" * 600), ("c/.env", b"TOKEN=" + TOKEN + b"\n")]))
    layer[layer.find(b"b.txt") + 100] ^= 0xFF  # its mode field: a bad checksum
    scan = LayerWalker(ContentScanner(build_detectors([]))).walk(io.BytesIO(bytes(layer)))
    assert scan.error is not None and "damaged header" in scan.error  # before: error None, c/.env unseen
