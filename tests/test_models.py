"""scanner.models.Value and @value/@record: the classes they make (``__init__``, frozenness, ==,
hash(), repr(), pickling, slots) are what dataclass() would generate."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pickle
import pkgutil
import sys
from pathlib import Path
from typing import Any

import pytest

import scanner
from scanner import models

ROOT = Path(__file__).resolve().parents[1]

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
    slots = "__slots__" in cls.__dict__ and bool(cls.__slots__)  # type: ignore[attr-defined]
    return dataclasses.make_dataclass(cls.__name__, specs, frozen=_frozen(cls), namespace=own, slots=slots)


def _frozen(cls: type) -> bool:
    return not issubclass(cls, models.Record)


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
    # each made by @value (@record), which compiles its __init__ itself: no dataclass() beside it
    assert all(c.__init__.__qualname__ == f"{c.__qualname__}.__init__" for c in VALUES)
    assert not any(c.__dataclass_params__.init for c in VALUES)  # type: ignore[attr-defined]


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


@pytest.mark.parametrize("cls", VALUES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_init_frozenness_slots_and_replace_are_dataclass_s(cls: type) -> None:
    twin = _twin(cls)
    ours, theirs = inspect.signature(cls), inspect.signature(twin)
    assert [(p.name, p.kind, repr(p.default)) for p in ours.parameters.values()] == [
        (p.name, p.kind, repr(p.default)) for p in theirs.parameters.values()
    ]
    assert cls.__init__.__annotations__ == twin.__init__.__annotations__  # type: ignore[misc]
    assert cls.__match_args__ == twin.__match_args__  # type: ignore[attr-defined]
    assert getattr(cls, "__slots__", ()) == getattr(twin, "__slots__", ())
    kw = _values(cls, "a")
    a, ta = cls(**kw), twin(**kw)
    for f in dataclasses.fields(cls):
        assert getattr(a, f.name) == getattr(ta, f.name), f.name  # defaults and factories' values
        if f.default_factory is not dataclasses.MISSING:
            assert getattr(a, f.name) is not getattr(cls(**kw), f.name)  # a fresh one each time
    name = dataclasses.fields(cls)[0].name
    if _frozen(cls):
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot assign to field '{name}'"):
            setattr(a, name, "b")
        with pytest.raises(dataclasses.FrozenInstanceError, match=f"cannot delete field '{name}'"):
            delattr(a, name)
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(ta, name, "b")
    else:
        setattr(a, name, "b")
        assert getattr(a, name) == "b"
    changed = dataclasses.replace(a, **{name: "c"})
    assert getattr(changed, name) == "c" and changed.__class__ is cls
    assert pickle.loads(pickle.dumps(changed)) == changed


def test_init_takes_positional_keyword_only_init_false_and_post_init() -> None:
    @models.value(slots=True)
    class Odd(models.Value):
        """Every kind of field."""

        a: int
        b: list[int] = dataclasses.field(default_factory=list)
        c: int = dataclasses.field(default=3, kw_only=True)
        d: list[int] = dataclasses.field(default_factory=lambda: [4], init=False)
        e: int = dataclasses.field(default=5, init=False)

        def __post_init__(self) -> None:
            object.__setattr__(self, "e", self.e + self.a)

    odd = Odd(1, [2], c=7)
    assert (odd.a, odd.b, odd.c, odd.d, odd.e) == (1, [2], 7, [4], 6)
    assert str(inspect.signature(Odd)) == "(a: 'int', b: 'list[int]' = <factory>, *, c: 'int' = 3) -> None"
    with pytest.raises(TypeError):
        Odd(1, [2], 7)  # type: ignore[call-arg]  # c is keyword-only
    assert Odd(1).b == [] and Odd(1).b is not Odd(1).b


def test_value_and_record_are_for_their_own_kind() -> None:
    class Plain:
        x: int

    class Mutable(models.Record):
        x: int

    with pytest.raises(TypeError, match="@value is for a Value"):
        models.value(Plain)
    with pytest.raises(TypeError, match="@value is for a Value"):
        models.value(Mutable)
    with pytest.raises(TypeError, match="@record for a Record"):
        models.record(Plain)


@pytest.mark.parametrize("key_len", [0, 1, 32, 63, 64, 65, 200])
def test_keyed_is_hmac_sha256_of_the_values_hash(key_len: int) -> None:
    import hashlib
    import hmac
    import os

    for _ in range(20):
        key = os.urandom(key_len)
        secret = hashlib.sha256(os.urandom(12)).hexdigest()
        want = hmac.digest(key, b"leakscan-secret\0" + secret.encode(), "sha256").hex()[:32]
        assert models.keyed(key, secret) == want
        assert models.keyed(key, secret) == want  # the pads are copied, never updated in place


def test_small_sha256_is_sha256() -> None:
    import hashlib
    import os

    for n in (0, 1, 55, 56, 64, 1000, 70_000):
        data = os.urandom(n)
        assert models.small_sha256(data).hexdigest() == hashlib.sha256(data).hexdigest()
        assert models.sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_a_rescan_path_loads_no_openssl_tempfile_or_engine_with_the_package() -> None:
    """The modules a rescan from the cache runs import neither hashlib (OpenSSL) nor tempfile, and
    ``import scanner`` imports none of the scan's modules (scanner.main imports them, collector off)."""
    import os
    import subprocess

    code = (
        "import sys; before = set(sys.modules); import scanner;"
        "assert 'scanner.engine' not in sys.modules, 'engine';"
        "import scanner.cli, scanner.engine, scanner.cache, scanner.layers.archive, scanner.report.json;"
        "bad = [m for m in ('hashlib', '_hashlib', 'hmac', 'tempfile', 'random') if m in set(sys.modules) - before];"
        "assert not bad, bad"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr
