"""A real registry for the tests: Debian's docker-registry (distribution 2.8) on loopback, with an
optional htpasswd file, on a port it picks itself; and a multi-platform OCI layout to push to it."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .tars import layer_tar, oci_image, sha


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    root: Path  # storage root


def registry_available() -> tuple[bool, str]:
    return (
        shutil.which("docker-registry") is not None,
        "docker-registry is not installed (apt-get install docker-registry)",
    )


@contextmanager
def run_registry(
    workdir: Path,
    users: dict[str, str] | None = None,
    token: tuple[str, Path] | None = None,
    notify: tuple[str, str] | None = None,
    addr: str = "127.0.0.1:0",
) -> Iterator[Registry]:
    """docker-registry serve on ``addr`` (a free port by default); ``users`` turns on htpasswd auth
    (bcrypt), ``token`` (realm, certificate) token auth against tests.support.token_server,
    ``notify`` (url, bearer token) push notifications as FORMATS.md section 6 configures them."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = [
        "version: 0.1",
        "log: {level: info}",
        f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}, delete: {{enabled: true}}}}",
        f"http: {{addr: {addr}, secret: test-only}}",
    ]
    if notify:
        url, bearer = notify
        config.append(
            "notifications: {events: {includereferences: true}, endpoints: [{name: leakscan, "
            f"url: '{url}', headers: {{Authorization: ['Bearer {bearer}']}}, timeout: 5s, threshold: 3, "
            "backoff: 1s, ignoredmediatypes: [application/octet-stream], ignore: {actions: [pull]}}]}"
        )
    if users:
        import bcrypt

        lines = [f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=5)).decode()}" for u, p in users.items()]
        (workdir / "htpasswd").write_text("\n".join(lines) + "\n")
        config.append(f"auth: {{htpasswd: {{realm: leakscan-test, path: {workdir / 'htpasswd'}}}}}")
    if token:
        from .token_server import ISSUER, SERVICE

        realm, cert = token
        config.append(
            f'auth: {{token: {{realm: "{realm}", service: {SERVICE}, issuer: {ISSUER}, rootcertbundle: {cert}}}}}'
        )
    (workdir / "config.yml").write_text("\n".join(config) + "\n")
    log = (workdir / "registry.log").open("w")
    proc = subprocess.Popen(["docker-registry", "serve", str(workdir / "config.yml")], stdout=log, stderr=log)
    try:
        host = None
        for _ in range(100):
            found = re.search(r"listening on (127\.0\.0\.1:\d+)", (workdir / "registry.log").read_text())
            if found:
                host = found.group(1)
                break
            if proc.poll() is not None:
                break
            time.sleep(0.1)
        if host is None:
            raise RuntimeError(f"docker-registry did not start: {(workdir / 'registry.log').read_text()[-1500:]}")
        yield Registry(host, workdir / "data")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def multiarch_layout(out: Path, files: dict[str, dict[str, bytes]]) -> Path:
    """An OCI layout (ref ``multi``) of an image index with one image per platform
    ("linux/amd64": {path: content})."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> str:
        digest = sha(data)
        (blobs / digest.removeprefix("sha256:")).write_bytes(data)
        return digest

    manifests = []
    for platform, content in files.items():
        os_, arch = platform.split("/")[:2]
        manifest, config, gz = oci_image(layer_tar(list(content.items())), platform)
        put(config)
        put(gz)
        manifests.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": put(manifest),
                "size": len(manifest),
                "platform": {"os": os_, "architecture": arch},
            }
        )
    index_type = "application/vnd.oci.image.index.v1+json"
    inner = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": manifests}).encode()
    layout_index(out, index_type, put(inner), len(inner), "multi")
    return out


def image_layout(out: Path, files: dict[str, bytes], ref: str = "img") -> Path:
    """An OCI layout (ref ``ref``) of one single-platform image of ``files`` ({path: content})."""
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    manifest, config, gz = oci_image(layer_tar(list(files.items())))
    for data in (manifest, config, gz):
        (blobs / sha(data).removeprefix("sha256:")).write_bytes(data)
    layout_index(out, "application/vnd.oci.image.manifest.v1+json", sha(manifest), len(manifest), ref)
    return out


def layout_index(out: Path, media_type: str, digest: str, size: int, ref: str) -> None:
    """An OCI layout's index.json naming one manifest (or index) by ``ref``, and its oci-layout file."""
    entry = {
        "mediaType": media_type,
        "digest": digest,
        "size": size,
        "annotations": {"org.opencontainers.image.ref.name": ref},
    }
    (out / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [entry]}))
    (out / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
