"""FastTarInfo against tarfile's own TarInfo: the same member or the same error, for headers of
every format and for mutated headers; and a header tarfile cannot read never ends a layer quietly."""

from __future__ import annotations

import io
import tarfile

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scanner.detectors import ContentScanner, build_detectors
from scanner.layers import streams
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


def go_header(name: str = "opt/venv/lib/python3.11/site-packages/pkg/mod.py", kind: bytes = tarfile.REGTYPE) -> bytes:
    """A header as Go's archive/tar writes it (Docker's layers): zero-padded octal numbers."""
    info = tarfile.TarInfo(name)
    info.type, info.size, info.mtime, info.mode = kind, 6543, 1530463416, 0o100644
    info.uname = info.gname = "root"
    return info.tobuf(format=tarfile.USTAR_FORMAT, encoding="utf-8", errors="surrogateescape")


def with_checksum(buf: bytearray, signed: bool = False) -> bytes:
    buf[148:156] = b" " * 8
    total = sum(buf) if not signed else sum(b - 256 if b > 127 else b for b in buf)
    buf[148:156] = b"%06o\0 " % (total & 0o777777)
    return bytes(buf)


def test_a_header_in_the_common_form_is_read_without_the_general_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast way is taken (the general one would check the checksum field by field) and gives
    tarfile's member, for each type it takes; a signed checksum or a long name goes the general way."""
    ours = {
        kind: parse(FastTarInfo, go_header(kind=kind))
        for kind in (tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.FIFOTYPE)
    }
    with monkeypatch.context() as patched:
        patched.setattr(streams, "checksum_ok", lambda block: pytest.fail("the general way"))
        for kind, parsed in ours.items():
            assert parse(FastTarInfo, go_header(kind=kind)) == parsed == parse(tarfile.TarInfo, go_header(kind=kind))
        assert parse(FastTarInfo, go_header("v7dir/", tarfile.AREGTYPE))[0]["type"] == tarfile.DIRTYPE  # type: ignore[index]
    signed = with_checksum(bytearray(go_header("caf\xe9-\xff")), signed=True)
    assert parse(FastTarInfo, signed) == parse(tarfile.TarInfo, signed) != tarfile.InvalidHeaderError  # type: ignore[attr-defined]
    taken: list[bytes] = []

    def general(block: bytes) -> bool:
        taken.append(block)
        return True

    monkeypatch.setattr(streams, "checksum_ok", general)
    FastTarInfo.frombuf(signed, "utf-8", "surrogateescape")
    FastTarInfo.frombuf(go_header(kind=tarfile.GNUTYPE_LONGNAME), "utf-8", "surrogateescape")
    assert len(taken) == 2


NEAR = b"\0 01789x\x1c+-_\x80\xff"  # bytes that put a number field or the type just off the common form


def near(kind: bytes, edits: list[tuple[int, int]], checksum: str) -> bytes:
    buf = bytearray(go_header("d/" * 30 + "caf\xe9", kind))
    for pos, value in edits:
        buf[pos] = value
    return bytes(buf) if checksum == "stale" else with_checksum(buf, signed=checksum == "signed")


@pytest.mark.parametrize("checksum", ["fixed", "signed", "stale"])
def test_each_byte_of_the_numbers_and_type_off_the_common_form_parses_alike(checksum: str) -> None:
    """Every byte of the number fields and the type, one at a time, set to each of NEAR (a digit 8
    or 9, a space or NUL inside a number, a sign, base-256), its checksum fixed, signed or stale:
    the fast way hands each header to the general one or reads it as tarfile does."""
    for pos in range(100, 158):
        for value in NEAR:
            data = near(tarfile.REGTYPE, [(pos, value)], checksum)
            assert parse(FastTarInfo, data) == parse(tarfile.TarInfo, data), (pos, value)


@FUZZ
@given(
    kind=st.sampled_from([b"0", b"\0", b"2", b"5", b"7", b"L", b"x", b"S", b"8"]),
    edits=st.lists(st.tuples(st.integers(100, 157), st.sampled_from(NEAR)), min_size=1, max_size=4),
    checksum=st.sampled_from(["fixed", "signed", "stale"]),
)
def test_headers_near_the_common_form_parse_alike(kind: bytes, edits: list[tuple[int, int]], checksum: str) -> None:
    """As above, several bytes at once and other types."""
    data = near(kind, edits, checksum)
    assert parse(FastTarInfo, data) == parse(tarfile.TarInfo, data)


def test_a_damaged_header_mid_layer_is_an_error_not_the_end_of_the_layer() -> None:
    layer = bytearray(layer_tar([("a.txt", b"hello\n"), ("b.txt", b"x" * 600), ("c/.env", b"TOKEN=" + TOKEN + b"\n")]))
    layer[layer.find(b"b.txt") + 100] ^= 0xFF  # its mode field: a bad checksum
    scan = LayerWalker(ContentScanner(build_detectors([]))).walk(io.BytesIO(bytes(layer)))
    assert scan.error is not None and "damaged header" in scan.error  # before: error None, c/.env unseen
