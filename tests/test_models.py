"""scanner.models.Value: the models' ==, hash() and repr() are what dataclass() would generate."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from scanner import models

VALUES = sorted(
    (c for c in vars(models).values() if isinstance(c, type) and issubclass(c, models.Value) and c is not models.Value),
    key=lambda c: c.__name__,
)


def _twin(cls: type) -> type:
    """``cls`` as dataclass(frozen=True), with its own eq, hash and repr, would have made it."""
    specs = []
    for f in dataclasses.fields(cls):
        kw: dict[str, Any] = {"compare": f.compare, "repr": f.repr, "hash": f.hash}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**kw)))
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=True)


def _values(cls: type, tag: str) -> dict[str, object]:
    """A value for every field without a default (the methods never look at types)."""
    required = (f for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING)
    return {f.name: f"{tag}-{f.name}" for f in required}


def _hash(obj: object) -> int | str:
    try:
        return hash(obj)
    except TypeError as exc:  # a dict field: neither can be hashed
        return str(exc)


def test_every_model_is_a_value() -> None:
    assert len(VALUES) >= 11 and models.Finding in VALUES and models.ScanReport in VALUES


@pytest.mark.parametrize("cls", VALUES, ids=lambda c: c.__name__)
def test_eq_hash_and_repr_are_dataclass_s(cls: type) -> None:
    twin = _twin(cls)
    kw = _values(cls, "a")
    a, b, ta, tb = cls(**kw), cls(**kw), twin(**kw), twin(**kw)
    assert repr(a) == repr(ta) and repr(a).startswith(f"{cls.__name__}(")
    assert (a == b) is (ta == tb) is True and (a != b) is (ta != tb) is False
    assert _hash(a) == _hash(ta) and _hash(a) == _hash(b)
    assert a.__eq__(ta) is NotImplemented and a.__eq__("x") is NotImplemented is ta.__eq__("x")
    for f in dataclasses.fields(cls):  # one field changed: unequal exactly when dataclass's are
        other = {**kw, f.name: object()}
        assert (a == cls(**other)) is (ta == twin(**other)) is (not f.compare), f.name
        assert (repr(cls(**other)) == repr(a)) is (repr(twin(**other)) == repr(ta)) is (not f.repr), f.name


def test_a_value_that_holds_itself_is_shown_with_dots() -> None:
    record = models.PackageRecords()
    record.made["self"] = record
    assert repr(record).count("...") == 1
