from __future__ import annotations

from scanner.layers.visibility import Visibility
from scanner.models import EntryKind, LayerEntry, LayerScan, Status


def layer(*entries: tuple[str, EntryKind] | tuple[str, EntryKind, str]) -> LayerScan:
    return LayerScan(
        "d",
        "d",
        "none",
        0,
        0,
        tuple(
            LayerEntry(e[0], e[1], 0, e[2] if len(e) > 2 else None)  # type: ignore[misc]
            for e in entries
        ),
        (),
        0,
        (),
    )


F, D, W, OP, H = EntryKind.FILE, EntryKind.DIR, EntryKind.WHITEOUT, EntryKind.OPAQUE, EntryKind.HARDLINK


def test_present_deleted_overwritten_opaque() -> None:
    vis = Visibility(
        [
            layer(("a", D), ("a/b", D), ("a/b/c", F), ("x", F), ("y", F), ("keep", F)),
            layer(("a", D), ("a/.wh..wh..opq", OP), ("a/b", D), ("a/b/foo", F), (".wh.x", W), ("y", F)),
            layer((".wh.a", W)),
        ]
    )
    assert vis.hider(0, "a/b/c") == (Status.DELETED, 1)  # opaque dir in layer 1
    assert vis.hider(0, "x") == (Status.DELETED, 1)
    assert vis.hider(0, "y") == (Status.OVERWRITTEN, 1)
    assert vis.hider(0, "keep") == (Status.PRESENT, None)
    assert vis.hider(1, "a/b/foo") == (Status.DELETED, 2)  # whole a/ removed
    assert vis.hider(1, "y") == (Status.PRESENT, None)


def test_whiteout_applies_only_to_lower_layers() -> None:
    vis = Visibility([layer((".wh.f", W), ("f", F))])
    assert vis.hider(0, "f") == (Status.PRESENT, None)


def test_deleted_then_recreated_stays_deleted_for_the_old_copy() -> None:
    vis = Visibility([layer(("f", F)), layer((".wh.f", W)), layer(("f", F))])
    assert vis.hider(0, "f") == (Status.DELETED, 1)
    assert vis.hider(2, "f") == (Status.PRESENT, None)


def test_parent_directory_replaced_by_a_file() -> None:
    vis = Visibility([layer(("d", D), ("d/secret", F)), layer(("d", F))])
    assert vis.hider(0, "d/secret") == (Status.OVERWRITTEN, 1)


def test_directory_entry_in_upper_layer_does_not_hide() -> None:
    vis = Visibility([layer(("d", D), ("d/f", F)), layer(("d", D), ("d/g", F))])
    assert vis.hider(0, "d/f") == (Status.PRESENT, None)


def test_hard_link_sources_same_and_lower_layer() -> None:
    vis = Visibility(
        [
            layer(("t", F), ("gone", F)),
            layer(("l", H, "t"), ("m", H, "n"), ("n", F)),
            layer((".wh.gone", W)),
            layer(("k", H, "gone")),
        ]
    )
    assert vis.link_source(1, "t") == 0
    assert vis.link_source(1, "n") == 1
    assert vis.link_source(3, "gone") is None  # deleted before the link was made
    assert vis.link_source(1, "missing") is None
