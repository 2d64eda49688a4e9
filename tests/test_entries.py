"""A layer's entries kept compactly (scanner.entries): read back exactly as they were added, through
the cache's JSON too, and a path's last entry found by its hash."""

from __future__ import annotations

import pytest

from scanner.entries import EntriesBuilder, LayerEntries, LazyEntries, PathIndex, compact, hard_links
from scanner.models import EntryKind, LayerEntry

F, D, S, H = EntryKind.FILE, EntryKind.DIR, EntryKind.SYMLINK, EntryKind.HARDLINK

ENTRIES = (
    LayerEntry("etc", D),
    LayerEntry("etc/passwd", F, 1234),
    LayerEntry("usr/bin/pythön", F, 2**40),  # not ASCII: kept as UTF-8
    LayerEntry("odd\udcff-name", F, 7),  # a surrogate (an undecodable byte of a tar name)
    LayerEntry("huge", F, 2**70),  # a crafted header: beyond 64 bits
    LayerEntry("link", S, 0, "etc/passwd"),
    LayerEntry("hard", H, 0, "etc/passwd"),
    LayerEntry("etc/passwd", F, 5),  # a duplicate member: the later one is the file
    LayerEntry("a/.wh.b", EntryKind.WHITEOUT),
)


def built() -> LayerEntries:
    builder = EntriesBuilder()
    for e in ENTRIES:
        builder.add(*e)
    return builder.build()


def test_entries_read_back_as_added() -> None:
    entries = built()
    assert len(entries) == len(ENTRIES) and tuple(entries) == ENTRIES and entries == ENTRIES
    assert entries[-1] == ENTRIES[-1] and entries[2:4] == ENTRIES[2:4] and list(entries.paths())[2] == "usr/bin/pythön"
    with pytest.raises(IndexError):
        entries[len(ENTRIES)]
    assert hard_links(entries) == [ENTRIES[6]] and LayerEntries.of(ENTRIES) == entries


def test_entries_survive_the_cache_s_json() -> None:
    text = built().to_json()
    assert text.isascii() and "\n" not in text
    assert tuple(LayerEntries.from_json(text)) == ENTRIES
    loads: list[str] = []
    lazy = LazyEntries(lambda: loads.append(text) or LayerEntries.from_json(text), len(ENTRIES), [ENTRIES[6]])
    assert lazy.hard_links() == [ENTRIES[6]] and len(lazy) == len(ENTRIES) and not loads  # not parsed yet
    assert tuple(lazy) == ENTRIES and compact(lazy) == ENTRIES and lazy[6] == ENTRIES[6] and len(loads) == 1


@pytest.mark.parametrize(
    "damage",
    [
        lambda t: t.replace('"etc', '"etcx', 1),  # names no longer fit the lengths
        lambda t: t.replace('"1000', '"9000', 1),  # a kind that does not exist
        lambda t: t.replace("1234", "-1234", 1),  # a negative size
        lambda t: t.replace("[[5,", "[[99,", 1),  # a link of no entry
        lambda t: t[:-1],
    ],
)
def test_damaged_entries_are_a_value_error(damage: object) -> None:
    text = built().to_json()
    damaged = damage(text)  # type: ignore[operator]
    assert damaged != text
    with pytest.raises(ValueError, match="damaged"):
        LayerEntries.from_json(damaged)


def test_a_path_s_last_entry_is_found_by_its_hash() -> None:
    entries = built()
    index = PathIndex(entries, lambda i: i != 8)
    assert index.get("etc/passwd") is F and index.get("etc") is D and index.get("link") is S
    assert index.get("usr/bin/pythön") is F and index.get("odd\udcff-name") is F
    assert index.get("a/.wh.b") is None and index.get("etc/pass") is None and index.get("") is None
    dup = LayerEntries.of([LayerEntry("x", F), LayerEntry("x", D)])
    assert PathIndex(dup).get("x") is D and PathIndex(dup, lambda i: i == 0).get("x") is F


def test_paths_containing_a_part_are_found_within_one_path() -> None:
    entries = LayerEntries.of([LayerEntry("a.w", F), LayerEntry("h.", F), LayerEntry("b/.wh.c", F)])
    assert entries.containing(".wh.") == [2]  # "a.w" + "h." joined spell .wh. across two paths
