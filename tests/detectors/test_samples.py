"""The rule samples' expansion: random by default, repeatable when seeded (benchmarks/detection.py --seed)."""

from __future__ import annotations

from tests.detectors.samples import expand, seed

TEMPLATE = "key={a40} id={uuid} hex={h16}"


def test_seeded_samples_repeat_and_unseeded_ones_do_not() -> None:
    try:
        seed(7)
        first = [expand(TEMPLATE) for _ in range(3)]
        seed(7)
        assert [expand(TEMPLATE) for _ in range(3)] == first
        assert len(set(first)) == 3  # still random within a run
        seed(8)
        assert expand(TEMPLATE) != first[0]
    finally:
        seed(None)
    assert expand(TEMPLATE) != expand(TEMPLATE)
