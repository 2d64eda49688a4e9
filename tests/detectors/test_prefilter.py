"""The compiled Hyperscan database is kept on disk and loaded on the next run; a damaged or foreign
file is only a slower start (a compile), never a different answer."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.detectors import prefilter
from scanner.detectors.prefilter import HsPass, prefilter_expression

PATTERNS = [(r"ghp_[A-Za-z0-9]{36}", 0), (r"(?m)^password\s*=", 0), (r"AKIA[0-9A-Z]{16}", 2)]


class Prefilter:
    """A fresh pass each time (pass_for shares one per process)."""

    def __init__(self, patterns: list[tuple[str, int]]) -> None:
        self._pass = HsPass([[prefilter_expression(regex, flags) for regex, flags in patterns]])

    def candidates(self, data: bytes) -> set[int]:
        return {i for i, _, _ in self._pass.scan(data)[0]}


TEXT = b"x ghp_" + b"a" * 36 + b"\npassword = 1\n"


def test_a_compiled_database_is_saved_and_reused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = Prefilter(PATTERNS)
    assert first.candidates(TEXT) == {0, 1}
    [saved] = (tmp_path / "leakscan" / "hyperscan").glob("*.db")
    compiles: list[object] = []
    real = prefilter.hyperscan.Database
    monkeypatch.setattr(prefilter.hyperscan, "Database", lambda **kw: compiles.append(kw) or real(**kw))
    second = Prefilter(PATTERNS)
    assert second.candidates(TEXT) == {0, 1} and second.candidates(b"AKIA" + b"B" * 16) == {2}
    assert compiles == []  # loaded, not compiled
    saved.write_bytes(b"garbage")
    third = Prefilter(PATTERNS)
    assert third.candidates(TEXT) == {0, 1} and len(compiles) == 1  # compiled again
    other = Prefilter([*PATTERNS, (r"xoxb-[0-9]+", 0)])  # other rules: another key, another file
    assert other.candidates(b"xoxb-123") == {3}
    assert len(list((tmp_path / "leakscan" / "hyperscan").glob("*.db"))) == 2


def test_one_expression_gives_every_match_end_or_the_first_and_refuses_what_cannot_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """OneExpression (the base64 runs' gate and search): the ends HsPass reports, the first of them
    for a SINGLEMATCH expression (on bytes and on a memoryview slice, whose offsets are the
    slice's), and an error, not a silent pass, for an expression Hyperscan cannot compile."""
    import hyperscan

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    data = b"ab12 cd34 ab56 zz ab78"
    every = prefilter.OneExpression(rb"ab[0-9]{2}", 0)
    assert every.ends(data) == [e for _, _, e in HsPass([[(rb"ab[0-9]{2}", 0)]]).scan(data)[0]] == [4, 14, 22]
    assert every.ends(memoryview(data)[5:]) == [9, 17]
    first = prefilter.OneExpression(rb"ab[0-9]{2}", hyperscan.HS_FLAG_SINGLEMATCH)
    assert first.first_end(data) == 4 and first.first_end(memoryview(data)[5:]) == 9
    assert first.first_end(b"no match here") == -1
    with pytest.raises(ValueError):
        prefilter.OneExpression(rb"(unclosed", 0).ends(data)


def _events_by_closure(p: HsPass, data: bytes) -> list[list[tuple[int, int, int]]]:
    """HsPass.scan as it was written before HsPass.events: a closure per call, each event put in
    its group (and in every group that shares its expression) as Hyperscan reports it."""
    p.scan(b"")  # built
    out = [list(a) for a in p._always]
    if p._db is None or not data:
        return out

    def on_match(ident: int, start: int, end: int, flags: int, context: object) -> None:
        out[ident >> prefilter._SHIFT].append((ident & prefilter._LOCAL, start, end))
        for g, i in p._also.get(ident, ()):
            out[g].append((i, start, end))

    p._db.scan(data, match_event_handler=on_match, scratch=hyperscan_scratch(p))
    return out


def hyperscan_scratch(p: HsPass) -> object:
    import hyperscan

    return hyperscan.Scratch(p._db)


GROUPS = [
    [(rb"ghp_[A-Za-z0-9]{4}", 0), (rb"key\s*=", 0)],
    [(rb"key\s*=", 0), (rb"AKIA[0-9A-Z]{4}", 0)],  # one expression in two groups: compiled once
    [prefilter_expression(r"pass(?:word)?\s*[:=]", 0)],
]
WINDOWS = [
    b"",
    b"nothing to see",
    b"key = 1 ghp_abcd key= AKIAABCD",
    b"password: x\npass= y ghp_WXYZ ghp_0000",
    b"AKIA1234" * 3,
]


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("always", [False, True])
def test_events_are_what_a_pass_reports_and_none_only_without_any(
    window: bytes, always: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HsPass.events (positional arguments, one callback for every call, events put in groups
    after the scan) gives every group's events in Hyperscan's order, as the closure per call did,
    and None exactly when no group has one: the content scanner then asks no gated detector.  With
    an expression Hyperscan cannot compile, its group has an event everywhere: never None."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    groups = [*GROUPS, [(rb"(?<!x)(unclosed", 0)]] if always else GROUPS
    for p in (HsPass(groups), HsPass([[e for g in groups for e in g]])):  # and as one group
        _same_events(p, window)
    if window == WINDOWS[2]:
        assert _events_by_closure(HsPass(GROUPS), window)[1]  # the shared expression's events reach both groups


def _same_events(p: HsPass, window: bytes) -> None:
    expected = _events_by_closure(p, window)
    events = p.events(window)
    assert p.scan(window) == expected
    if any(expected):
        assert events == expected
    else:
        assert events is None
