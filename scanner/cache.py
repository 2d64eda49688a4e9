"""Layer results cached on disk, by content digest, for the exact scan configuration.

A cached result is reused only under a namespace that hashes everything a result depends on:
leakscan's version, every rule (id, regex, flags, severity, ...), the detector switches and
limits, and the SHA-256 of each known secret (hashes only; a value never reaches the disk).  A
change of rules or secrets is therefore a miss, never a stale hit.  A layer is looked up by the
digest its archive path claims, and the member is still hashed to prove that claim before the
cached result stands; a member whose bytes do not match its name is an error, not a hit.  A
member whose name claims no digest (docker's legacy ``<id>/layer.tar``) is hashed first when it
can be read again (a file on disk).

What a scan proved (member path -> digest of its bytes) is kept apart, under the source's
identity: a file's path and stat, ctime included, which every write changes and no call can set
back.  A rescan of the same unchanged file takes its cached layers without reading them, as git
trusts its index; a file written in the last seconds gets no proofs (a write in the same clock
tick could go unseen).  Anyone who could forge a file's ctime could as well write this cache.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import importlib.util
import json
import mmap
import os
import re
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

from . import __version__
from .entries import LayerEntries, LazyEntries, compact, hard_links
from .errors import CacheDamaged
from .models import (
    EntryKind,
    FileHits,
    Hit,
    LayerEntry,
    LayerScan,
    PackageRecords,
    Severity,
    Skip,
    Stored,
    compiled,
    loaded,
    small_sha256,
)

FORMAT = 10  # 2: Skip.limit; 3: FileHits.replaced; 4: entries as lists; 5: entries after the results;
# 6: package records, file digests and Maven artifacts, hits' other rules and downgrades; 7: entries
# as one string of paths and arrays (scanner.entries.LayerEntries.to_json); 8: the index of each
# pip RECORD (models.record_index) kept with it; 9: the package records in a section after the
# results, and each section's CRC-32 checked when it is read; 10: files and hits as lists
T = TypeVar("T")
Proofs = dict[str, tuple[str, int]]  # archive path -> (the digest its bytes hash to, its size)
_DIGEST = compiled(r"(?:^|/)(?:blobs/sha256/([0-9a-f]{64})|([0-9a-f]{64})\.tar)\Z")
# what reading a damaged cached document can raise (JSON nested too deep: RecursionError); a miss
_DAMAGED = (ValueError, KeyError, TypeError, AttributeError, RecursionError)


def default_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "leakscan" / "layers"


def write_atomically(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Replace ``path`` whole or not at all (a reader never sees half a file) with ``data``, or
    with its pieces one after the other.  Best effort: a cache that cannot be written is only a
    slower run next time."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        import tempfile  # only when writing: a rescan reads

        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            for piece in (data,) if isinstance(data, bytes) else data:
                fh.write(piece)
        os.replace(tmp, path)
    except OSError:
        pass


def touch(path: Path) -> None:
    """Mark a cache file as used now (its mtime, as a write does): scanner.prune removes the files
    unused longest.  Best effort (a read-only cache)."""
    with contextlib.suppress(OSError):
        os.utime(path)


def claimed_digest(path: str) -> str | None:
    """The content digest an archive path names: blobs/sha256/<hex> (OCI), <hex>.tar (podman)."""
    m = _DIGEST().search(path)
    return f"sha256:{m.group(1) or m.group(2)}" if m else None


@functools.cache
def code_fingerprint() -> str:
    """A hash of leakscan's own code and data (the rule files, the vendor names) and of the
    detect-secrets plugins it runs: a change to a detector (or to anything else that shapes a
    result), or another detect-secrets, is a cache miss, even without a version bump.  The plugins
    are found without importing them (slow)."""
    roots: list[tuple[Path, tuple[str, ...]]] = [(Path(__file__).resolve().parent, CODE_FILES)]
    spec = importlib.util.find_spec("detect_secrets")
    if spec is not None and spec.origin is not None:
        roots.append((Path(spec.origin).parent / "plugins", ("*.py",)))
    return tree_digest(roots, memo=default_dir().parent / "code")


CODE_FILES = ("*.py", "*.toml", "*.txt")  # what leakscan's results depend on in its own package
RECENT_NS = 3_000_000_000  # a tree with a file changed this recently is hashed and its digest not kept
_HEX = frozenset("0123456789abcdef")


def _matcher(patterns: tuple[str, ...]) -> Callable[[str], object]:
    """fnmatchcase's test of a name against any of ``patterns``, at once: for ``*.py`` and the
    like, a test of the name's end (the same answer, without compiling fnmatch's regex every run)."""
    if all(p.startswith("*") and not any(c in p[1:] for c in "*?[") for p in patterns):
        ends = tuple(p[1:] for p in patterns)
        return lambda name: name.endswith(ends)
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)).match


def tree_digest(roots: list[tuple[Path, tuple[str, ...]]], memo: Path | None = None) -> str:
    """A hash of the names and bytes of the files under each root that match its patterns (found
    with os.walk, not Path.rglob: a third of the time, every run).

    With ``memo`` (a folder), the digest is kept under a hash of every file's name and stat, its
    ctime included, which every write changes and no call can set back (as for the proofs, see
    above): a tree whose files are all as they were is not read again (a megabyte of rule files,
    a few milliseconds of every run).  A tree with a file changed in the last seconds is read, and
    its digest not kept (a write in the same clock tick as the stat could go unseen)."""
    files = []
    for root, patterns in roots:
        found = []
        matches = _matcher(patterns)
        for folder, folders, names in os.walk(root):
            folders[:] = [f for f in folders if f != "__pycache__"]  # compiled files: none of the patterns'
            rel = os.path.relpath(folder, root)
            parts = () if rel == "." else tuple(rel.split(os.sep))
            found += [(*parts, n) for n in names if matches(n)]
        files += [(os.path.join(root, *parts), "/".join(parts)) for parts in sorted(found)]
    kept = None
    if memo is not None:
        try:
            stats = [os.stat(path) for path, _ in files]
        except OSError:
            stats = []
        settled = time.time_ns() - RECENT_NS
        if len(stats) == len(files) and all(st.st_ctime_ns <= settled for st in stats):
            stamp = [
                [path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]
                for (path, _), st in zip(files, stats, strict=True)
            ]
            kept = memo / small_sha256(json.dumps(stamp).encode("utf-8", "surrogateescape")).hexdigest()
            try:
                digest = kept.read_bytes().decode("ascii")  # no text file: its codec module is an import
                if len(digest) == 64 and set(digest) <= _HEX:
                    touch(kept)
                    return digest
            except (OSError, UnicodeDecodeError):
                pass
    import hashlib  # OpenSSL's, for the megabyte of files (a rescan finds the digest kept: above)

    h = hashlib.sha256()
    for path, name in files:
        with open(path, "rb") as fh:
            h.update(name.encode() + b"\0" + fh.read() + b"\0")
    if kept is not None:
        write_atomically(kept, h.hexdigest().encode())
    return h.hexdigest()


def namespace(material: dict[str, Any]) -> str:
    doc = json.dumps(
        {"leakscan": __version__, "code": code_fingerprint(), "format": FORMAT, **material}, sort_keys=True, default=str
    )
    return small_sha256(doc.encode()).hexdigest()[:32]


def _crc32(text: str) -> int:
    """The CRC-32 of ``text``'s UTF-8, a megabyte at a time (never a copy of the whole text)."""
    crc, step = 0, 1 << 20
    for at in range(0, len(text), step):
        crc = zlib.crc32(text[at : at + step].encode("utf-8", "surrogatepass"), crc)
    return crc


def _encode(scan: LayerScan) -> tuple[str, ...]:
    """One line of JSON for the results, then the package records' JSON text and the entries'
    own JSON text (the document's sections), each after a newline.

    Entries go as one string of every path and arrays of lengths, kinds and sizes (a list per
    entry, and a dict per entry before that, took several times the memory and time), and after
    the rest, not in it: a layer has tens of thousands, and parsing them was a third of a rescan's
    work after start-up.  The package records (every pip RECORD, compressed) go in a section of
    their own for the same reason: a rescan finds its findings' packages cached (owners:), and
    in an image of Python packages the records were 80 % of the first line.  A rescan parses the
    first line only; a section is checked and parsed when something reads it (for one layer:
    never; its hard links are in the first line).  The first line holds each section's length,
    checked at load (a cut document), and CRC-32, checked when the section is read
    (``json.dumps`` writes no raw newline, and ASCII only: a length in characters is one in bytes).
    """
    doc = {
        f.name: getattr(scan, f.name) for f in fields(scan) if f.name not in ("entries", "files", "skips", "records")
    }
    entries = compact(scan.entries).to_json()
    package_records = loaded(scan.records)
    records = json.dumps(package_records.to_json()) if package_records is not None else ""
    doc["entries"] = {
        "count": len(scan.entries),
        "length": len(entries),
        "crc32": _crc32(entries),
        "hard_links": [[e.path, e.size, e.link_target] for e in hard_links(scan.entries)],
    }
    doc["records"] = {"length": len(records), "crc32": _crc32(records)} if package_records is not None else None
    doc["files"] = [
        [f.path, f.member, f.replaced, f.digests, f.maven, [hit_row(h) for h in f.hits]] for f in scan.files
    ]
    doc["skips"] = [asdict(s) for s in scan.skips]
    return json.dumps(doc, default=str), "\n", records, "\n", entries


_SEVERITY = {s.value: s for s in Severity}  # a lookup, not Severity(value) (a rescan makes hundreds of hits)
_HIT_FIELDS = tuple(f.name for f in fields(Hit))  # a hit in the cache's documents: its fields' values in this order


def hit_row(hit: Hit) -> list[Any]:
    """A hit as the cache's documents hold it (a layer's, the metadata's): its fields' values in
    ``_HIT_FIELDS``' order (a list parses and makes a hit in half the time of a dict of its names:
    a rescan makes hundreds); json writes the severities as their values."""
    return [getattr(hit, n) for n in _HIT_FIELDS]


def hit_from_row(row: list[Any]) -> Hit:
    """What :func:`hit_row` wrote, the list parsed for it; ValueError, KeyError or TypeError (a
    damaged document's, a miss) for anything else."""
    if len(row) != len(_HIT_FIELDS):
        raise ValueError("hit")
    row[2], row[10] = _SEVERITY[row[2]], tuple(row[10])
    if row[12] is not None:
        row[12] = _SEVERITY[row[12]]
    return Hit(*row)


def _section(part: str | memoryview, crc: int, key: str) -> str | bytes:
    """A section of a layer's document as stored, once its CRC-32 is the one written with it;
    CacheDamaged otherwise (see :class:`scanner.errors.CacheDamaged`)."""
    if crc != (_crc32(part) if isinstance(part, str) else zlib.crc32(part)):
        raise CacheDamaged(key)
    return part if isinstance(part, str) else part.tobytes()


def _loader(part: str | memoryview, crc: int, key: str, parse: Callable[[str | bytes], T]) -> Callable[[], T]:
    """What makes a section's content when it is first read: its CRC-32 checked, then ``parse``;
    CacheDamaged for either failing."""

    def load() -> T:
        text = _section(part, crc, key)
        try:
            return parse(text)
        except _DAMAGED:
            raise CacheDamaged(key) from None

    return load


def _entries(count: int) -> Callable[[str | bytes], LayerEntries]:
    def parse(text: str | bytes) -> LayerEntries:
        made = LayerEntries.from_json(text)
        if len(made) != count:
            raise ValueError("a cached layer's entries are not as many as its document says")
        return made

    return parse


def _records(text: str | bytes) -> PackageRecords:
    return PackageRecords.from_json(json.loads(text))


def _decode(data: str | bytes | mmap.mmap, key: str = "") -> LayerScan:
    """A layer's document, as text or as the bytes stored (UTF-8, which json.loads reads as they
    are: ``_encode`` writes ASCII), whose sections (package records, entries) are left as they
    are, neither checked, decoded nor copied until read (a rescan of one layer never reads them).
    ``key``: the document's, named by the error a damaged section raises when read."""
    head: str | bytes
    body: str | memoryview
    if isinstance(data, str):
        head, _, body = data.partition("\n")
    else:
        end = data.find(b"\n")
        head, body = (data[:], memoryview(b"")) if end < 0 else (data[:end], memoryview(data)[end + 1 :])
    doc = json.loads(head)
    about, kept = doc["entries"], doc["records"]
    cut = kept["length"] if kept is not None else 0
    if (
        not isinstance(cut, int)
        or len(body) != cut + 1 + about["length"]
        or body[cut : cut + 1] not in ("\n", b"\n")
        or not isinstance(about["count"], int)
        or not all(isinstance(e, list) and len(e) == 3 for e in about["hard_links"])
    ):
        raise ValueError("sections")
    return LayerScan(
        blob_digest=doc["blob_digest"],
        diff_id=doc["diff_id"],
        compression=doc["compression"],
        compressed_size=doc["compressed_size"],
        size=doc["size"],
        entries=LazyEntries(
            _loader(body[cut + 1 :], about["crc32"], key, _entries(about["count"])),
            about["count"],
            [LayerEntry(p, EntryKind.HARDLINK, n, t) for p, n, t in about["hard_links"]],
        ),
        files=tuple(
            FileHits(
                path,
                tuple(hit_from_row(h) for h in hits),
                member,
                replaced,
                tuple(sums) if sums is not None else None,
                maven,
            )
            for path, member, replaced, sums, maven, hits in doc["files"]
        ),
        files_scanned=doc["files_scanned"],
        skips=tuple(Skip(**s) for s in doc["skips"]),
        error=doc["error"],
        records=Stored(_loader(body[:cut], kept["crc32"], key, _records)) if kept is not None else None,
    )


def proof_key(identity: str) -> str:
    """Where the proven digests of an image file's layers are kept (LayerCache.proofs)."""
    return "proofs/" + _identity_hash(identity)


def shell_key(identity: str) -> str:
    """Where what a read of an image file held besides its layers is kept (collect.file_shell)."""
    return "shell-" + _identity_hash(identity)


def _identity_hash(identity: str) -> str:
    return "sha256:" + small_sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()


class CacheBackend(ABC):
    """Where cached layer results live: text documents under short keys."""

    @abstractmethod
    def read(self, key: str) -> str | None: ...

    @abstractmethod
    def write(self, key: str, text: str) -> None:
        """Best effort: a cache that cannot be written is only a slower scan."""

    def read_stored(self, key: str) -> str | bytes | mmap.mmap | None:
        """``read(key)``, or the UTF-8 bytes of that text as stored (or mapped): a layer's document
        is decoded in parts (its entries, megabytes, only if they are read)."""
        return self.read(key)

    def write_parts(self, key: str, parts: tuple[str, ...]) -> None:
        """``write(key, "".join(parts))``; a backend may write the parts one by one instead of
        holding a copy of the whole (a layer's entries are tens of megabytes)."""
        self.write(key, "".join(parts))


class DirBackend(CacheBackend):
    """One JSON file per key, replaced atomically: the default, local to a machine."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _file(self, key: str) -> Path:
        space, _, digest = key.partition("/")  # keys are made here: a hex namespace and a sha256 digest
        return self.root / space / f"{digest.replace(':', '-')}.json"

    def read(self, key: str) -> str | None:
        path = self._file(key)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError:
            return None
        touch(path)
        return text

    def read_stored(self, key: str) -> bytes | mmap.mmap | None:
        """The file mapped, not read: a rescan reads the first line (the results) and checks the
        CRC of the rest in the page cache, where reading the whole into fresh memory cost 2 ms of
        a 100 ms rescan.  The file is never changed in place (replaced whole, or removed), so the
        mapping holds what was read even when another run replaces it meanwhile."""
        path = self._file(key)
        try:
            with open(path, "rb") as fh:
                data: bytes | mmap.mmap = (
                    mmap.mmap(fh.fileno(), 0, prot=mmap.PROT_READ) if os.fstat(fh.fileno()).st_size else b""
                )
        except (OSError, ValueError):
            return None
        touch(path)
        return data

    def write(self, key: str, text: str) -> None:
        write_atomically(self._file(key), text.encode("utf-8"))

    def write_parts(self, key: str, parts: tuple[str, ...]) -> None:
        step = 1 << 20  # encoded a megabyte at a time: never a copy of a whole part
        pieces = (part[at : at + step].encode("utf-8") for part in parts for at in range(0, len(part), step))
        write_atomically(self._file(key), pieces)


class LayerCache:
    def __init__(self, backend: CacheBackend, space: str) -> None:
        self.backend = backend
        self.space = space
        self.hits = 0
        self.misses = 0
        self._loaded: list[tuple[str, LayerScan]] = []  # each document's sections are checked when read

    def get(self, digest: str, count: bool = True) -> LayerScan | None:
        """The cached result for a layer digest; ``count``: as a hit or a miss of this scan."""
        key = f"{self.space}/{digest}"
        try:
            stored = self.backend.read_stored(key)
            scan = _decode(stored, key) if stored is not None else None
        except _DAMAGED:
            scan = None
        if scan is not None:
            self._loaded.append((key, scan))
        if count:
            self.hits += scan is not None
            self.misses += scan is None
        return scan

    def forget(self, damaged: CacheDamaged) -> None:
        """Make the document a damaged section was read from a miss, and every other document
        this cache loaded whose sections are damaged too (each read now: a scan that cannot be
        made again, from standard input, fails once, not once per damaged document).  A miss is an
        empty document: the next scan that walks the layer writes it again."""
        keys = {damaged.key}
        for key, scan in self._loaded:
            try:
                compact(scan.entries)
                loaded(scan.records)
            except CacheDamaged:
                keys.add(key)
        for key in sorted(keys):
            self.backend.write(key, "")

    def get_doc(self, name: str) -> Any:
        """Another cached document under this namespace (e.g. the metadata's results), or None."""
        try:
            text = self.backend.read(f"{self.space}/{name}")
            return json.loads(text) if text is not None else None
        except _DAMAGED:
            return None

    def put_doc(self, name: str, doc: Any) -> None:
        self.backend.write(f"{self.space}/{name}", json.dumps(doc))

    def proofs(self, identity: str) -> Proofs:
        """The digests an earlier scan proved for the members of a source with this identity (a
        file's stat: see ImageSource.identity).  Kept apart from the namespace: they are facts about
        bytes, whatever the rules."""
        try:
            doc = json.loads(self.backend.read(proof_key(identity)) or "{}")
            return {
                str(path): (str(digest), int(size))
                for path, (digest, size) in doc.items()
                if isinstance(digest, str) and digest.startswith("sha256:") and isinstance(size, int)
            }
        except _DAMAGED:
            return {}

    def put_proofs(self, identity: str, proofs: Proofs) -> None:
        self.backend.write(proof_key(identity), json.dumps(proofs, sort_keys=True))

    def put(self, scan: LayerScan) -> None:
        if scan.error is not None:
            return  # only complete results are worth keeping
        parts = _encode(scan)
        for digest in {scan.blob_digest, scan.diff_id}:
            self.backend.write_parts(f"{self.space}/{digest}", parts)
