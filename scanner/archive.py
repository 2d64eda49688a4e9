"""Image archive -> images: classify members as they stream by, then resolve the manifests.

``collect`` walks every member once, in the producer's order: layer blobs (recognised by their
magic bytes, never by name) are walked at once; everything else that is small enough is kept for
later.  Once the stream has ended, ``resolve`` reads ``manifest.json`` (Docker and podman) or
``index.json`` (OCI) and lines up, for every image, its config, its layers and its metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from .cache import LayerCache, claimed_digest
from .errors import FormatError, SourceError
from .models import LayerScan, Readable, sha256_hex
from .sources.interface import BODY_SHAPE, DESC_SHAPE, Member, bad_shape
from .streams import HashingReader, read_head, safe_reason
from .walk import READ_ERRORS, looks_like_tar, sniff

JSON_LIMIT = 64 << 20
MAX_JSON_DEPTH = 64
MAX_LINK_HOPS = 16

INDEX_TYPES = {"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json"}
MANIFEST_TYPES = {"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"}
ATTESTATION_TYPE = "attestation-manifest"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LEGACY_V1 = re.compile(r"^[0-9a-f]{64}/(?:json|VERSION)$")


@dataclass
class BlobRecord:
    path: str
    size: int
    layer: LayerScan | None = None
    data: bytes | None = None
    link: str | None = None
    note: str | None = None
    used: bool = False
    deferred: bool = False  # a layer left unread: its result is the cache's, once the manifest names it


@dataclass
class Archive:
    records: dict[str, BlobRecord] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    proven: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (digest of its bytes, size)

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
Proofs = dict[str, tuple[str, int]]  # archive path -> (the digest its bytes hash to, its size)


class Walker(Protocol):
    def walk(self, blob: Readable, head: bytes = b"") -> LayerScan: ...


def _verified(member: Member, head: bytes, digest: str, scan: LayerScan) -> LayerScan:
    """``scan``, cached for the digest ``member``'s name claims, once its bytes hash to it."""
    reader = HashingReader(member.stream, head)  # type: ignore[arg-type]
    reader.drain()
    if reader.digest != digest:  # a member that lies about its content: never a cache hit
        return replace(
            scan,
            files=(),
            entries=(),
            files_scanned=0,
            error=f"content does not match the digest its name claims ({digest}); not scanned",
        )
    return scan


def _layer(member: Member, head: bytes, walker: Walker, cache: LayerCache | None, tried: str | None) -> _Proven:
    """A layer member's result, from the cache once its bytes prove the digest, else walked; with
    the digest its bytes were proven to have (None when they were not read whole).  ``tried``: a
    digest already known for these bytes and missed in the cache."""
    stream = member.stream
    if cache is not None:
        claimed = claimed_digest(member.path)
        if claimed is None and member.reopen is not None and tried is None:
            # a name without a digest (docker's legacy <id>/layer.tar), in a file on disk: hash the
            # bytes, look them up, and walk them from the start again after a miss
            reader = HashingReader(stream, head)  # type: ignore[arg-type]
            reader.drain()
            if (scan := cache.get(reader.digest)) is not None:
                return scan, reader.digest
            stream, head = member.reopen(), b""
        elif claimed is not None and claimed != tried and (scan := cache.get(claimed)) is not None:
            scan = _verified(member, head, claimed, scan)
            return scan, (claimed if scan.error is None else None)
    scan = walker.walk(stream, head)  # type: ignore[arg-type]
    if cache is not None:
        cache.put(scan)
    return scan, (scan.blob_digest if scan.error is None else None)


def collect(
    members: Iterable[Member],
    walker: Walker,
    json_limit: int = JSON_LIMIT,
    cache: LayerCache | None = None,
    proofs: Proofs | None = None,
    defer: bool = False,
) -> Archive:
    """Every member, classified; ``proofs`` are digests proven by an earlier scan of the same
    unchanged bytes (see scanner.cache).  ``Archive.proven`` holds the proofs of this scan.  With
    ``defer``, a layer whose name claims no digest is left unread (every layer of the image is in
    the cache, by the diff_ids the source vouches for): :func:`attach_vouched` fills it in."""
    archive = Archive()
    try:
        for member in members:
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
                scan, digest = _layer(member, head, walker, cache, known)
                archive.records[member.path] = BlobRecord(member.path, member.size, layer=scan)
                if digest is not None:
                    archive.proven[member.path] = (digest, member.size)
            elif member.size <= json_limit:
                archive.records[member.path] = BlobRecord(member.path, member.size, data=head + member.stream.read())
            else:
                archive.records[member.path] = BlobRecord(
                    member.path, member.size, note=f"neither a layer nor a document under {json_limit} bytes; not read"
                )
    except READ_ERRORS as exc:
        archive.errors.append(f"the archive stream could not be read to its end: {safe_reason(exc)}")
    return archive


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
            diff_ids = json.loads(rec.data)["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
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


# --- resolution --------------------------------------------------------------------------------


@dataclass
class LayerRef:
    index: int
    path: str | None
    media_type: str | None
    digest: str | None
    scan: LayerScan | None
    missing: str | None = None


@dataclass
class MetaDoc:
    """A JSON document to scan as metadata; findings get ``field`` = prefix + JSON path."""

    prefix: str
    doc: Any


@dataclass
class ResolvedImage:
    name: str
    repo_tags: list[str]
    config_digest: str | None
    manifest_digest: str | None
    platform: str | None
    config: dict[str, Any] | None
    layers: list[LayerRef]
    metadata: list[MetaDoc] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ResolvedArchive:
    format: str
    images: list[ResolvedImage]
    metadata: list[MetaDoc]
    warnings: list[str]
    errors: list[str]


@dataclass
class _Manifest:
    digest: str
    body: dict[str, Any]
    platform: str | None
    annotations: dict[str, str]


def blob_path(digest: str) -> str:
    alg, _, hexpart = digest.partition(":")
    return f"blobs/{alg}/{hexpart}"


def _digest_of_path(path: str) -> str | None:
    m = re.search(r"(?:^|/)(?:blobs/(\w+)/)?([0-9a-f]{64})(?:\.json|\.tar)?$", path)
    if not m:
        return None
    return f"{m.group(1) or 'sha256'}:{m.group(2)}"


def _platform(p: Any) -> str | None:
    if not isinstance(p, dict) or not p.get("os"):
        return None
    parts = [str(p.get("os")), str(p.get("architecture", "?"))]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts)


def _is_attestation(desc: dict[str, Any], body: dict[str, Any]) -> bool:
    ann = desc.get("annotations") or {}
    if ann.get("vnd.docker.reference.type") == ATTESTATION_TYPE:
        return True
    layers = body.get("layers") or []
    return bool(layers) and all(
        isinstance(d, dict) and d.get("mediaType") == "application/vnd.in-toto+json" for d in layers
    )


class _Resolver:
    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.warnings: list[str] = []
        self.errors: list[str] = list(archive.errors)
        self.metadata: list[MetaDoc] = []
        self.manifests: list[_Manifest] = []
        self.attestations: list[tuple[str, str | None, dict[str, Any]]] = []  # (digest, subject, body)

    def walk_index(self, doc: Any, where: str, depth: int = 0) -> None:
        if depth > 8:
            self.errors.append(f"{where}: indexes nested more than 8 deep; not followed")
            return
        if not isinstance(doc, dict) or not isinstance(doc.get("manifests"), list):
            self.errors.append(f"{where}: not an image index (no manifests list)")
            return
        for i, desc in enumerate(doc["manifests"]):
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                self.errors.append(f"{where}.manifests[{i}]: descriptor without a digest")
                continue
            if (bad := bad_shape(desc, DESC_SHAPE)) is not None:
                self.errors.append(f"{where}.manifests[{i}]: {bad}; not scanned")
                continue
            digest = desc["digest"]
            platform = _platform(desc.get("platform"))
            body = self.archive.json(blob_path(digest))
            if body is None:
                what = (
                    "attestation"
                    if (desc.get("annotations") or {}).get("vnd.docker.reference.type") == ATTESTATION_TYPE
                    else "manifest"
                )
                where_what = f"{where}.manifests[{i}]: {what} {digest} ({platform or 'no platform'})"
                self.warnings.append(f"{where_what} is not in the archive; skipped")
                continue
            self.verify(blob_path(digest), digest)
            if not isinstance(body, dict):
                self.errors.append(f"{digest}: manifest is not a JSON object")
                continue
            if (bad := bad_shape(body, BODY_SHAPE)) is not None:
                self.errors.append(f"{digest}: {bad}; not scanned")
                continue
            media_type = desc.get("mediaType") or body.get("mediaType")
            if media_type in INDEX_TYPES or (media_type is None and "manifests" in body):
                self.metadata.append(MetaDoc(f"index[{digest[:19]}]", body))
                self.walk_index(body, f"index[{digest[:19]}]", depth + 1)
            elif media_type in MANIFEST_TYPES or (media_type is None and "layers" in body):
                if _is_attestation(desc, body):
                    subject = (desc.get("annotations") or {}).get("vnd.docker.reference.digest")
                    if subject is None and isinstance(body.get("subject"), dict):
                        subject = body["subject"].get("digest")
                    self.attestations.append((digest, subject, body))
                else:
                    ann = {**(body.get("annotations") or {}), **(desc.get("annotations") or {})}
                    self.manifests.append(_Manifest(digest, body, platform, ann))
            else:
                self.errors.append(f"{where}.manifests[{i}]: unknown media type {str(media_type)[:80]}; not scanned")

    def verify(self, path: str, digest: str) -> None:
        rec = self.archive.lookup(path)
        data = rec.data if rec is not None else None
        if data is not None and digest.startswith("sha256:") and sha256_hex(data) != digest[7:]:
            self.errors.append(f"{path}: content does not match its digest {digest}")

    def layer(self, index: int, path: str | None, media_type: str | None, digest: str | None) -> LayerRef:
        rec = self.archive.lookup(path) if path else None
        if rec is None:
            nondist = media_type is not None and ("nondistributable" in media_type or "foreign" in media_type)
            reason = "non-distributable layer, not in the archive" if nondist else "layer blob missing from the archive"
            return LayerRef(index, path, media_type, digest, None, missing=reason)
        rec.used = True
        if rec.layer is None:
            return LayerRef(index, path, media_type, digest, None, missing=rec.note or "blob is not a tar layer")
        if digest and digest.startswith("sha256:") and rec.layer.blob_digest != digest and rec.layer.diff_id != digest:
            self.errors.append(f"{path}: layer content does not match its digest {digest}")
        return LayerRef(index, path, media_type, digest or rec.layer.blob_digest, rec.layer)

    def config(self, path: str, where: str) -> dict[str, Any] | None:
        doc = self.archive.json(path)
        if doc is None:
            self.errors.append(f"{where}: config {path} is missing from the archive")
            return None
        if not isinstance(doc, dict):
            self.errors.append(f"{where}: config {path} is not a JSON object")
            return None
        rootfs = doc.get("rootfs")
        bad = bad_shape(doc, {"rootfs": dict, "history": list, "config": dict}) or (
            bad_shape(rootfs, {"diff_ids": list}) if isinstance(rootfs, dict) else None
        )
        if bad is not None:  # scanned as metadata all the same, but not trusted for layers or history
            self.errors.append(f"{where}: config {path}: {bad}")
            return {k: v for k, v in doc.items() if k not in ("rootfs", "history")}
        return doc

    def from_docker_manifest(self, doc: Any) -> list[ResolvedImage]:
        if not isinstance(doc, list):
            raise FormatError("manifest.json is not a list of images")
        by_config = {m.body.get("config", {}).get("digest"): m for m in self.manifests}
        images = []
        for n, item in enumerate(doc):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("Config"), str)
                or not isinstance(item.get("Layers"), list)
            ):
                self.errors.append(f"manifest.json[{n}]: entry without Config and Layers; skipped")
                continue
            config_digest = _digest_of_path(item["Config"])
            config = self.config(item["Config"], f"manifest.json[{n}]")
            manifest = by_config.get(config_digest)
            sources: dict[str, Any] = item["LayerSources"] if isinstance(item.get("LayerSources"), dict) else {}
            diff_ids = (config or {}).get("rootfs", {}).get("diff_ids") or []
            layers = []
            for i, path in enumerate(item["Layers"]):
                desc: dict[str, Any] = {}
                if manifest is not None and i < len(manifest.body.get("layers") or []):
                    found = manifest.body["layers"][i]
                    desc = found if isinstance(found, dict) else {}
                elif i < len(diff_ids) and isinstance(sources.get(diff_ids[i]), dict):
                    desc = sources[diff_ids[i]]
                layers.append(self.layer(i, str(path), desc.get("mediaType"), desc.get("digest")))
            tags = [str(t) for t in item.get("RepoTags") or []] if isinstance(item.get("RepoTags"), list | None) else []
            name = tags[0] if tags else (manifest.annotations.get("io.containerd.image.name") if manifest else None)
            images.append(self.image(name, tags, config_digest, manifest, config, layers))
        return images

    def from_oci(self) -> list[ResolvedImage]:
        images = []
        for m in self.manifests:
            cfg_desc = m.body.get("config") or {}
            cfg_digest = cfg_desc.get("digest") if isinstance(cfg_desc, dict) else None
            config = self.config(blob_path(cfg_digest), f"manifest {m.digest}") if isinstance(cfg_digest, str) else None
            if isinstance(cfg_digest, str):
                self.verify(blob_path(cfg_digest), cfg_digest)
            layers = []
            for i, desc in enumerate(m.body.get("layers") or []):
                if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                    self.errors.append(f"manifest {m.digest}: layers[{i}] has no digest")
                    continue
                layers.append(self.layer(i, blob_path(desc["digest"]), desc.get("mediaType"), desc["digest"]))
            name = m.annotations.get("io.containerd.image.name") or m.annotations.get(
                "org.opencontainers.image.ref.name"
            )
            images.append(self.image(name, [name] if name else [], cfg_digest, m, config, layers))
        return images

    def image(
        self,
        name: str | None,
        tags: list[str],
        config_digest: str | None,
        manifest: _Manifest | None,
        config: dict[str, Any] | None,
        layers: list[LayerRef],
    ) -> ResolvedImage:
        platform = manifest.platform if manifest and manifest.platform else _platform(config)
        image = ResolvedImage(
            name=name or (config_digest or "unnamed")[:19],
            repo_tags=tags,
            config_digest=config_digest,
            manifest_digest=manifest.digest if manifest else None,
            platform=platform,
            config=config,
            layers=layers,
        )
        if config is not None:
            image.metadata.append(MetaDoc("", config))
        if manifest is not None:
            image.metadata.append(MetaDoc("manifest.", manifest.body))
        return image

    def attach_attestations(self, images: list[ResolvedImage]) -> None:
        by_manifest = {img.manifest_digest: img for img in images if img.manifest_digest}
        for digest, subject, body in self.attestations:
            target = by_manifest.get(subject) if subject else None
            sink = target.metadata if target is not None else self.metadata
            sink.append(MetaDoc(f"attestation[{digest[:19]}].manifest.", body))
            for i, desc in enumerate(body.get("layers") or []):
                if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                    continue
                rec = self.archive.lookup(blob_path(desc["digest"]))
                if rec is None or rec.data is None:
                    self.warnings.append(
                        f"attestation {digest}: layers[{i}] {desc['digest']} is not in the archive; skipped"
                    )
                    continue
                rec.used = True
                self.verify(blob_path(desc["digest"]), desc["digest"])
                try:
                    statement = parse_json(rec.data, desc["digest"])
                except FormatError as exc:
                    self.errors.append(exc.message)
                    continue
                kind = (desc.get("annotations") or {}).get("in-toto.io/predicate-type", "in-toto")
                sink.append(MetaDoc(f"attestation[{digest[:19]}].layers[{i}]({kind}).", statement))


def resolve(archive: Archive, select: str | None = None) -> ResolvedArchive:
    r = _Resolver(archive)
    index = archive.json("index.json")
    docker_manifest = archive.json("manifest.json")
    if index is not None:
        r.metadata.append(MetaDoc("index.json.", index))
        r.walk_index(index, "index.json")
    if docker_manifest is not None:
        r.metadata.append(MetaDoc("manifest.json", docker_manifest))
        images = r.from_docker_manifest(docker_manifest)
        fmt = _docker_format(archive, images, index is not None)
    elif index is not None:
        images = r.from_oci()
        fmt = "oci"
    else:
        detail = f" ({archive.errors[0]})" if archive.errors else ""
        raise FormatError(
            f"no manifest.json or index.json found: not an image archive{detail}",
            remedy="pass the output of docker save, podman save or skopeo copy ...-archive:",
        )
    r.attach_attestations(images)
    if select is not None:
        images = [
            img for img in images if select in img.repo_tags or img.name == select or img.name.endswith(":" + select)
        ]
        if not images:
            raise SourceError(f"no image named {select!r} in the archive")
    for rec in archive.records.values():
        if (
            rec.used
            or rec.link is not None
            or _LEGACY_V1.match(rec.path)
            or rec.path in ("oci-layout", "index.json", "manifest.json")
        ):
            continue
        if rec.layer is not None:
            images.append(_unreferenced(rec))
        elif rec.data is not None:
            try:
                r.metadata.append(MetaDoc(f"{rec.path}:", json.loads(rec.data)))
            except (ValueError, RecursionError):
                r.metadata.append(MetaDoc(f"{rec.path}:", rec.data.decode("utf-8", "replace")))
        else:
            r.warnings.append(f"{rec.path}: {rec.note}")
    if not images:
        r.errors.append("the archive holds no image that could be read")
    return ResolvedArchive(fmt, images, r.metadata, r.warnings, r.errors)


def _unreferenced(rec: BlobRecord) -> ResolvedImage:
    assert rec.layer is not None
    return ResolvedImage(
        name=f"(layer blob not referenced by any manifest: {rec.path})",
        repo_tags=[],
        config_digest=None,
        manifest_digest=None,
        platform=None,
        config=None,
        layers=[LayerRef(0, rec.path, None, rec.layer.blob_digest, rec.layer)],
    )


def _docker_format(archive: Archive, images: list[ResolvedImage], has_index: bool) -> str:
    scans = [ref.scan for img in images for ref in img.layers if ref.scan is not None]
    if has_index:
        if any(s.compression != "none" for s in scans):
            return "docker-archive (containerd image store)"
        return "docker-archive (OCI layout, Docker 25+)"
    paths = [ref.path or "" for img in images for ref in img.layers]
    if paths and all(p.endswith("/layer.tar") for p in paths):
        return "docker-archive (legacy, Docker <= 24)"
    return "docker-archive (podman)"


def iter_json_strings(node: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, str]]:
    """(field, text) for every string in a JSON document; dict strings are scanned as key=value."""
    if depth > MAX_JSON_DEPTH:
        return
    if isinstance(node, dict):
        for key, value in node.items():
            name = key if _IDENT.match(key) else json.dumps(key)
            if not _IDENT.match(key):
                sub = f"{path.rstrip('.')}[{name}]"
            else:
                sub = f"{path}.{key}" if path and not path.endswith(".") else f"{path}{key}"
            if isinstance(value, str):
                yield sub, f"{key}={value}"
            else:
                yield from iter_json_strings(value, sub, depth + 1)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from iter_json_strings(value, f"{path.rstrip('.')}[{i}]", depth + 1)
    elif isinstance(node, str):
        yield path.rstrip("."), node
