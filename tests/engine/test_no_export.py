"""An unchanged engine image rescans from the layer cache with no export (issue 20): the engine is
trusted to name its own image and layers (its image id is its config's digest, its RootFS.Layers
the diff_ids it keeps layers by); the documents of the earlier export must hash to that id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.models import ScanReport
from scanner.report import OutputFormat, renderer_for
from scanner.sources import DaemonSource, open_source
from tests.support.images import LeakyImage

pytestmark = pytest.mark.engine


def _options(leaky: LeakyImage, cache: Path) -> ScanOptions:
    from scanner.detectors import SecretSpec, load_known_values

    specs = [SecretSpec.parse(f) for f in leaky.secret_flags] + [SecretSpec.parse(f"id={n}") for n in leaky.env]
    return ScanOptions(known=tuple(load_known_values(specs, environ=leaky.env)), cache_dir=cache)


def _json(report: ScanReport) -> dict[str, object]:
    doc = json.loads(renderer_for(OutputFormat.JSON).render(report))
    doc["summary"].pop("duration_s")
    doc["summary"].pop("cached_layers")
    doc["source"].pop("format")
    return doc


def test_an_unchanged_engine_image_rescans_without_an_export(
    leaky: LeakyImage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = _options(leaky, tmp_path / "cache")
    first = scan_image(open_source(leaky.tag), options)
    assert first.complete and "not exported" not in first.archive_format

    def no_export(self: DaemonSource) -> Iterator[object]:
        raise AssertionError("exported although every layer and the config are in the cache")

    monkeypatch.setattr(DaemonSource, "members", no_export)
    again = scan_image(open_source(leaky.tag), options)
    assert again.archive_format.endswith("from cache, not exported")
    assert again.complete and again.cached_layers == len(again.images[0].layers)
    assert _json(again) == _json(first)  # the same findings, layers, history and metadata


def test_a_cached_export_that_is_not_the_image_is_not_used(leaky: LeakyImage, tmp_path: Path) -> None:
    """A damaged or foreign export document (its config does not hash to the image id) is not
    trusted: the image is exported and scanned as before."""
    options = _options(leaky, tmp_path / "cache")
    first = scan_image(open_source(leaky.tag), options)
    shells = list((tmp_path / "cache").rglob("export-sha256-*.json"))
    assert len(shells) == 1
    doc = json.loads(shells[0].read_text())
    for member in doc["members"]:
        if member[1] == "doc" and member[0].endswith(".json") and "manifest" not in member[0]:
            member[2] = member[2][:-8] + "AAAAAAA="  # another config
    shells[0].write_text(json.dumps(doc))
    again = scan_image(open_source(leaky.tag), options)
    assert "not exported" not in again.archive_format
    assert again.complete and _json(again) == _json(first)
