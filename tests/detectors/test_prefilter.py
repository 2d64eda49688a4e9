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
