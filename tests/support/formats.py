"""Every archive format of one engine-built image, made with the real engine and skopeo."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

from .convert import to_containerd, to_docker25
from .services import docker_cli, skopeo

# name -> IMAGE argument for leakscan (relative to the output dir), and the format it must report
FORMATS = {
    "docker-save-legacy": ("legacy.tar", "docker-archive (legacy, Docker <= 24)"),
    "docker-save-gzip": ("legacy.tar.gz", "docker-archive (legacy, Docker <= 24)"),
    "docker25": ("docker25.tar", "docker-archive (OCI layout, Docker 25+)"),
    "containerd": ("containerd.tar", "docker-archive (containerd image store)"),
    "podman-docker-archive": ("skopeo-docker-archive.tar", "docker-archive (podman)"),
    "oci-archive-gzip": ("oci-gzip.tar", "oci"),
    "oci-archive-zstd": ("oci-zstd.tar", "oci"),
    "oci-layout-dir": ("oci-dir", "oci"),
}


def make_all(tag: str, out: Path, provenance_args: dict[str, str] | None = None) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    legacy = out / "legacy.tar"
    docker_cli("save", "-o", str(legacy), tag)
    with legacy.open("rb") as src, gzip.open(out / "legacy.tar.gz", "wb", compresslevel=1) as dst:
        shutil.copyfileobj(src, dst)
    to_docker25(legacy, out / "docker25.tar")
    to_containerd(legacy, out / "containerd.tar", provenance_args)
    src = f"docker-archive:{legacy}"
    skopeo("copy", "-q", src, f"docker-archive:{out / 'skopeo-docker-archive.tar'}:{tag}")
    skopeo("copy", "-q", src, f"oci-archive:{out / 'oci-gzip.tar'}:{tag}")
    skopeo("copy", "-q", "--dest-compress-format", "zstd", src, f"oci-archive:{out / 'oci-zstd.tar'}:{tag}")
    skopeo("copy", "-q", "--dest-compress-format", "zstd", src, f"oci:{out / 'oci-dir'}:{tag}")
    return {name: out / rel for name, (rel, _) in FORMATS.items()}


def skopeo_available() -> bool:
    return (
        shutil.which("skopeo") is not None
        and subprocess.run(["skopeo", "--version"], capture_output=True).returncode == 0
    )
