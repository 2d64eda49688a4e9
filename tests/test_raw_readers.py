"""streams.RawReader and its subclasses: read() and readinto() both go through _next, so a reader
that counts (a decompression budget, a layer limit, a hash) or decodes cannot be read around."""

from __future__ import annotations

import io

import pytest

from scanner.layers import nested, streams, walk
from scanner.layers.nested import ExpansionLimit, NestedLimits, _Budget, _State, _Utf16
from scanner.layers.streams import HashingReader, RawReader, ZstdReader


def _all_subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub, *_all_subclasses(sub)}
    return out


def test_every_reader_changes_only_next() -> None:
    # importing the modules registers every subclass the scanner has
    assert {streams, nested, walk}
    subs = _all_subclasses(RawReader)
    assert {HashingReader, ZstdReader, _Budget, _Utf16, walk._Limited} <= subs
    for sub in subs:
        assert "read" not in vars(sub) and "readinto" not in vars(sub), sub


def _budget(limit: int) -> _State:
    return _State(NestedLimits(), "x", budget=limit)


@pytest.mark.parametrize("how", ["read", "readinto", "buffered", "readall"])
def test_the_budget_counts_every_way_of_reading(how: str) -> None:
    state = _budget(10_000)
    reader = _Budget(io.BytesIO(b"z" * 50_000), state)
    with pytest.raises(ExpansionLimit):
        if how == "read":
            while reader.read(4096):
                pass
        elif how == "readinto":
            buf = bytearray(4096)
            while reader.readinto(memoryview(buf)):
                pass
        elif how == "buffered":
            io.BufferedReader(reader, 4096).read()
        else:
            reader.readall()


@pytest.mark.parametrize("size", [1, 3, 4096, -1])
def test_read_and_readinto_give_the_same_bytes(size: int) -> None:
    text = "héllo wörld, ünïcode\n" * 500
    for make in (
        lambda: RawReader(io.BytesIO(b"tail" * 3000), b"head"),
        lambda: HashingReader(io.BytesIO(b"tail" * 3000), b"head"),
        lambda: _Utf16(io.BytesIO(text.encode("utf-16-le")), "utf-16-le"),
    ):
        a, b = make(), make()
        by_read = a.read() if size < 0 else b"".join(iter(lambda r=a: r.read(size), b""))
        by_readinto = io.BufferedReader(b, max(size, 1)).read()
        assert by_read == by_readinto
    assert _Utf16(io.BytesIO(text.encode("utf-16-le")), "utf-16-le").read() == text.encode()


def test_the_hash_covers_bytes_read_either_way() -> None:
    import hashlib

    data = b"layer bytes " * 10_000
    a, b = HashingReader(io.BytesIO(data)), HashingReader(io.BytesIO(data))
    while a.read(1000):
        pass
    io.BufferedReader(b, 777).read()
    want = "sha256:" + hashlib.sha256(data).hexdigest()
    assert a.digest == b.digest == want and a.count == b.count == len(data)
