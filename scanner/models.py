"""Frozen data that flows between the pipeline stages.

Nothing here ever holds the plaintext of a secret: a :class:`Hit` carries its SHA-256 (internal:
the detectors' dedupe and the layer cache) and a redacted preview, built by :func:`redact` inside
the detector stage; a :class:`Finding`, which reports print, carries a fingerprint keyed with the
user's own key instead (:func:`keyed`), which no reader of a report can test guesses against.
"""

from __future__ import annotations

import base64
import binascii
import functools
import importlib
import operator
import posixpath
import re
import reprlib
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, FrozenInstanceError, dataclass, field, fields
from enum import StrEnum
from types import MemberDescriptorType
from typing import (
    TYPE_CHECKING,
    Any,
    AnyStr,
    ClassVar,
    Generic,
    NamedTuple,
    Protocol,
    TypeVar,
    dataclass_transform,
    overload,
)

if TYPE_CHECKING:
    import hashlib


class Readable(Protocol):
    """What every stage reads bytes from: a file, a tar member, a decompressor, a socket."""

    def read(self, size: int = ..., /) -> bytes: ...


class Value:
    """``==``, ``hash()`` and ``repr()`` of leakscan's frozen dataclasses (the models below, the
    options, limits and the like), as dataclass(eq=True, repr=True) writes them (field by field,
    between instances of one class; ``Class(field=value, ...)``), and their frozenness, written
    once here rather than compiled for each class: see :func:`value`.  tests/test_models.py holds
    every one to what dataclass() would have made."""

    __slots__ = ()

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        key = _compared(self.__class__)
        return bool(key(self) == key(other))

    def __hash__(self) -> int:
        return hash(_compared(self.__class__)(self))

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)  # type: ignore[arg-type]
        return f"{self.__class__.__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")


class Record(Value):
    """A Value whose fields may change after it is made (a dataclass that is not frozen): unhashable,
    as dataclass(eq=True) makes one."""

    __slots__ = ()
    __hash__ = None  # type: ignore[assignment]
    __setattr__ = object.__setattr__  # type: ignore[assignment]  # object's own slots: an assignment costs what it costs anywhere
    __delattr__ = object.__delattr__


T = TypeVar("T", bound=type)
S = TypeVar("S")


def compiled(pattern: AnyStr, flags: int = 0) -> Callable[[], re.Pattern[AnyStr]]:
    """A module's regular expression, compiled at its first use rather than with the module: each
    costs 0.05-0.2 ms to compile, and a rescan from the cache imports many modules and uses few of
    their patterns.  ``_NAME = compiled(r"...")``, then ``_NAME().match(text)``."""
    return functools.cache(lambda: re.compile(pattern, flags))


@overload
def value(cls: T, /) -> T: ...
@overload
def value(*, slots: bool = False) -> Callable[[T], T]: ...


@dataclass_transform(frozen_default=True, field_specifiers=(field,))
def value(cls: T | None = None, /, *, slots: bool = False) -> T | Callable[[T], T]:
    """What ``@dataclass(frozen=True, eq=False, repr=False, slots=slots)`` makes of a :class:`Value`,
    for under a third of its cost.  dataclass() compiles an ``__init__``, a ``__setattr__`` and a
    ``__delattr__`` for each frozen class from source, 0.15-0.55 ms a class, and a cached rescan
    makes 35 of them (13 ms of about 110: docs/performance.md).  Here dataclass() makes only the
    fields (``init=False``: nothing compiled), the frozenness comes from :class:`Value`, and the
    ``__init__`` is the one dataclass() would write, compiled from one source (4 ms in all)."""
    return _made(cls, slots, frozen=True)


@dataclass_transform(field_specifiers=(field,))
def record(cls: T, /) -> T:
    """:func:`value` for a :class:`Record`: what ``@dataclass(eq=False, repr=False)`` makes of it."""
    made = _made(cls, False, frozen=False)
    assert isinstance(made, type)
    return made  # type: ignore[return-value]


def _made(cls: T | None, slots: bool, frozen: bool) -> T | Callable[[T], T]:
    def wrap(cls: T) -> T:
        if not issubclass(cls, Record if not frozen else Value) or (frozen and issubclass(cls, Record)):
            raise TypeError(f"{cls.__qualname__}: @value is for a Value, @record for a Record")
        made: T = dataclass(init=False, eq=False, repr=False, slots=slots)(cls)  # type: ignore[assignment]
        setattr(made, "__init__", _LazyInit(made, frozen))  # noqa: B010  # mypy: a class's __init__ is not assigned
        if slots and frozen:  # pickle (the workers of --jobs) would set the slots through __setattr__
            setattr(made, "__getstate__", _getstate)  # noqa: B010
            setattr(made, "__setstate__", _setstate)  # noqa: B010
        return made

    return wrap if cls is None else wrap(cls)


class _LazyInit:
    """A class's ``__init__`` until first asked for (an instance made, ``inspect.signature``, the
    attribute read): then compiled by :func:`_init` and put in its place on the class.  Compiling
    one costs 50-200 microseconds; a rescan from the cache imports classes it never instantiates
    (the Dockerfile's, the baseline's, an archive member's)."""

    __slots__ = ("cls", "frozen")

    def __init__(self, cls: type, frozen: bool) -> None:
        self.cls, self.frozen = cls, frozen

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        init = _init(self.cls, self.frozen)
        type.__setattr__(self.cls, "__init__", init)
        return init.__get__(obj, owner)


def _init(cls: type, frozen: bool) -> Callable[..., None]:
    """``cls``'s ``__init__``, as dataclass() writes it: a parameter per field in order (a default
    where the field has one, a factory's called in the body), ``__post_init__`` last."""
    params: list[str] = []
    kw_only: list[str] = []
    body: list[str] = []
    names: dict[str, Any] = {"__object__": object, "__factory__": _FACTORY}
    for f in fields(cls):
        default = ""
        if f.default is not MISSING:
            names[f"__default_{f.name}__"] = f.default
            default = f" = __default_{f.name}__"
        elif f.default_factory is not MISSING:
            names[f"__factory_{f.name}__"] = f.default_factory
            default = " = __factory__"
        if f.init:
            (kw_only if f.kw_only else params).append(f"{f.name}{default}")
            got = f.name
            if f.default_factory is not MISSING:
                got = f"__factory_{f.name}__() if {f.name} is __factory__ else {f.name}"
        elif f.default_factory is not MISSING:
            got = f"__factory_{f.name}__()"
        elif f.default is not MISSING:
            got = f"__default_{f.name}__"
        else:
            continue
        if frozen and isinstance(slot := getattr(cls, f.name, None), MemberDescriptorType):
            names[f"__set_{f.name}__"] = slot.__set__  # the slot's own setter: object.__setattr__ without the lookup
            body.append(f"__set_{f.name}__(self, {got})")
        else:
            body.append(f"__object__.__setattr__(self, {f.name!r}, {got})" if frozen else f"self.{f.name} = {got}")
    if hasattr(cls, "__post_init__"):
        body.append("self.__post_init__()")
    signature = ", ".join(["self", *params, *(["*", *kw_only] if kw_only else [])])
    source = f"def __init__({signature}) -> None:\n    " + ("\n    ".join(body) or "pass") + "\n"
    exec(source, names)  # source made above from the class's own field names
    init: Callable[..., None] = names["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = {**{f.name: f.type for f in fields(cls) if f.init}, "return": None}
    return init


class _Factory:
    """The default of a field with a factory, until the body calls the factory (dataclass's own)."""

    def __repr__(self) -> str:
        return "<factory>"


_FACTORY = _Factory()


def _getstate(self: Value) -> list[Any]:
    return [getattr(self, f.name) for f in fields(self)]  # type: ignore[arg-type]


def _setstate(self: Value, state: list[Any]) -> None:
    for f, v in zip(fields(self), state, strict=True):  # type: ignore[arg-type]
        object.__setattr__(self, f.name, v)


_KEYS: dict[type, Callable[[object], tuple[Any, ...]]] = {}


def _compared(cls: type) -> Callable[[object], tuple[Any, ...]]:
    """The fields ``==`` and ``hash()`` look at (compare=True), as a tuple, for instances of ``cls``."""
    if (key := _KEYS.get(cls)) is None:
        if any(f.hash is not None for f in fields(cls)):
            raise TypeError(f"{cls.__qualname__}: Value does not take field(hash=...)")
        names = tuple(f.name for f in fields(cls) if f.compare)
        if len(names) == 1:
            one = operator.attrgetter(names[0])
            key = _KEYS[cls] = lambda obj: (one(obj),)
        else:
            key = _KEYS[cls] = operator.attrgetter(*names) if names else lambda obj: ()
    return key


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]


_SEVERITY_RANK = {Severity.LOW: 0, Severity.MEDIUM: 1, Severity.HIGH: 2, Severity.CRITICAL: 3}

# the reason of a downgrade that a package's word can undo (detectors.content gives it, findings.policy undoes it)
IN_DOCS_OR_TESTS = "in documentation, examples or tests"


class Status(StrEnum):
    """Where a file finding stands in the final filesystem of the image."""

    PRESENT = "present"
    DELETED = "deleted"
    OVERWRITTEN = "overwritten"


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    WHITEOUT = "whiteout"
    OPAQUE = "opaque"
    OTHER = "other"


@value(slots=True)
class Hit(Value):
    """A detector's match, already redacted: the plaintext was dropped when this was made."""

    rule_id: str
    detector: str
    severity: Severity
    description: str
    secret_sha256: str
    preview: str
    line: int | None = None
    secret_id: str | None = None
    encoding: str | None = None
    confidence: str = "high"
    also: tuple[str, ...] = ()  # the other rules that matched the same value at the same place
    proven: bool = False  # a checksum in the token proves its format (GitHub, npm): never downgraded
    downgraded_from: Severity | None = None  # the severity before a downgrade, whose reason follows
    downgrade_reason: str | None = None


@value(slots=True)
class Package(Value):
    """Who installed a file, from the package manager's own records in the image."""

    manager: str  # dpkg, pip, npm, maven, apk
    name: str
    version: str
    # unmodified (the file's bytes match the record), modified (they do not), unverified (no checksum
    # recorded), unhashed (one is, but the file was read in chunks and not hashed)
    state: str

    MANAGERS: ClassVar[dict[str, str]] = {
        "dpkg": "Debian package",
        "pip": "Python package",
        "npm": "npm package",
        "maven": "Maven artifact",
        "apk": "Alpine package",
    }

    def describe(self) -> str:
        """ "Debian package bash 5.2.15-2+b7, unmodified" """
        what = {
            "unmodified": "unmodified",
            "modified": "modified: its bytes differ from the package's record",
            "unverified": "not verified: no checksum to compare with",
            "unhashed": "not verified: the file is larger than leakscan hashes (8 MiB)",
        }.get(self.state, self.state)
        return f"{self.MANAGERS.get(self.manager, self.manager)} {self.name} {self.version}".rstrip() + f", {what}"


_RECORD_LINE = compiled(r"(?m)^([^,\n]+),(sha256=[^,\n]*|)")
_RECORD_OUTSIDE = compiled(r'(?m)^(?:\.\./|/|")[^\n]*')  # ../../bin/x, /x, "quoted"


def record_files(site: str, k: int, text: str) -> dict[str, tuple[int, str]]:
    """pip's RECORD (``path,sha256=<urlsafe base64>,size`` a line, paths relative to ``site``):
    each path with its checksum as written (decoded only when a file is checked)."""
    lines = _RECORD_LINE().findall(text)
    files = {site + rel: (k, digest) for rel, digest in lines if rel[0] not in './"' and "/." not in rel}
    for rel, digest in lines:  # ../../bin/x, ./x, /x, a/./b, "quoted": resolved one by one
        if rel[0] in './"' or "/." in rel:
            path = posixpath.normpath(posixpath.join(site, rel.strip('"'))).lstrip("/")
            if not path.startswith("../"):
                files[path] = (k, digest)
    return files


@value(slots=True)
class PackageRecords(Value):
    """What the package managers' records that one layer writes say (dpkg's status and info files,
    pip's RECORD, npm's package.json, apk's installed database): the packages, and for each file
    they installed its package and the checksum recorded for it ("md5:<hex>", "sha1:<hex>", pip's
    "sha256=<base64>" as written, or "" where none is recorded); npm's packages by their directory.

    pip's RECORD files are kept as written, compressed (``pip``: site directory, package index,
    zlib's compression of the UTF-8 text in base64; see :func:`pack_record`), and searched at each lookup:
    an image holds their lines by the ten thousand (14 MB of text in the 3 GB benchmark image), and
    a lookup happens only for a file with findings.  A lookup opens only the RECORDs that hold a
    line for the path's first component under their site directory."""

    packages: tuple[tuple[str, str, str], ...] = ()  # (manager, name, version)
    files: dict[str, tuple[int, str]] = field(default_factory=dict)  # path -> (package index, checksum)
    roots: dict[str, int] = field(default_factory=dict)  # a package's directory -> package index
    pip: list[tuple[str, int, str]] = field(default_factory=list)  # RECORD texts, as written, compressed
    # for each RECORD of ``pip``, what a lookup needs before reading it (record_index): the first
    # components of its lines, and its lines that name a file outside its site directory; made
    # when the RECORD is read (and cached with it), so a rescan decompresses no RECORD to look up
    pip_index: list[tuple[tuple[str, ...], str]] = field(default_factory=list, compare=False)
    made: dict[str, Any] = field(default_factory=dict, compare=False)  # at need: tops, sites, texts, outside

    def __bool__(self) -> bool:
        return bool(self.packages)

    def _tops(self) -> dict[str, list[int]]:
        """site directory + a line's first component (up to its first / or ,) -> the RECORDs
        (their places in ``pip``) that hold such a line; made at the first lookup."""
        if "tops" not in self.made:
            tops: dict[str, list[int]] = {}
            for n, (site, _, _) in enumerate(self.pip):
                for top in self._index(n)[0]:
                    tops.setdefault(site + top, []).append(n)
            self.made["tops"], self.made["sites"], self.made["texts"] = tops, {s for s, _, _ in self.pip}, {}
        tops_made: dict[str, list[int]] = self.made["tops"]
        return tops_made

    def _index(self, n: int) -> tuple[tuple[str, ...], str]:
        """The RECORD at ``n``'s index (record_index); made from its text when it was not kept
        (a damaged RECORD: an empty one, so a lookup finds nothing in it and a finding keeps its
        severity)."""
        if len(self.pip_index) == len(self.pip):
            return self.pip_index[n]
        try:
            return record_index(unpack_record(self.pip[n][2]))
        except ValueError:
            return (), ""

    def _text(self, n: int) -> str:
        """The text of the RECORD at ``n``, the last few kept: a package's files with findings
        come one after the other."""
        texts: dict[int, str] = self.made["texts"]
        if (text := texts.pop(n, None)) is None:
            text = unpack_record(self.pip[n][2])
            if len(texts) >= 8:
                del texts[next(iter(texts))]
        texts[n] = text  # the most recent last
        return text

    def file(self, path: str) -> tuple[int, str] | None:
        """The package index and recorded checksum of ``path``, if a record names it.  A RECORD is
        searched for the path's own line when the path lies in its site directory (most lookups),
        and read whole only for the few paths outside it (``../../bin/x``)."""
        if (entry := self.files.get(path)) is not None or not self.pip:
            return entry
        tops, candidates = self._tops(), set[int]()
        for site in self.made["sites"]:
            if path.startswith(site):
                candidates.update(tops.get(site + _top(path[len(site) :]), ()))
        for n in sorted(candidates):  # in the order of the layer, as every RECORD was before
            site, k, _ = self.pip[n]
            try:
                text = self._text(n)
            except ValueError:  # damaged: no record of the path there (a finding keeps its severity)
                continue
            key = path[len(site) :] + ","
            if text.startswith(key):
                at = len(key)
            elif (at := text.find("\n" + key)) >= 0:
                at += 1 + len(key)
            else:
                continue
            end = text.find("\n", at)
            digest = text[at : end if end >= 0 else len(text)].partition(",")[0]
            return (k, digest if digest.startswith("sha256=") else "")
        if "outside" not in self.made:  # once: the lines that name files outside their site directory
            outside: dict[str, tuple[int, str]] = {}
            for n, (site, k, _) in enumerate(self.pip):
                for line in self._index(n)[1].splitlines():
                    outside.update(record_files(site, k, line))
            self.made["outside"] = outside
        found: tuple[int, str] | None = self.made["outside"].get(path)
        return found

    def to_json(self) -> dict[str, object]:
        return {
            "packages": [list(p) for p in self.packages],
            "files": [[path, k, digest] for path, (k, digest) in self.files.items()],
            "roots": [[path, k] for path, k in self.roots.items()],
            "pip": [[site, k, packed] for site, k, packed in self.pip],
            "pip_index": [[list(self._index(n)[0]), self._index(n)[1]] for n in range(len(self.pip))],
        }

    @classmethod
    def from_json(cls, doc: dict[str, list[list[object]]]) -> PackageRecords:
        packages = tuple((str(m), str(n), str(v)) for m, n, v in doc["packages"])
        files = {str(p): (int(k), str(d)) for p, k, d in doc["files"]}  # type: ignore[call-overload]
        roots = {str(p): int(k) for p, k in doc["roots"]}  # type: ignore[call-overload]
        pip = [(str(site), int(k), str(packed)) for site, k, packed in doc["pip"]]  # type: ignore[call-overload]
        index = [(tuple(str(t) for t in tops), str(outside)) for tops, outside in doc["pip_index"]]  # type: ignore[attr-defined]
        indexes = [k for k, _ in files.values()] + list(roots.values()) + [k for _, k, _ in pip]
        if any(not 0 <= k < len(packages) for k in indexes) or len(index) != len(pip):
            raise ValueError("package records point at no package")
        # a RECORD's text is read at a lookup: a damaged one then names no file (the findings in
        # the files it would name keep their severity), never fewer findings
        return cls(packages, files, roots, pip, index)


class Stored(Generic[S]):
    """A section of a cached layer's document, checked and parsed by ``load`` when first read
    (scanner.cache), then kept: a rescan of one layer reads neither its package records (the
    findings' packages are cached with it: layers.provenance.packages; in an image of Python
    packages most of the document, every RECORD compressed) nor its entries (scanner.entries)."""

    __slots__ = ("_load", "_made")

    def __init__(self, load: Callable[[], S]) -> None:
        self._load: Callable[[], S] | None = load
        self._made: S | None = None

    def load(self) -> S:
        if self._made is None:
            assert self._load is not None
            self._made, self._load = self._load(), None
        return self._made

    def __eq__(self, other: object) -> bool:
        return self.load() == (other.load() if isinstance(other, Stored) else other)

    __hash__ = None  # type: ignore[assignment]


def loaded(records: PackageRecords | Stored[PackageRecords] | None) -> PackageRecords | None:
    """A layer's package records, parsed if they were stored."""
    return records.load() if isinstance(records, Stored) else records


_RECORD_TOP = compiled(r"(?m)^([^/,\n]*)[/,]")


def _top(rel: str) -> str:
    """A path's first component as :data:`_RECORD_TOP` finds it in a line that starts with it."""
    m = re.match(r"[^/,\n]*", rel)
    return m.group() if m else ""


def record_index(text: str) -> tuple[tuple[str, ...], str]:
    """What a lookup needs before reading a RECORD: its lines' first components (up to the first
    / or ,) and its lines that name a file outside its site directory (``../../bin/x``)."""
    return tuple(sorted(set(_RECORD_TOP().findall(text)))), "\n".join(_RECORD_OUTSIDE().findall(text))


def pack_record(text: str) -> str:
    """A RECORD's text as kept: compressed, to a third of its size (its lines' paths repeat), and
    written in base64, as the cache holds it: a rescan decodes only the RECORDs a lookup reads."""
    return base64.b64encode(zlib.compress(text.encode("utf-8", "surrogatepass"), 1)).decode("ascii")


def unpack_record(packed: str) -> str:
    try:
        return zlib.decompress(binascii.a2b_base64(packed, strict_mode=True)).decode("utf-8", "surrogatepass")
    except (zlib.error, binascii.Error, UnicodeDecodeError):
        raise ValueError("a package record is damaged") from None


@value(slots=True)
class Skip(Value):
    """Something that was not scanned, and why.  Never silent: it goes into the report."""

    where: str
    reason: str
    limit: bool = False  # a limit cut the scan short here: the scan is incomplete (exit 3), not just noted


class LayerEntry(NamedTuple):
    """One tar member of a layer, as needed to work out visibility and hard links.  A layer keeps
    them compactly (scanner.entries.LayerEntries) and makes one when it is read."""

    path: str
    kind: EntryKind
    size: int = 0
    link_target: str | None = None


@value(slots=True)
class FileHits(Value):
    """A file of a layer (or a member inside it) and what the detectors found in it."""

    path: str  # the file in the layer
    hits: tuple[Hit, ...]
    member: str | None = None  # inside an archive or compressed file: "a.jar!/b.properties"
    replaced: bool = False  # a later member of the same layer has the same path (tar extraction keeps the last)
    digests: tuple[str, str, str] | None = None  # the layer file's md5, sha1, sha256 (hex); None: not hashed
    maven: str | None = None  # "group:artifact:version" of the innermost jar that holds the member

    @property
    def display_path(self) -> str:
        return f"{self.path}!/{self.member}" if self.member else self.path


@value(slots=True)
class LayerScan(Value):
    """What the layer walk learnt about one layer blob, independent of any image."""

    blob_digest: str  # sha256 of the bytes as stored (compressed)
    diff_id: str  # sha256 of the uncompressed tar
    compression: str
    compressed_size: int
    size: int
    entries: Sequence[LayerEntry]  # LayerEntries from the walk, LazyEntries from the cache (scanner.entries)
    files: tuple[FileHits, ...]  # only files with hits
    files_scanned: int
    skips: tuple[Skip, ...]
    error: str | None = None
    # the package managers' records this layer writes (Stored: read from the cache, parsed when first read)
    records: PackageRecords | Stored[PackageRecords] | None = None


@value(slots=True)
class Instruction(Value):
    """A Dockerfile instruction: where it is and what it says (``text`` masked once in a report:
    ENV, ARG and LABEL values, and anything a detector matches)."""

    file: str
    line: int
    keyword: str  # RUN, COPY, ENV, ...
    text: str
    stage: str | None = None  # the stage's name, or its index
    from_stage: str | None = None  # COPY --from=STAGE

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@value(slots=True)
class Finding(Value):
    """One reported secret: where it is, what found it, a keyed fingerprint and a redacted preview."""

    rule_id: str
    detector: str
    severity: Severity
    description: str
    secret_fingerprint: str  # keyed (see keyed()): a reader without the key cannot test guesses
    preview: str
    layer_index: int | None = None
    path: str | None = None
    line: int | None = None
    field: str | None = None
    status: Status | None = None
    hidden_by_layer: int | None = None
    link_target: str | None = None
    secret_id: str | None = None
    encoding: str | None = None
    confidence: str = "high"
    suppressed_by: str | None = None
    also_matched: tuple[str, ...] = ()  # other rules that matched the same value at the same place
    proven: bool = False
    downgraded_from: Severity | None = None
    downgrade_reason: str | None = None
    package: Package | None = None  # the package that installed the file, if any
    places: tuple[str, ...] = ()  # other files holding the same value, compiled from this one (.pyc)
    instruction: Instruction | None = None  # the Dockerfile instruction that put it there
    base_image: bool = False  # in a layer (or config) no instruction of the given Dockerfile made

    @classmethod
    def from_hit(
        cls, hit: Hit, key: bytes, where: Mapping[str, object], changes: Mapping[str, object] | None = None
    ) -> Finding:
        """The finding of ``hit`` at ``where`` (the layer and path, or the field, and what made
        it), with ``changes`` to the hit's own fields (a package's word: findings.policy).  The
        fields as one dict, made once: a rescan makes hundreds of findings."""
        fields: dict[str, object] = {
            "rule_id": hit.rule_id,
            "detector": hit.detector,
            "severity": hit.severity,
            "description": hit.description,
            "secret_fingerprint": keyed(key, hit.secret_sha256),
            "preview": hit.preview,
            "line": hit.line,
            "secret_id": hit.secret_id,
            "encoding": hit.encoding,
            "confidence": hit.confidence,
            "also_matched": hit.also,
            "proven": hit.proven,
            "downgraded_from": hit.downgraded_from,
            "downgrade_reason": hit.downgrade_reason,
            **where,
        }
        if changes:
            fields.update(changes)
        return cls(**fields)  # type: ignore[arg-type]

    def notes(self) -> list[str]:
        """What a reader needs besides the description: who installed the file, which other
        rules matched the value, where else it is.  Every report format shows them."""
        out = []
        if self.package is not None:
            out.append(f"owned by {self.package.describe()}")
        if self.also_matched:
            out.append(f"also matched: {', '.join(self.also_matched)}")
        if self.places:
            out.append(f"also in: {', '.join(self.places)}")
        return out

    @property
    def fingerprint(self) -> str:
        """Stable across rebuilds of the same content (and keyed as the secret's fingerprint is): no
        layer digests, no timestamps."""
        place = self.path if self.path is not None else (self.field or "")
        raw = f"{self.rule_id}\0{place}\0{self.secret_fingerprint}"
        return small_sha256(raw.encode()).hexdigest()[:32]


@value(slots=True)
class LayerReport(Value):
    """One layer of an image in a report: what was read of it and its findings."""

    index: int
    diff_id: str | None
    digest: str | None
    media_type: str | None
    compression: str | None
    created_by: str | None
    size: int | None
    compressed_size: int | None
    files_scanned: int
    skips: tuple[Skip, ...]
    findings: tuple[Finding, ...]
    scanned: bool = True  # False: not read at all, or read only in part (see error)
    error: str | None = None
    suppressed: tuple[Finding, ...] = ()
    instruction: Instruction | None = None  # the Dockerfile instruction that made the layer
    base_image: bool = False  # a Dockerfile was given and none of its instructions made this layer


@value(slots=True)
class ImageReport(Value):
    """One image in a report: its layers, the findings in its metadata, its warnings and errors."""

    name: str
    repo_tags: tuple[str, ...]
    config_digest: str | None
    manifest_digest: str | None
    platform: str | None
    layers: tuple[LayerReport, ...]
    metadata_findings: tuple[Finding, ...]
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    suppressed_metadata: tuple[Finding, ...] = ()
    dockerfile: str | None = None  # the Dockerfile its history was mapped to (path, or from provenance)

    @property
    def findings(self) -> tuple[Finding, ...]:
        out: list[Finding] = [f for layer in self.layers for f in layer.findings]
        return tuple(out) + self.metadata_findings

    @property
    def suppressed(self) -> tuple[Finding, ...]:
        return tuple(f for layer in self.layers for f in layer.suppressed) + self.suppressed_metadata


@value(slots=True)
class ScanReport(Value):
    """The result of one scan: every image found at the source."""

    source_kind: str
    source_ref: str
    archive_format: str
    images: tuple[ImageReport, ...]
    metadata_findings: tuple[Finding, ...] = ()  # archive-level documents (index.json, ...)
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    duration_s: float = 0.0
    suppressed_metadata: tuple[Finding, ...] = ()
    cached_layers: int = 0  # layers whose result came from the layer cache (digest verified)
    started_at: float = 0.0  # wall clock (epoch seconds) when the scan began

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(f for image in self.images for f in image.findings) + self.metadata_findings

    @property
    def suppressed(self) -> tuple[Finding, ...]:
        return tuple(f for image in self.images for f in image.suppressed) + self.suppressed_metadata

    @property
    def problems(self) -> tuple[str, ...]:
        """Everything that kept the scan from reading the whole image.  Empty means complete."""
        out = list(self.errors)
        for image in self.images:
            out.extend(f"{image.name}: {e}" for e in image.errors)
            for layer in image.layers:
                if not layer.scanned:
                    reason = layer.error or "; ".join(s.reason for s in layer.skips) or "not scanned"
                    out.append(f"{image.name}: layer {layer.index}: {reason}")
                else:
                    out.extend(
                        f"{image.name}: layer {layer.index}: {s.where}: {s.reason}" for s in layer.skips if s.limit
                    )
        return tuple(out)

    @property
    def complete(self) -> bool:
        """False when any part of the image could not be read: never a silent clean result."""
        return not self.problems


def _builtin_sha256() -> Callable[[bytes], hashlib._Hash]:
    """CPython's own SHA-256 (``_sha2``; ``_sha256`` before 3.12), which loads no library:
    hashlib's is OpenSSL's, whose loading is 2.3 ms of a 100 ms rescan from the cache, where
    nothing hashes more than a few kilobytes.  OpenSSL's is six times as fast on a layer (1.3 GB/s
    against 0.2 here): what hashes a layer or a file imports hashlib.  hashlib's where the
    interpreter was built without its own."""
    for name in ("_sha2", "_sha256"):
        try:
            made: Callable[[bytes], hashlib._Hash] = importlib.import_module(name).sha256
            return made
        except (ImportError, AttributeError):
            continue
    from hashlib import sha256

    return sha256


small_sha256 = _builtin_sha256()  # for a few kilobytes at a time: see above


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of a small input (a config, a manifest, a secret): :data:`small_sha256`'s."""
    return small_sha256(data).hexdigest()


@functools.lru_cache(maxsize=4096)
def keyed(key: bytes, secret_sha256: str) -> str:
    """A secret's fingerprint in reports: HMAC-SHA256 under the user's key of the value's SHA-256.
    Stable for one key (baselines, correlation across runs); without the key, a reader of a report
    cannot test guesses at a short password offline.  ``leakscan fingerprint`` computes it from a
    value the user has, with the same key.  Kept for the value's next finding: an image repeats
    values (an example key in every copy of a file; 410 findings of 97 values in the 300 MB
    benchmark image, 1.5 microseconds each)."""
    inner, outer = _hmac_pads(key)
    h = inner.copy()
    h.update(b"leakscan-secret\0" + secret_sha256.encode())
    o = outer.copy()
    o.update(h.digest())
    return o.hexdigest()[:32]


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@functools.lru_cache(maxsize=4)
def _hmac_pads(key: bytes) -> tuple[hashlib._Hash, hashlib._Hash]:
    """HMAC-SHA256's inner and outer hashes of ``key`` (RFC 2104, as the hmac module's own
    Python code makes them), each copied per message; with :data:`small_sha256`, not hmac's
    OpenSSL (see there).  tests/test_models.py holds it to ``hmac.digest``."""
    if len(key) > 64:
        key = small_sha256(key).digest()
    key = key.ljust(64, b"\0")
    return small_sha256(key.translate(_IPAD)), small_sha256(key.translate(_OPAD))


def redact(secret: bytes) -> str:
    """A preview that never reveals more than four characters of the secret.

    Short values reveal less: under 12 characters only the first one, under 8 none.
    """
    text = secret.decode("utf-8", "replace")
    n = len(text)
    shown = 0 if n < 8 else 1 if n < 12 else 2 if n < 20 else 4
    head = "".join(c if c.isprintable() and c.isascii() else "?" for c in text[:shown])
    return f"{head}{'*' * 8} ({n} chars)"
