"""Build the test images with the real engine, with secrets generated for this test run."""

from __future__ import annotations

import base64
import io
import os
import secrets
import shutil
import string
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .services import docker_cli
from .tars import compress, tar_of, zip_of

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


def build_leaky_image(
    workdir: Path, tag: str = "leakscan-test-leaky:1", cli: Callable[..., str] = docker_cli
) -> LeakyImage:
    """Build testdata/leaky with fresh secrets, by the Docker Engine (BuildKit) or by another
    engine whose CLI takes docker build's arguments (podman: ``cli=podman_cli``)."""
    if cli is docker_cli:
        ensure_base_image()
    else:
        cli("import", "-", BASE_TAG, input=busybox_rootfs_tar())
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
    cli(
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


@dataclass
class DeepImage:
    tag: str
    values: dict[str, str] = field(default_factory=dict)


def pem_key() -> str:
    body = base64.encodebytes(os.urandom(900)).decode()
    return f"-----BEGIN RSA PRIVATE KEY-----\n{body}-----END RSA PRIVATE KEY-----\n"


def build_deep_image(workdir: Path, tag: str = "leakscan-test-deep:1") -> DeepImage:
    """Needs gcc for the compiled-binary case (the CI machine has it)."""
    import bz2
    import gzip
    import lzma
    import py_compile
    import sqlite3
    import subprocess

    import zstandard

    ensure_base_image()
    ctx = workdir / "deep"
    ctx.mkdir(parents=True, exist_ok=True)
    shutil.copy(TESTDATA / "deep" / "Dockerfile", ctx / "Dockerfile")
    img = DeepImage(tag)
    v = img.values
    v["jar_github"] = "ghp_" + _rand(36)
    v["tgz_slack"] = f"xoxb-{_rand(12, string.digits)}-{_rand(13, string.digits)}-{_rand(24)}"
    v["log_npm"] = "npm_" + _rand(36)
    v["utf16_password"] = "U16-" + _rand(24)
    v["kube_token"] = _rand(48, string.ascii_letters + string.digits + "-_")
    v["k8s_github"] = "ghp_" + _rand(36)
    v["elf_gitlab"] = "glpat-" + _rand(20)
    v["pyc_dockerhub"] = "dckr_pat_" + _rand(27)
    v["sqlite_stripe"] = "sk_live_" + _rand(32)
    v["zip_sendgrid"] = f"SG.{_rand(22)}.{_rand(43)}"
    jar = zip_of(
        {
            "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\n",
            "BOOT-INF/classes/application.yml": f"github:\n  token: {v['jar_github']}\n".encode(),
        }
    )
    (ctx / "app.war").write_bytes(zip_of({"WEB-INF/lib/app.jar": jar, "index.html": b"<html></html>\n"}))
    (ctx / "bundle.tgz").write_bytes(
        compress(tar_of({"./bundle/.env": f"SLACK_BOT_TOKEN={v['tgz_slack']}\n".encode()}), "gzip")
    )
    (ctx / "build.log.gz").write_bytes(
        gzip.compress(f"step 1/3\nnpm config set //registry.npmjs.org/:_authToken={v['log_npm']}\ndone\n".encode())
    )
    v["bz2_gitlab"] = "glrt-" + _rand(24)
    v["xz_huggingface"] = "hf_" + _rand(34, string.ascii_letters)
    v["zst_openai"] = f"sk-proj-{_rand(24)}T3BlbkFJ{_rand(24)}"
    v["whl_pypi"] = "pypi-AgEIcHlwaS5vcmc" + _rand(70)
    (ctx / "dump.sql.bz2").write_bytes(bz2.compress(f"INSERT INTO t VALUES ('{v['bz2_gitlab']}');\n".encode()))
    (ctx / "notes.txt.xz").write_bytes(lzma.compress(f"HF_TOKEN={v['xz_huggingface']}\n".encode()))
    (ctx / "trace.zst").write_bytes(zstandard.ZstdCompressor().compress(f"key {v['zst_openai']}\n".encode()))
    (ctx / "app-1.0-py3-none-any.whl").write_bytes(zip_of({"app/settings.py": f"PYPI = {v['whl_pypi']!r}\n".encode()}))
    (ctx / "creds-utf16.txt").write_bytes(f"service=db\r\npassword={v['utf16_password']}\r\n".encode("utf-16"))
    key = pem_key()
    (ctx / "kubeconfig").write_text(
        "apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n"
        f"    client-key-data: {base64.b64encode(key.encode()).decode()}\n    token: {v['kube_token']}\n"
    )
    (ctx / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: gh\ntype: Opaque\ndata:\n"
        f"  token: {base64.b64encode(v['k8s_github'].encode()).decode()}\n"
    )
    c_source = (
        "#include <stdio.h>\n"
        f'static const char *token = "{v["elf_gitlab"]}";\n'
        "int main(void) { puts(token); return 0; }\n"
    )
    subprocess.run(
        ["gcc", "-O0", "-x", "c", "-", "-o", str(ctx / "tool")],
        input=c_source.encode(),
        check=True,
        capture_output=True,
    )
    module = workdir / "settings.py"
    module.write_text(f"DOCKERHUB_TOKEN = {v['pyc_dockerhub']!r}\n")
    py_compile.compile(str(module), cfile=str(ctx / "settings.cpython-311.pyc"), doraise=True)
    (ctx / "app.db").unlink(missing_ok=True)
    db = sqlite3.connect(ctx / "app.db")
    db.execute("create table config (key text, value text)")
    db.execute("insert into config values (?, ?)", ("stripe", v["sqlite_stripe"]))
    db.commit()
    db.close()
    (ctx / "old.zip").write_bytes(zip_of({"sendgrid.txt": f"SENDGRID_API_KEY={v['zip_sendgrid']}\n".encode()}))
    docker_cli("build", "--network", "none", "-q", "-t", tag, str(ctx))
    return img
