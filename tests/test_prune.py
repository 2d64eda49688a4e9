"""The cache folders kept within bounds: unused files go, least recently used first; nothing else does."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.cache import DirBackend
from scanner.prune import MAX_AGE, RECENT, STAMP, maybe_prune, prune
from scanner.sources import open_source

H32, H40, H64 = "a" * 32, "b" * 40, "c" * 64
DAY = 86400


def _file(path: Path, size: int, age: float, now: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age, now - age))
    return path


def test_files_unused_for_max_age_go_and_nothing_that_is_not_leakscan_s(tmp_path: Path) -> None:
    now = time.time()
    layers, others = tmp_path / "layers", tmp_path
    old = MAX_AGE + DAY
    gone = [
        _file(layers / H32 / f"sha256-{H64}.json", 10, old, now),
        _file(layers / H32 / f"meta-{H64}.json", 10, old, now),
        _file(layers / "proofs" / f"sha256-{H64}.json", 10, old, now),
        _file(others / "hyperscan" / f"{H40}.db", 10, old, now),
        _file(others / "hyperscan" / f"anchored-{H40}.json", 10, old, now),
        _file(others / "rules" / f"{H40}.json", 10, old, now),
        _file(others / "code" / H64, 10, old, now),
        _file(layers / H32 / ".tmp-k2j3_x9a", 10, 2 * DAY, now),  # left by a process that died
    ]
    kept = [
        _file(layers / ("d" * 32) / f"sha256-{H64}.json", 10, MAX_AGE - DAY, now),  # used within MAX_AGE
        _file(layers / ("d" * 32) / ".tmp-abc", 10, 60, now),  # a write under way
        _file(layers / ".fingerprint-key", 10, old, now),  # the user's key (findings.fingerprint)
        _file(layers / "notes.json", 10, old, now),  # not in a namespace folder
        _file(layers / "not-a-namespace" / f"sha256-{H64}.json", 10, old, now),
        _file(layers / H32 / "README", 10, old, now),  # not a name leakscan gives
        _file(others / "hyperscan" / "mine.db", 10, old, now),
        _file(others / "elsewhere" / f"{H40}.db", 10, old, now),
    ]
    assert prune(layers, 0, others, now=now) == (len(gone), 10 * len(gone))
    assert [p for p in gone if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert (layers / H32).is_dir()  # still holds README
    _file(layers / ("e" * 32) / f"sha256-{H64}.json", 10, old, now)
    prune(layers, 0, others, now=now)
    assert not (layers / ("e" * 32)).exists()  # a namespace left empty goes too


def test_over_the_limit_the_least_recently_used_go_first_down_to_three_quarters(tmp_path: Path) -> None:
    now = time.time()
    files = [_file(tmp_path / H32 / f"sha256-{i:064x}.json", 100, RECENT + (10 - i) * 60, now) for i in range(10)]
    recent = _file(tmp_path / ("f" * 32) / f"sha256-{H64}.json", 1000, 10, now)  # a scan running now wrote it
    # 2,000 bytes against a limit of 1,200: the oldest go until at most 900 are left, the recent file never
    assert prune(tmp_path, 1200, None, now=now) == (10, 1000)
    assert not any(p.exists() for p in files) and recent.exists()
    files = [_file(tmp_path / H32 / f"sha256-{i:064x}.json", 100, RECENT + (10 - i) * 60, now) for i in range(10)]
    assert prune(tmp_path, 2800, None, now=now) == (0, 0)  # within the limit: nothing
    assert prune(tmp_path, 1800, None, now=now) == (7, 700)  # 2,000 -> 1,300 (<= 1,350)
    assert [p.exists() for p in files] == [False] * 7 + [True] * 3  # the oldest ones


def test_pruning_runs_once_a_day(tmp_path: Path) -> None:
    now = time.time()
    old = _file(tmp_path / H32 / f"sha256-{H64}.json", 10, MAX_AGE + DAY, now)
    assert maybe_prune(tmp_path, 0) == (1, 10) and not old.exists()
    old = _file(tmp_path / H32 / f"sha256-{H64}.json", 10, MAX_AGE + DAY, now)
    assert maybe_prune(tmp_path, 0) is None and old.exists()  # stamped less than a day ago
    os.utime(tmp_path / STAMP, (now - DAY - 1, now - DAY - 1))
    assert maybe_prune(tmp_path, 0) == (1, 10)


def test_a_read_marks_a_file_used(tmp_path: Path) -> None:
    backend = DirBackend(tmp_path)
    backend.write(f"{H32}/sha256:{H64}", "{}")
    path = tmp_path / H32 / f"sha256-{H64}.json"
    past = time.time() - MAX_AGE - DAY
    os.utime(path, (past, past))
    assert backend.read(f"{H32}/sha256:{H64}") == "{}"
    assert time.time() - path.stat().st_mtime < 60
    os.utime(path, (past, past))
    stored = backend.read_stored(f"{H32}/sha256:{H64}")
    assert stored is not None and stored[:] == b"{}"
    assert time.time() - path.stat().st_mtime < 60


def test_a_scan_prunes_another_version_s_results_and_keeps_its_own(
    sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the Hyperscan, rules and code caches
    cache = tmp_path / "layers"
    image = str(sample_archives["docker25"])
    options = ScanOptions(cache_dir=cache, fingerprint_key=b"a test key of 16+ bytes")
    scan_image(open_source(image), options)
    ours = {p for p in cache.rglob("*.json") if p.parent.name != "proofs"}
    assert ours
    now = time.time()
    stale = _file(cache / ("0" * 32) / f"sha256-{H64}.json", 10, MAX_AGE + DAY, now)  # an older leakscan's
    os.utime(cache / STAMP, (now - 2 * DAY, now - 2 * DAY))
    again = scan_image(open_source(image), options)
    assert again.cached_layers == 4  # its own results stand
    assert not stale.parent.exists()
    assert {p for p in cache.rglob("*.json") if p.parent.name != "proofs"} == ours
    assert (tmp_path / "xdg" / "leakscan" / "hyperscan").is_dir()  # used by the first scan, so kept
