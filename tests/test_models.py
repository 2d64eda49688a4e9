"""scanner.models.Value: the ==, hash() and repr() it gives leakscan's frozen dataclasses are what
dataclass() would generate."""

from __future__ import annotations

import dataclasses
import importlib
import pickle
import pkgutil
import sys
from typing import Any

import pytest

import scanner
from scanner import models

# every module but the entry point and the service's (whose imports want the service's extras)
for _module in pkgutil.walk_packages(scanner.__path__, "scanner."):
    if _module.name != "scanner.__main__" and not _module.name.startswith("scanner.service"):
        importlib.import_module(_module.name)

VALUES = sorted(
    {
        c
        for name, module in sys.modules.items()
        if name.startswith("scanner.")
        for c in vars(module).values()
        if isinstance(c, type)
        and issubclass(c, models.Value)
        and c not in (models.Value, models.Record)
        and c.__module__ == name
    },
    key=lambda c: f"{c.__module__}.{c.__name__}",
)


def _twin(cls: type) -> type:
    """``cls`` as dataclass(), with its own eq, hash and repr, would have made it."""
    specs = []
    for f in dataclasses.fields(cls):
        kw: dict[str, Any] = {"compare": f.compare, "repr": f.repr, "hash": f.hash}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        specs.append((f.name, f.type, dataclasses.field(**kw)))
    own = {"__repr__": cls.__dict__["__repr__"]} if "__repr__" in cls.__dict__ else {}  # dataclass keeps a class's own
    frozen = cls.__dataclass_params__.frozen  # type: ignore[attr-defined]
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=frozen, namespace=own)


def _values(cls: type, tag: str) -> dict[str, object]:
    """A value for every field without a default (the methods never look at types)."""
    required = (f for f in dataclasses.fields(cls) if f.default is f.default_factory is dataclasses.MISSING)
    return {f.name: f"{tag}-{f.name}" for f in required}


def _hash(obj: object) -> int | str:
    try:
        return hash(obj)
    except TypeError as exc:  # a dict field: neither can be hashed
        return str(exc)


def test_the_models_and_the_options_are_values() -> None:
    from scanner.engine import ScanOptions
    from scanner.layers.collect import BlobRecord
    from scanner.layers.limits import WalkLimits

    assert len(VALUES) >= 35 and {models.Finding, models.ScanReport, ScanOptions, WalkLimits, BlobRecord} <= set(VALUES)
    assert not any(issubclass(c, models.Record) for c in VALUES if c.__dataclass_params__.frozen)  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", VALUES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_eq_hash_and_repr_are_dataclass_s(cls: type) -> None:
    twin = _twin(cls)
    kw = _values(cls, "a")
    a, b, ta, tb = cls(**kw), cls(**kw), twin(**kw), twin(**kw)
    assert repr(a) == repr(ta) and repr(a).startswith(f"{cls.__name__}(")
    assert (a == b) is (ta == tb) is True and (a != b) is (ta != tb) is False
    assert _hash(a) == _hash(ta) and _hash(a) == _hash(b)  # a Record's: unhashable, as dataclass's
    assert a.__eq__(ta) is NotImplemented and a.__eq__("x") is NotImplemented is ta.__eq__("x")
    assert pickle.loads(pickle.dumps(a)) == a  # as the workers of --jobs send them
    for f in dataclasses.fields(cls):  # one field changed: unequal exactly when dataclass's are
        other = {**kw, f.name: object()}
        assert (a == cls(**other)) is (ta == twin(**other)) is (not f.compare), f.name
        shown = repr(cls(**other)) != repr(a)
        assert shown is (repr(twin(**other)) != repr(ta)), f.name
        assert shown is f.repr or "__repr__" in cls.__dict__, f.name  # a class's own repr hides what it hides


def test_a_value_that_holds_itself_is_shown_with_dots() -> None:
    record = models.PackageRecords()
    record.made["self"] = record
    assert repr(record).count("...") == 1
