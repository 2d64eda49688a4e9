"""Image archive -> images: resolve the manifests of the members :mod:`scanner.layers.collect` kept.

``collect`` walks every member once, in the producer's order: layer blobs (recognised by their
magic bytes, never by name) are walked at once; everything else that is small enough is kept for
later.  Once the stream has ended, ``resolve`` reads ``manifest.json`` (Docker and podman) or
``index.json`` (OCI) and lines up, for every image, its config, its layers and its metadata.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import field
from typing import Any

from ..errors import FormatError, SourceError
from ..models import LayerScan, Record, compiled, record, sha256_hex
from ..sources.interface import BODY_SHAPE, DESC_SHAPE, INDEX_TYPES, MANIFEST_TYPES, bad_shape
from .collect import Archive, BlobRecord, parse_json

__all__ = ["Archive", "BlobRecord", "MetaDoc", "ResolvedArchive", "ResolvedImage", "iter_json_strings", "resolve"]

MAX_JSON_DEPTH = 64

ATTESTATION_TYPE = "attestation-manifest"
_IDENT = compiled(r"^[A-Za-z_][A-Za-z0-9_]*\Z")
_LEGACY_V1 = compiled(r"^[0-9a-f]{64}/(?:json|VERSION)\Z")


@record
class LayerRef(Record):
    """A layer as a manifest names it, with its result (None: missing, and why)."""

    index: int
    path: str | None
    media_type: str | None
    digest: str | None
    scan: LayerScan | None
    missing: str | None = None


@record
class MetaDoc(Record):
    """A JSON document to scan as metadata; findings get ``field`` = prefix + JSON path."""

    prefix: str
    doc: Any


@record
class ResolvedImage(Record):
    """One image of an archive: its config, its layers in order and its metadata documents."""

    name: str
    repo_tags: list[str]
    config_digest: str | None
    manifest_digest: str | None
    platform: str | None
    config: dict[str, Any] | None
    layers: list[LayerRef]
    metadata: list[MetaDoc] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@record
class ResolvedArchive(Record):
    """The images an archive holds, once its index and manifests are read."""

    format: str
    images: list[ResolvedImage]
    metadata: list[MetaDoc]
    warnings: list[str]
    errors: list[str]


@record
class _Manifest(Record):
    """An image manifest found through an index, with the platform the index gives it."""

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
            or _LEGACY_V1().match(rec.path)
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
            if not _IDENT().match(key):
                sub = f"{path.rstrip('.')}[{json.dumps(key)}]"
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
