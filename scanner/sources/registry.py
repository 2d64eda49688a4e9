"""An image straight from a registry, over the OCI distribution API, with no daemon.

The manifests, config and layer blobs are offered to the pipeline as the members of an OCI image
layout (``oci-layout``, ``index.json``, ``blobs/sha256/...``), so everything downstream (the
walker, attestations, digest checks, the layer cache) is the same code as for an OCI archive.
Layers are streamed from the HTTP response into the walker: nothing is written to disk.

- Content negotiation: OCI and Docker manifests and indexes.  An index is narrowed to the
  requested platform (``--platform``, default ``linux/amd64``) or kept whole (``--all-platforms``);
  the attestation manifests of the selected images come along and are scanned as metadata.
- Auth (Bearer or Basic, credentials from flags, the environment or the Docker config), redirects
  and digest-checked reads are the client's: see registry_client.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..errors import RegistryError
from .interface import (
    BODY_SHAPE,
    DESC_SHAPE,
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageSource,
    Member,
    bad_shape,
)
from .reference import (
    DIGEST,
    Credentials,
    Reference,
    RegistryOptions,
    docker_config_credentials,
    has_registry_host,
    is_loopback,
)
from .registry_client import (
    CHUNK,
    MAX_CONFIG,
    Client,
    LazyBlob,
    VerifiedBlob,
)

__all__ = [  # with the names of .reference, which were defined here before it was split off
    "Credentials",
    "Reference",
    "RegistryOptions",
    "RegistrySource",
    "docker_config_credentials",
    "has_registry_host",
    "is_loopback",
]


def _is_attestation_desc(desc: dict[str, Any]) -> bool:
    return (desc.get("annotations") or {}).get("vnd.docker.reference.type") == "attestation-manifest"


def _platform_of(desc: dict[str, Any]) -> str:
    p = desc.get("platform") or {}
    parts = [str(p.get("os", "")), str(p.get("architecture", ""))]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts)


def _platform_matches(wanted: str, desc: dict[str, Any]) -> bool:
    have = _platform_of(desc).split("/")
    want = wanted.split("/")
    return have[:2] == want[:2] and (len(want) < 3 or (len(have) > 2 and have[2] == want[2]))


@dataclass
class _Plan:
    docs: dict[str, bytes] = field(default_factory=dict)  # digest -> manifest/index/config body
    layers: list[tuple[str, int | None]] = field(default_factory=list)  # (digest, size), in order
    index: list[dict[str, Any]] = field(default_factory=list)  # descriptors for index.json
    notes: list[str] = field(default_factory=list)


class RegistrySource(ImageSource):
    kind = "registry"

    def __init__(self, ref: str, options: RegistryOptions | None = None) -> None:
        super().__init__(ref)
        self.reference = Reference.parse(ref)
        self.options = options or RegistryOptions()

    def describe(self) -> str:
        return f"registry:{self.reference}"

    def members(self) -> Iterator[Member]:
        client = Client(self.reference, self.options)
        try:
            plan = self._plan(client)
            layout = b'{"imageLayoutVersion":"1.0.0"}'
            yield Member("oci-layout", len(layout), stream=io.BytesIO(layout))
            index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": plan.index}
            body = json.dumps(index).encode()
            yield Member("index.json", len(body), stream=io.BytesIO(body))
            for digest, doc in plan.docs.items():
                yield Member(f"blobs/sha256/{digest[7:]}", len(doc), stream=io.BytesIO(doc))
            seen: set[str] = set()
            for digest, size in plan.layers:
                if digest in seen:
                    continue
                seen.add(digest)
                blob = LazyBlob(client, digest, size)
                yield Member(f"blobs/sha256/{digest[7:]}", size or 0, stream=blob, digest=digest)
                blob.drain()  # whatever the walker left unread is still hashed: the digest check is whole
        finally:
            client.close()

    def children(self) -> list[str]:
        """The image manifests an index lists (attestations aside), by digest; [] for an image.
        One manifest request: the service asks it before a scan, to reuse the platform images'
        own scans (see service/jobs.py)."""
        client = Client(self.reference, self.options)
        try:
            body, media_type, _ = client.manifest(self.reference.reference)
        finally:
            client.close()
        doc = json.loads(body)
        if not isinstance(doc, dict) or not (media_type in INDEX_TYPES or "manifests" in doc):
            return []
        descs = doc.get("manifests")
        return [
            d["digest"]
            for d in (descs if isinstance(descs, list) else [])
            if isinstance(d, dict)
            and isinstance(d.get("digest"), str)
            and DIGEST.match(d["digest"])
            and not _is_attestation_desc(d)
        ]

    def _plan(self, client: Client) -> _Plan:
        plan = _Plan()
        ref = self.reference
        body, media_type, digest = client.manifest(ref.reference)
        doc = json.loads(body)
        if not isinstance(doc, dict):
            raise RegistryError(f"registry {client.host}: manifest {ref.reference} is not a JSON object")
        if (bad := bad_shape(doc, BODY_SHAPE)) is not None:
            raise RegistryError(f"registry {client.host}: manifest {ref.reference}: {bad}")
        name_ann = {"org.opencontainers.image.ref.name": ref.tag or digest, "io.containerd.image.name": str(ref)}
        if media_type in INDEX_TYPES or "manifests" in doc:
            plan.docs[digest] = body  # the index itself: its annotations are scanned as metadata
            self._from_index(client, doc, plan, name_ann)
        elif media_type in MANIFEST_TYPES or "layers" in doc:
            self._add_manifest(client, digest, body, doc, plan)
            plan.index.append(
                {"mediaType": media_type or OCI_MANIFEST, "digest": digest, "size": len(body), "annotations": name_ann}
            )
        else:
            raise RegistryError(f"registry {client.host}: unknown manifest type {media_type[:80]!r}")
        return plan

    def _from_index(self, client: Client, doc: dict[str, Any], plan: _Plan, name_ann: dict[str, str]) -> None:
        descs = doc.get("manifests") or []
        for desc in descs:
            if not isinstance(desc, dict) or not isinstance(desc.get("digest"), str):
                raise RegistryError(
                    f"registry {client.host}: an index entry without a digest"
                )  # never skipped silently
            if (bad := bad_shape(desc, DESC_SHAPE)) is not None:
                raise RegistryError(f"registry {client.host}: index entry {desc['digest'][:80]!r}: {bad}")
        images = [d for d in descs if not _is_attestation_desc(d)]
        if self.options.all_platforms:
            chosen = images
        else:
            chosen = [d for d in images if _platform_matches(self.options.platform, d)]
            if not chosen and len(images) == 1 and not images[0].get("platform"):
                chosen = images
            if not chosen:
                have = ", ".join(sorted({_platform_of(d) for d in images})) or "none"
                raise RegistryError(
                    f"registry {client.host}: {self.reference} has no {self.options.platform} image (it has: {have})",
                    remedy="pass --platform OS/ARCH, or --all-platforms",
                )
        chosen_digests = {d["digest"] for d in chosen}
        attestations = [
            d
            for d in descs
            if _is_attestation_desc(d)
            and (d.get("annotations") or {}).get("vnd.docker.reference.digest") in chosen_digests
        ]
        for desc in chosen + attestations:
            if not DIGEST.match(desc["digest"]):
                raise RegistryError(f"registry {client.host}: index entry with a bad digest {desc['digest'][:80]!r}")
            body, _, digest = client.manifest(desc["digest"])
            sub = json.loads(body)
            if not isinstance(sub, dict) or "layers" not in sub:
                plan.notes.append(f"{digest}: not an image manifest; not scanned")
                continue
            if (bad := bad_shape(sub, BODY_SHAPE)) is not None:
                raise RegistryError(f"registry {client.host}: manifest {digest}: {bad}")
            is_attestation = desc in attestations
            self._add_manifest(client, digest, body, sub, plan, layers=not is_attestation)
            entry = dict(desc)
            if not is_attestation:
                entry["annotations"] = {**(desc.get("annotations") or {}), **name_ann}
            plan.index.append(entry)

    def _add_manifest(
        self, client: Client, digest: str, body: bytes, doc: dict[str, Any], plan: _Plan, layers: bool = True
    ) -> None:
        plan.docs[digest] = body
        config = doc.get("config") or {}
        cdigest = config.get("digest") if isinstance(config, dict) else None
        if isinstance(cdigest, str) and DIGEST.match(cdigest) and cdigest not in plan.docs:
            size = config.get("size") if isinstance(config.get("size"), int) else None
            plan.docs[cdigest] = self._small_blob(client, cdigest, size, "config")
        for layer in doc.get("layers") or []:
            if not isinstance(layer, dict) or not isinstance(layer.get("digest"), str):
                raise RegistryError(f"registry {client.host}: a layer entry without a digest")  # not a silent gap
            if not DIGEST.match(layer["digest"]):
                raise RegistryError(f"registry {client.host}: layer with a bad digest {layer['digest'][:80]!r}")
            if layer.get("urls") or "nondistributable" in str(layer.get("mediaType", "")):
                continue  # foreign layers: reported as not in the archive by the resolver
            size = layer.get("size") if isinstance(layer.get("size"), int) else None
            if layers:
                plan.layers.append((layer["digest"], size))
            elif layer["digest"] not in plan.docs:  # an attestation's statements: small JSON documents
                plan.docs[layer["digest"]] = self._small_blob(client, layer["digest"], size)

    def _small_blob(self, client: Client, digest: str, size: int | None, what: str = "blob") -> bytes:
        """A config or attestation statement: read whole, digest-checked, at most MAX_CONFIG bytes."""
        where = f"registry {client.host}: {what} {digest[:19]}"
        if size is not None and size > MAX_CONFIG:
            raise RegistryError(f"{where} is {size} bytes; refused")
        blob = VerifiedBlob(client.blob(digest), digest, size, where)
        data = bytearray()
        while chunk := blob.read(CHUNK):
            data += chunk
            if len(data) > MAX_CONFIG:
                raise RegistryError(f"{where} is over {MAX_CONFIG} bytes")
        return bytes(data)
