"""Rewrap a legacy ``docker save`` tarball in the layouts that newer writers produce.

Docker 20.10 (what runs here) writes only the legacy layout.  The layers and config of a real
engine build are kept byte for byte; only the wrapping follows moby's and containerd's exporters
(FORMATS.md 1.2 and 1.3): Docker 25+ (OCI layout + manifest.json, uncompressed blobs named by
diff_id) and the containerd image store (gzip blobs, nested index with an attestation manifest, a
platform whose blobs are missing).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def read_legacy(path: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    files: dict[str, bytes] = {}
    with tarfile.open(path) as tar:
        for m in tar.getmembers():
            if m.isfile():
                f = tar.extractfile(m)
                assert f is not None
                files[m.name] = f.read()
            elif m.issym():
                files[m.name] = files.get(str(Path(m.name).parent / m.linkname), b"")
    return json.loads(files["manifest.json"]), files


def _write(out: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(out, "w") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))


def _descriptor(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": _sha(data), "size": len(data), **extra}


def to_docker25(legacy: Path, out: Path) -> None:
    manifest, files = read_legacy(legacy)
    members: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    index: dict[str, Any] = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    new_manifest = []
    for item in manifest:
        config = files[item["Config"]]
        members[f"blobs/sha256/{_sha(config)[7:]}"] = config
        layers, sources = [], {}
        for path in item["Layers"]:
            data = files[path]
            members[f"blobs/sha256/{_sha(data)[7:]}"] = data
            desc = _descriptor("application/vnd.oci.image.layer.v1.tar", data)
            layers.append(desc)
            sources[_sha(data)] = desc
        oci = json.dumps(
            {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
                "layers": layers,
            }
        ).encode()
        members[f"blobs/sha256/{_sha(oci)[7:]}"] = oci
        tags = item.get("RepoTags") or []
        for tag in tags:
            index["manifests"].append(
                _descriptor(
                    OCI_MANIFEST,
                    oci,
                    annotations={
                        "io.containerd.image.name": f"docker.io/library/{tag}",
                        "org.opencontainers.image.ref.name": tag.rpartition(":")[2],
                    },
                )
            )
        new_manifest.append(
            {
                "Config": f"blobs/sha256/{_sha(config)[7:]}",
                "RepoTags": tags,
                "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in layers],
                "LayerSources": sources,
            }
        )
    members["index.json"] = json.dumps(index).encode()
    members["manifest.json"] = json.dumps(new_manifest).encode()
    members["repositories"] = files.get("repositories", b"{}")
    _write(out, members)


def to_containerd(
    legacy: Path, out: Path, provenance_args: dict[str, str] | None = None, dockerfile: bytes | None = None
) -> None:
    """containerd store export: gzip layers, index.json -> image index -> {amd64, arm64 (missing),
    attestation}, and manifest.json with only Config, RepoTags and Layers.  ``dockerfile``: put in
    the provenance's source infos, as BuildKit's mode=max does."""
    manifest, files = read_legacy(legacy)
    item = manifest[0]
    members: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    config = files[item["Config"]]
    members[f"blobs/sha256/{_sha(config)[7:]}"] = config
    layers = []
    for path in item["Layers"]:
        blob = gzip.compress(files[path], mtime=0)
        members[f"blobs/sha256/{_sha(blob)[7:]}"] = blob
        layers.append(_descriptor("application/vnd.oci.image.layer.v1.tar+gzip", blob))
    image_manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", config),
            "layers": layers,
        }
    ).encode()
    members[f"blobs/sha256/{_sha(image_manifest)[7:]}"] = image_manifest
    statement = json.dumps(
        {
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://slsa.dev/provenance/v0.2",
            "subject": [{"name": "pkg:docker/test", "digest": {"sha256": _sha(image_manifest)[7:]}}],
            "predicate": {
                "builder": {"id": ""},
                "buildType": "https://mobyproject.org/buildkit@v1",
                "invocation": {
                    "parameters": {
                        "frontend": "dockerfile.v0",
                        "args": {f"build-arg:{k}": v for k, v in (provenance_args or {}).items()},
                        "secrets": [{"id": "npmrc"}],
                    }
                },
                "metadata": {
                    "https://mobyproject.org/buildkit@v1#metadata": {
                        "source": {
                            "infos": [
                                {
                                    "filename": "Dockerfile",
                                    "language": "Dockerfile",
                                    "data": base64.b64encode(dockerfile).decode(),
                                }
                            ]
                        }
                    }
                }
                if dockerfile is not None
                else {},
            },
        }
    ).encode()
    members[f"blobs/sha256/{_sha(statement)[7:]}"] = statement
    empty = b"{}"
    members[f"blobs/sha256/{_sha(empty)[7:]}"] = empty
    attestation = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": _descriptor("application/vnd.oci.image.config.v1+json", empty),
            "layers": [
                _descriptor(
                    "application/vnd.in-toto+json",
                    statement,
                    annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
                )
            ],
        }
    ).encode()
    members[f"blobs/sha256/{_sha(attestation)[7:]}"] = attestation
    missing_arm = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": []}).encode()  # not exported
    nested = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                _descriptor(OCI_MANIFEST, image_manifest, platform={"architecture": "amd64", "os": "linux"}),
                _descriptor(
                    OCI_MANIFEST, missing_arm, platform={"architecture": "arm64", "os": "linux", "variant": "v8"}
                ),
                _descriptor(
                    OCI_MANIFEST,
                    attestation,
                    platform={"architecture": "unknown", "os": "unknown"},
                    annotations={
                        "vnd.docker.reference.digest": _sha(image_manifest),
                        "vnd.docker.reference.type": "attestation-manifest",
                    },
                ),
            ],
        }
    ).encode()
    members[f"blobs/sha256/{_sha(nested)[7:]}"] = nested
    tag = (item.get("RepoTags") or ["test:latest"])[0]
    members["index.json"] = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [
                _descriptor(
                    OCI_INDEX,
                    nested,
                    annotations={
                        "io.containerd.image.name": f"docker.io/library/{tag}",
                        "org.opencontainers.image.ref.name": tag.rpartition(":")[2],
                    },
                )
            ],
        }
    ).encode()
    members["manifest.json"] = json.dumps(
        [
            {
                "Config": f"blobs/sha256/{_sha(config)[7:]}",
                "RepoTags": [tag],
                "Layers": [f"blobs/sha256/{d['digest'][7:]}" for d in layers],
            }
        ]
    ).encode()
    _write(out, members)
