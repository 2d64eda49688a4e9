"""Image archive members -> records: each member classified once, as it streams by.

Layer blobs (recognised by their magic bytes, never by name) are walked at once, or taken from
the layer cache once their bytes (or the source) prove their digest; everything else that is small
enough is kept for :func:`scanner.layers.archive.resolve`, which reads the manifests once the stream has
ended.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from dataclasses import field, replace
from typing import TYPE_CHECKING, Any, Protocol

from ..cache import LayerCache, Proofs, claimed_digest
from ..errors import FormatError
from ..models import LayerScan, Readable, Record, record, sha256_hex
from ..sources.interface import Member

# The walk's own modules (scanner.layers.streams and with it tarfile; the fanout) are imported
# when a member is read: a rescan of an unchanged image file from the cache reads none
# (replay_shell), and their imports were 4 ms of it.
if TYPE_CHECKING:
    from .fanout import Fanout, Plan, Task

JSON_LIMIT = 64 << 20
MAX_LINK_HOPS = 16


@record
class BlobRecord(Record):
    """What an archive member turned out to be: a layer's result, a document's bytes, a link or a note."""

    path: str
    size: int
    layer: LayerScan | None = None
    data: bytes | None = None
    link: str | None = None
    note: str | None = None
    used: bool = False
    deferred: bool = False  # a layer left unread: its result is the cache's, once the manifest names it


@record
class Archive(Record):
    """Every member of an archive, classified, with the errors met reading it."""

    records: dict[str, BlobRecord] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    proven: Proofs = field(default_factory=dict)  # this scan's proofs
    attached: int = 0  # layers given a cached result by the diff_ids the source vouched for
    exported: bool = True  # False: rebuilt from an earlier export's documents (archive_from_shell)

    def lookup(self, path: str) -> BlobRecord | None:
        for _ in range(MAX_LINK_HOPS):
            rec = self.records.get(path)
            if rec is None or rec.link is None:
                return rec
            rec.used = True
            path = rec.link
        return None

    def json(self, path: str) -> Any:
        rec = self.lookup(path)
        if rec is None or rec.data is None:
            return None
        rec.used = True
        return parse_json(rec.data, path)


def parse_json(data: bytes, where: str) -> Any:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise FormatError(f"{where}: malformed JSON ({type(exc).__name__})") from None
    return doc


_Proven = tuple[LayerScan, str | None]


class Walker(Protocol):
    def walk(self, blob: Readable, head: bytes = b"") -> LayerScan: ...


def _digest(stream: Readable, head: bytes) -> str:
    """The digest of ``head`` and the rest of ``stream``, read to its end."""
    from .streams import HashingReader

    reader = HashingReader(stream, head)
    reader.drain()
    return reader.digest


def _plan(path: str, cache: LayerCache | None, tried: str | None, rereadable: bool) -> Plan:
    """A layer member's result, from the cache once its bytes prove the digest, else walked; with
    the digest its bytes were proven to have (None when they were not read whole).  ``tried``: a
    digest already known for these bytes and missed in the cache.  A plan (see
    :mod:`scanner.layers.fanout`): it yields the steps on the bytes it needs and is sent their
    results, here (:func:`_layer`) or in another process."""
    if cache is not None:
        claimed = claimed_digest(path)
        if claimed is None and rereadable and tried is None:
            # a name without a digest (docker's legacy <id>/layer.tar), in a file on disk: hash the
            # bytes, look them up, and walk them from the start again after a miss
            digest = yield "hash"
            if (scan := cache.get(digest)) is not None:
                return scan, digest
        elif claimed is not None and claimed != tried and (scan := cache.get(claimed)) is not None:
            # a member whose bytes lie about the digest its name claims is never a cache hit
            if (yield "hash") != claimed:
                reason = f"content does not match the digest its name claims ({claimed}); not scanned"
                return replace(scan, files=(), entries=(), files_scanned=0, error=reason), None
            return scan, claimed
    scan = yield "walk"
    if cache is not None:
        cache.put(scan)
    return scan, (scan.blob_digest if scan.error is None else None)


def _layer(member: Member, head: bytes, walker: Walker, cache: LayerCache | None, tried: str | None) -> _Proven:
    """The plan of a layer member, run here on its stream (read again from the start if need be)."""
    plan = _plan(member.path, cache, tried, member.reopen is not None)
    stream, fresh = member.stream, True
    try:
        step = next(plan)
        while True:
            if not fresh and member.reopen is not None:
                stream, head = member.reopen(), b""
            fresh = False
            step = plan.send(_digest(stream, head) if step == "hash" else walker.walk(stream, head))  # type: ignore[arg-type]
    except StopIteration as done:
        result: _Proven = done.value
        return result


def collect(
    members: Iterable[Member],
    walker: Walker,
    json_limit: int = JSON_LIMIT,
    cache: LayerCache | None = None,
    proofs: Proofs | None = None,
    defer: bool = False,
    fanout: Callable[[], Fanout | None] = lambda: None,
) -> Archive:
    """Every member, classified; ``proofs`` are digests proven by an earlier scan of the same
    unchanged bytes (see scanner.cache).  ``Archive.proven`` holds the proofs of this scan.  With
    ``defer``, a layer whose name claims no digest is left unread (every layer of the image is in
    the cache, by the diff_ids the source vouches for): :func:`attach_vouched` fills it in.  With
    a ``fanout`` (asked for when a layer must be walked: none for a rescan from the cache), the
    layers a source can read again on their own are walked after the other members, several at
    once (see :mod:`scanner.layers.fanout`); the archive is the same."""
    from . import streams  # streams.READ_ERRORS, named where one is caught (see scanner.layers.streams)
    from .streams import looks_like_tar, read_head, safe_reason, sniff

    archive = Archive()
    later: dict[str, Task] = {}  # for the fanout, by member path, in the archive's order
    try:
        for member in members:
            if member.link is not None or member.stream is not None:
                later.pop(member.path, None)  # replaced by a later member of the same name
            if member.link is not None:
                archive.records[member.path] = BlobRecord(member.path, 0, link=member.link)
                continue
            if member.stream is None:
                continue
            known = member.digest
            if known is None and proofs and (proof := proofs.get(member.path)) and proof[1] == member.size:
                known = proof[0]
            if known is not None and cache is not None and (scan := cache.get(known)) is not None:
                # seen before, by a digest these bytes are known to have: not even read
                archive.records[member.path] = BlobRecord(member.path, member.size, layer=scan)
                archive.proven[member.path] = (known, member.size)
                continue
            head = read_head(member.stream)
            if sniff(head) != "none" or looks_like_tar(head):
                if defer and claimed_digest(member.path) is None:
                    archive.records[member.path] = BlobRecord(member.path, member.size, deferred=True)
                    continue
                if member.detached is not None and fanout() is not None:
                    from .fanout import Task

                    archive.records[member.path] = BlobRecord(member.path, member.size)  # its place
                    plan = _plan(member.path, cache, known, member.reopen is not None)
                    later[member.path] = Task(plan, member.detached, member.size)
                    continue
                _record(archive, member.path, member.size, _layer(member, head, walker, cache, known))
            elif member.size <= json_limit:
                archive.records[member.path] = BlobRecord(member.path, member.size, data=head + member.stream.read())
            else:
                archive.records[member.path] = BlobRecord(
                    member.path, member.size, note=f"neither a layer nor a document under {json_limit} bytes; not read"
                )
    except streams.READ_ERRORS as exc:
        archive.errors.append(f"the archive stream could not be read to its end: {safe_reason(exc)}")
    if later:
        _walk_later(archive, later, walker, fanout())
    return archive


def _record(archive: Archive, path: str, size: int, proven: _Proven) -> None:
    scan, digest = proven
    archive.records[path] = BlobRecord(path, size, layer=scan)
    if digest is not None:
        archive.proven[path] = (digest, size)


def _walk_later(archive: Archive, later: dict[str, Task], walker: Walker, fanout: Fanout | None) -> None:
    """The layers left for the end, walked and put in their places: several at once, or here when
    that would not be faster (one layer, or one that holds most of the bytes: the file workers
    scan it, see :func:`scanner.layers.fanout.walkers`).  A layer whose bytes
    could not be read to their end ends the archive there, as it ends the serial walk."""
    from . import streams
    from .fanout import walkers
    from .streams import safe_reason

    if fanout is not None and (at_once := walkers([task.size for task in later.values()], fanout.jobs)):
        outcomes = fanout.run(list(later.values()), at_once)
    else:
        outcomes = []
        for task in later.values():
            try:
                outcomes.append(_run_here(task, walker))
            except streams.READ_ERRORS as exc:
                outcomes.append(exc)
                break
    for (path, task), outcome in zip(later.items(), outcomes, strict=False):
        if isinstance(outcome, BaseException):
            paths = list(archive.records)
            for dropped in paths[paths.index(path) :]:  # the serial walk ends at this member
                del archive.records[dropped]
                archive.proven.pop(dropped, None)
            archive.errors[:] = [f"the archive stream could not be read to its end: {safe_reason(outcome)}"]
            return
        _record(archive, path, task.size, outcome)


def _run_here(task: Task, walker: Walker) -> _Proven:
    """A plan's steps run here, each on the layer's bytes read again from the start."""
    value: Any = None
    try:
        while True:
            step = task.plan.send(value)
            stream = task.open()
            try:
                value = _digest(stream, b"") if step == "hash" else walker.walk(stream)
            finally:
                stream.close()  # type: ignore[attr-defined]
    except StopIteration as done:
        result: _Proven = done.value
        return result


def attach_vouched(archive: Archive, config_digest: str, scans: dict[str, LayerScan]) -> int:
    """Give each deferred layer the cached result for the diff_id the image's config lists at its
    place in manifest.json, if that config is the one the source vouched for (its digest is the
    inspected image id); any other deferred layer is reported as not scanned.  Returns how many
    layers were filled in."""
    attached = 0
    try:
        manifest = archive.json("manifest.json")
    except FormatError:
        manifest = None
    for item in manifest if isinstance(manifest, list) else ():
        rec = archive.lookup(item.get("Config", "")) if isinstance(item, dict) else None
        if rec is None or rec.data is None or f"sha256:{sha256_hex(rec.data)}" != config_digest:
            continue
        try:
            diff_ids = parse_json(rec.data, item["Config"])["rootfs"]["diff_ids"]
        except (FormatError, KeyError, TypeError):
            continue
        layers = item.get("Layers")
        for path, diff_id in zip(layers if isinstance(layers, list) else (), diff_ids, strict=False):
            layer = archive.lookup(path) if isinstance(path, str) else None
            if layer is not None and layer.deferred and diff_id in scans:
                layer.layer, layer.deferred = scans[diff_id], False
                attached += 1
    for rec in archive.records.values():
        if rec.deferred:
            rec.note = "left unread for a cached result, but the export is not the image the engine vouched for"
    return attached


SHELL_LIMIT = 4 << 20  # the documents of an export kept for a rescan without one (configs are small)


def export_shell(archive: Archive, config_digest: str) -> dict[str, Any] | None:
    """What an engine's export holds besides its layers (manifest.json, the config, repositories),
    and its layers' and links' names: enough to answer a rescan of the same image from the layer
    cache without exporting it again.  None unless the export is the image the engine vouched for
    (its config hashes to the inspected image id) and its documents are small."""
    members: list[list[Any]] = []
    total, vouched = 0, False
    for rec in archive.records.values():
        if rec.link is not None:
            members.append([rec.path, "link", rec.link])
        elif rec.layer is not None or rec.deferred:
            members.append([rec.path, "layer", rec.size])
        elif rec.data is not None:
            total += len(rec.data)
            vouched = vouched or f"sha256:{sha256_hex(rec.data)}" == config_digest
            members.append([rec.path, "doc", base64.b64encode(rec.data).decode()])
    if not vouched or total > SHELL_LIMIT or archive.errors:
        return None
    return {"config": config_digest, "members": members}


def archive_from_shell(doc: Any, config_digest: str, scans: dict[str, LayerScan]) -> Archive | None:
    """The archive of an earlier export of this image, its layers the cache's results by the
    diff_ids the engine vouches for: the same archive a new export would give (its config hashes to
    the image id, and every layer its manifest names is a vouched, cached layer), or None, and the
    image is exported as before."""
    archive = Archive()
    try:
        if doc["config"] != config_digest:
            return None
        for path, kind, value in doc["members"]:
            if kind == "link":
                archive.records[path] = BlobRecord(path, 0, link=str(value))
            elif kind == "layer":
                archive.records[path] = BlobRecord(path, int(value), deferred=True)
            elif kind == "doc":
                data = base64.b64decode(value, validate=True)
                archive.records[path] = BlobRecord(path, len(data), data=data)
            else:
                return None
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None
    archive.attached, archive.exported = attach_vouched(archive, config_digest, scans), False
    if not archive.attached or any(r.deferred for r in archive.records.values()):
        return None  # a layer the manifest names is not one the engine vouched for: export
    return archive


def file_shell(archive: Archive) -> dict[str, Any] | None:
    """What a scan read of an image file besides its layers' bytes (its documents, links and notes,
    and the digest each layer's bytes were proven to have): enough for :func:`replay_shell` to
    answer a rescan of the same unchanged file from the layer cache without opening it.  Kept
    under the file's identity, as the proofs are (scanner.cache: a file whose stat, ctime included,
    is unchanged holds the same bytes).  None when anything was not read whole, not proven, or the
    documents are large."""
    members: list[list[Any]] = []
    total = 0
    for rec in archive.records.values():
        if rec.link is not None:
            members.append([rec.path, "link", rec.link])
        elif rec.layer is not None and (proof := archive.proven.get(rec.path)) is not None:
            members.append([rec.path, "layer", proof[0], proof[1]])
        elif rec.data is not None:
            total += len(rec.data)
            members.append([rec.path, "doc", base64.b64encode(rec.data).decode()])
        elif rec.note is not None and rec.layer is None and not rec.deferred:
            members.append([rec.path, "note", rec.size, rec.note])
        else:
            return None  # a layer not proven (cut short, a digest that lied), or left unread
    if archive.errors or total > SHELL_LIMIT or not archive.exported:
        return None
    return {"members": members}


def replay_shell(doc: Any, cache: LayerCache) -> Archive | None:
    """The archive a read of the file :func:`file_shell` kept ``doc`` for would give, its layers the
    cache's results by their proven digests; None (the file is read, as before) when a layer's
    result is no longer in the cache or ``doc`` is not one file_shell writes."""
    archive = Archive()
    hits = 0
    try:
        for member in doc["members"]:
            path, kind = str(member[0]), member[1]
            if kind == "link":
                archive.records[path] = BlobRecord(path, 0, link=str(member[2]))
            elif kind == "layer":
                digest, size = str(member[2]), int(member[3])
                if (scan := cache.get(digest, count=False)) is None:
                    return None
                archive.records[path] = BlobRecord(path, size, layer=scan)
                archive.proven[path] = (digest, size)
                hits += 1
            elif kind == "doc":
                data = base64.b64decode(member[2], validate=True)
                archive.records[path] = BlobRecord(path, len(data), data=data)
            elif kind == "note":
                archive.records[path] = BlobRecord(path, int(member[2]), note=str(member[3]))
            else:
                return None
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return None
    cache.hits += hits
    return archive
