"""The reports' JSON writer gives exactly ``json.dumps(obj, indent=2)``, on real reports and on
every kind of value json knows, and leaves what it does not know to json itself."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner import ScanOptions, scan_image
from scanner.detectors import SecretSpec, load_known_values
from scanner.report import jsontext
from scanner.report.gitlab import GitlabRenderer
from scanner.report.json import JsonRenderer, report_dict
from scanner.report.sarif import SarifRenderer
from scanner.sources import open_source
from tests.conftest import SAMPLE


class Colour(enum.StrEnum):
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


class Name(str):
    pass


EDGES: list[Any] = [
    {},
    [],
    (),
    "text",
    0,
    -12,
    None,
    True,
    False,
    1.5,
    -0.0,
    1e300,
    float("nan"),
    float("inf"),
    -float("inf"),
    [[], {}, [[]], [{}], {"a": []}, {"a": {}}],
    {"nested": {"deeper": [{"k": [1, [2, [3]]]}]}},
    {"quotes": 'a"b\\c', "controls": "\x00\x1f\t\n\r\u2028\u2029", "unicode": "é ü 日本 🙂", "lone": "\udcff"},
    {"flat": 1, "b": "x", "c": None, "d": 2.5, "e": False, "f": True},
    {"enum": Colour.RED, "int_enum": Level.HIGH, "str_sub": Name("n"), "tuple": (1, ("a",), ())},
    {Colour.RED: "an enum key", Name("k"): "a str subclass key"},
]


@pytest.mark.parametrize("ensure_ascii", [True, False])
@pytest.mark.parametrize("value", EDGES, ids=[f"edge{i}" for i in range(len(EDGES))])
def test_the_same_text_as_json_dumps(value: Any, ensure_ascii: bool) -> None:
    assert jsontext.dumps(value, ensure_ascii=ensure_ascii) == json.dumps(value, indent=2, ensure_ascii=ensure_ascii)


_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text()
    | st.sampled_from([Colour.RED, Level.HIGH, Name("n")])
)
_KEYS = st.text() | st.integers() | st.none() | st.booleans() | st.sampled_from([Colour.RED, Name("k")])
_VALUES = st.recursive(
    _LEAVES,
    lambda inner: (
        st.lists(inner, max_size=6) | st.lists(inner, max_size=4).map(tuple) | st.dictionaries(_KEYS, inner, max_size=6)
    ),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(value=_VALUES, ensure_ascii=st.booleans())
def test_any_value_is_written_as_json_dumps_writes_it(value: Any, ensure_ascii: bool) -> None:
    """Any nesting of every kind of leaf and container, with the keys json converts."""
    assert jsontext.dumps(value, ensure_ascii=ensure_ascii) == json.dumps(value, indent=2, ensure_ascii=ensure_ascii)


@pytest.mark.parametrize("value", [{1: "int key"}, {None: 1}, {"a": {True: [1]}}, {2.5: "x"}])
def test_keys_json_converts_are_left_to_json(value: Any) -> None:
    assert jsontext.dumps(value) == json.dumps(value, indent=2)


def test_an_unknown_value_raises_as_json_does() -> None:
    with pytest.raises(TypeError, match="not JSON serializable"):
        jsontext.dumps({"a": [object()]})


def test_real_reports_are_unchanged(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    """The report, SARIF and GitLab documents of a real scan with findings, all three ways."""
    known = load_known_values([SecretSpec.parse(f"id=demo,src={SAMPLE / 'demo-secret.txt'}")])
    report = scan_image(open_source(str(sample_archives["containerd"])), ScanOptions(known=tuple(known)))
    assert report.findings
    doc = report_dict(report)
    assert jsontext.dumps(doc, ensure_ascii=False) == json.dumps(doc, indent=2, ensure_ascii=False)
    pieces = JsonRenderer().pieces(report)  # what a report file is written from
    assert len(pieces) > 100 and "".join(pieces) == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert JsonRenderer().render(report) == "".join(pieces)
    sarif, gitlab = SarifRenderer().render(report), GitlabRenderer().render(report)
    assert sarif == json.dumps(json.loads(sarif), indent=2) + "\n"
    assert gitlab == json.dumps(json.loads(gitlab), indent=2, ensure_ascii=False) + "\n"
