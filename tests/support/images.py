"""Build the test images with the real engine, with secrets generated for this test run."""

from __future__ import annotations

import base64
import io
import os
import secrets
import shutil
import string
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from .services import docker_cli

TESTDATA = Path(__file__).resolve().parents[2] / "testdata"
BASE_TAG = "leakscan-test-base:1"
APPLETS = ("sh", "cat", "cp", "rm", "mkdir", "echo", "base64", "hexdump", "ln", "ls", "mv", "touch", "printf")


def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def busybox_rootfs_tar() -> bytes:
    """A minimal root filesystem: busybox-static and the applets the test Dockerfiles use."""
    busybox = shutil.which("busybox") or "/bin/busybox"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for d in ("bin", "tmp", "etc", "root"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buf.getvalue()


def ensure_base_image() -> str:
    if docker_cli("images", "-q", BASE_TAG).strip():
        return BASE_TAG
    docker_cli("import", "-", BASE_TAG, input=busybox_rootfs_tar())
    return BASE_TAG


@dataclass
class LeakyImage:
    tag: str
    context: Path
    values: dict[str, str] = field(default_factory=dict)  # secret id -> value (test-side only)
    secret_flags: list[str] = field(default_factory=list)  # the build's --secret flags
    env: dict[str, str] = field(default_factory=dict)

    def all_values(self) -> list[str]:
        return list(self.values.values())


def build_leaky_image(workdir: Path, tag: str = "leakscan-test-leaky:1") -> LeakyImage:
    ensure_base_image()
    ctx = workdir / "context"
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTDATA / "leaky" / "Dockerfile", ctx / "Dockerfile")
    sec = workdir / "secrets"
    sec.mkdir(exist_ok=True)
    img = LeakyImage(tag, ctx)
    v = img.values
    v["npm_token"] = "npm_" + _rand(36)
    v["token"] = "tok-" + _rand(28)
    v["cache"] = "cache-" + _rand(26)
    v["conf_password"] = _rand(24)
    v["BUILD_TOKEN"] = "bt-" + _rand(20)
    v["ENV_SECRET"] = "env-" + _rand(22)
    v["LABEL_SECRET"] = "lbl-" + _rand(22)
    v["aws_key_id"] = "AKIA" + _rand(16, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    v["aws_secret"] = _rand(40, string.ascii_letters + string.digits + "/+")
    v["github"] = "ghp_" + _rand(36)
    v["db_password"] = _rand(20)
    (sec / "npmrc").write_text(f"//registry.npmjs.org/:_authToken={v['npm_token']}\n")
    (sec / "token").write_text(v["token"] + "\n")
    (sec / "cache").write_text(v["cache"])
    (sec / "conf").write_text(f"[db]\nuser = app\npassword = {v['conf_password']}\n")
    (ctx / "aws-credentials").write_text(
        f"[default]\naws_access_key_id = {v['aws_key_id']}\naws_secret_access_key = {v['aws_secret']}\n"
    )
    key_body = base64.encodebytes(os.urandom(600)).decode()
    (ctx / "app.env").write_text(
        f"GITHUB_TOKEN={v['github']}\nDATABASE_URL=postgres://app:{v['db_password']}@db:5432/app\n"
        f'TLS_KEY="-----BEGIN RSA PRIVATE KEY-----\n{key_body}-----END RSA PRIVATE KEY-----"\n'
    )
    img.secret_flags = [f"id={name},src={sec / name}" for name in ("npmrc", "token", "cache", "conf")]
    img.env = {k: v[k] for k in ("BUILD_TOKEN", "ENV_SECRET", "LABEL_SECRET")}
    build_args: list[str] = []
    for name in img.env:
        build_args += ["--build-arg", f"{name}={img.env[name]}"]
    docker_cli(
        "build",
        "--network",
        "none",
        "-q",
        "-t",
        tag,
        *[a for flag in img.secret_flags for a in ("--secret", flag)],
        *build_args,
        str(ctx),
    )
    return img
