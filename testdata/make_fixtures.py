"""Rebuild the committed sample archives in testdata/archives/ with a real engine and skopeo.

    DOCKER_HOST=unix:///path/to/docker.sock python testdata/make_fixtures.py

The sample's values are fake on purpose (AWS's documented example keys, a token that says it is
not real).  Docker 20.10 writes only the legacy layout; the Docker 25+ and containerd-store
archives rewrap its layers and config byte for byte (tests/support/convert.py).
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests.support.convert import to_containerd, to_docker25  # noqa: E402
from tests.support.images import ensure_base_image  # noqa: E402
from tests.support.services import docker_cli, skopeo  # noqa: E402

TAG = "leakscan-sample:1"
DEPLOY_TOKEN = "demo-deploy-token-0123456789"


def main() -> None:
    ensure_base_image()
    docker_cli(
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        TAG,
        "--secret",
        f"id=demo,src={HERE / 'sample' / 'demo-secret.txt'}",
        "--build-arg",
        f"DEPLOY_TOKEN={DEPLOY_TOKEN}",
        str(HERE / "sample"),
    )
    out = HERE / "archives"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        legacy = Path(tmp) / "legacy.tar"
        docker_cli("save", "-o", str(legacy), TAG)
        _gzip(legacy, out / "sample-docker-legacy.tar.gz")
        podman = Path(tmp) / "podman.tar"
        skopeo("copy", "-q", f"docker-archive:{legacy}", f"docker-archive:{podman}:{TAG}")
        _gzip(podman, out / "sample-podman-docker-archive.tar.gz")
        for name, extra in (("sample-oci-zstd.tar", ["--dest-compress-format", "zstd"]), ("sample-oci-gzip.tar", [])):
            (out / name).unlink(missing_ok=True)
            skopeo("copy", "-q", *extra, f"docker-archive:{legacy}", f"oci-archive:{out / name}:{TAG}")
        docker25 = Path(tmp) / "docker25.tar"
        to_docker25(legacy, docker25)
        _gzip(docker25, out / "sample-docker25.tar.gz")
        to_containerd(legacy, out / "sample-containerd.tar", {"DEPLOY_TOKEN": DEPLOY_TOKEN})
    for path in sorted(out.iterdir()):
        print(f"{path.relative_to(HERE.parent)}  {path.stat().st_size} bytes")


def _gzip(src: Path, dst: Path) -> None:
    with src.open("rb") as fin, gzip.GzipFile(dst, "wb", compresslevel=9, mtime=0) as fout:
        shutil.copyfileobj(fin, fout)


if __name__ == "__main__":
    main()
