"""Hand-made layer tars and archives for parser tests (real images are in tests/engine)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import zipfile
from typing import Any

import zstandard

Entry = tuple[str, Any]  # (name, bytes | "dir" | ("sym", target) | ("hard", target) | "fifo")


def layer_tar(entries: list[Entry]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, what in entries:
            info = tarfile.TarInfo(name)
            if isinstance(what, bytes):
                info.size = len(what)
                tar.addfile(info, io.BytesIO(what))
                continue
            if what == "dir":
                info.type = tarfile.DIRTYPE
            elif what == "fifo":
                info.type = tarfile.FIFOTYPE
            elif what[0] == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, what[1]
            elif what[0] == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, what[1]
            tar.addfile(info)
    return buf.getvalue()


def zip_of(files: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_of(files: dict[str, bytes]) -> bytes:
    return layer_tar(list(files.items()))


def compress(data: bytes, kind: str) -> bytes:
    if kind == "gzip":
        return gzip.compress(data, mtime=0)
    if kind == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    return data


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def docker_archive(
    layers: list[bytes],
    *,
    tags: list[str] | None = None,
    history: list[dict[str, Any]] | None = None,
    config_extra: dict[str, Any] | None = None,
    drop: set[int] | None = None,
    manifest_override: Any = None,
) -> bytes:
    """A Docker 25+ style archive (blobs + manifest.json) around the given (possibly compressed) layers."""
    members: dict[str, bytes] = {}
    diff_ids = []
    for blob in layers:
        raw = blob
        try:
            if blob[:2] == b"\x1f\x8b":
                raw = gzip.decompress(blob)
            elif blob[:4] == b"\x28\xb5\x2f\xfd":
                raw = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
        except (EOFError, OSError, zstandard.ZstdError):
            pass  # a deliberately corrupt layer: its diff_id cannot be known
        diff_ids.append(sha(raw))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history if history is not None else [{"created_by": f"step {i}"} for i in range(len(layers))],
    }
    config.update(config_extra or {})
    cfg = json.dumps(config).encode()
    members[f"blobs/sha256/{sha(cfg)[7:]}"] = cfg
    paths = []
    for i, blob in enumerate(layers):
        path = f"blobs/sha256/{sha(blob)[7:]}"
        paths.append(path)
        if i not in (drop or set()):
            members[path] = blob
    manifest = [{"Config": f"blobs/sha256/{sha(cfg)[7:]}", "RepoTags": tags or ["t:1"], "Layers": paths}]
    members["manifest.json"] = json.dumps(manifest_override if manifest_override is not None else manifest).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    return buf.getvalue()


def oci_image(layer: bytes, platform: str = "linux/amd64") -> tuple[bytes, bytes, bytes]:
    """(manifest, config, gzip layer) of a one-layer OCI image whose layer tar is ``layer``."""
    os_, arch = platform.split("/")[:2]
    gz = compress(layer, "gzip")
    config = json.dumps(
        {"architecture": arch, "os": os_, "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}, "config": {}}
    ).encode()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": sha(config),
                "size": len(config),
            },
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(gz), "size": len(gz)}
            ],
        }
    ).encode()
    return manifest, config, gz
