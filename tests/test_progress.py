"""The progress bar shows a total and an ETA when the source knows its size beforehand (the
engine's own figure for an image), and just the bytes scanned otherwise."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest

from scanner.cli_options import progress_bar
from scanner.sources import DaemonSource
from tests.support.images import LeakyImage
from tests.support.services import DOCKER


def _drawn(monkeypatch: pytest.MonkeyPatch, total: int | None) -> str:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    advance = progress_bar(total)
    advance(512)
    return out.getvalue()


def test_a_known_total_gives_a_percentage_and_an_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = _drawn(monkeypatch, 4096)
    assert "0%" in drawn and "/4.00k" in drawn and "<?" in drawn  # tqdm's ETA field, filled in as it goes


def test_an_unknown_total_gives_bytes_only(monkeypatch: pytest.MonkeyPatch) -> None:
    drawn = _drawn(monkeypatch, None)
    assert "%" not in drawn and "scanning" in drawn


@pytest.mark.engine
def test_the_engine_source_knows_its_size(leaky: LeakyImage) -> None:
    inspect = [DOCKER, "image", "inspect", "-f", "{{.Size}}", leaky.tag]
    size = int(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)
    assert DaemonSource(leaky.tag).size_hint() == size > 0
