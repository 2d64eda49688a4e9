"""The registry source against a real registry (Debian's docker-registry, distribution 2.8, on
loopback): images pushed by the real engine (docker push) and by skopeo (a multi-platform index
with zstd layers), anonymous and htpasswd access with credentials from flags, the Docker config
and a credential helper, platform selection, and a corrupted blob."""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.expected import check_leaky_run
from tests.support.images import LeakyImage
from tests.support.registry import Registry, multiarch_layout, registry_available, run_registry
from tests.support.services import docker_cli, require, skopeo
from tests.support.token_server import token_server

pytestmark = pytest.mark.engine

USER, PASSWORD = "ci", "pw-" + secrets.token_urlsafe(18)
GH = "ghp_" + secrets.token_hex(18)


@pytest.fixture(scope="module")
def registry(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require("docker-registry", *registry_available())
    with run_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="module")
def auth_registry(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require("docker-registry", *registry_available())
    with run_registry(tmp_path_factory.mktemp("auth-registry"), users={USER: PASSWORD}) as reg:
        yield reg


def _push(leaky: LeakyImage, reg: Registry, repo: str, config_dir: Path | None = None) -> str:
    """docker push (the real engine); returns the manifest digest. The local tag is removed, so a
    scan by name can only be served by the registry."""
    target = f"{reg.host}/{repo}"
    docker_cli("tag", leaky.tag, target)
    env = {"DOCKER_CONFIG": str(config_dir)} if config_dir else None
    out = docker_cli("push", target, env=env)
    docker_cli("rmi", target)
    digest = next(w for w in out.split() if w.startswith("sha256:"))
    return digest


def _scan(
    target: str,
    *args: str,
    env: dict[str, str] | None = None,
    leaky: LeakyImage | None = None,
    cached: bool = False,
) -> subprocess.CompletedProcess[str]:
    flags: list[str] = []
    if leaky is not None:
        flags = [a for flag in leaky.secret_flags for a in ("--secret", flag)]
        flags += [a for name in leaky.env for a in ("--secret", f"id={name}")]
    return subprocess.run(
        [sys.executable, "-m", "scanner", target, *flags, *args, "--format", "json", "-q"]
        + ([] if cached else ["--no-cache"]),
        capture_output=True,
        text=True,
        env={**os.environ, **(leaky.env if leaky else {}), **(env or {})},
        timeout=300,
    )


def check_leaky(proc: subprocess.CompletedProcess[str], leaky: LeakyImage) -> dict[str, Any]:
    doc = check_leaky_run(proc, leaky)
    assert doc["source"]["kind"] == "registry"
    return doc


def test_docker_push_then_scan_by_name_docker_url_and_digest(leaky: LeakyImage, registry: Registry) -> None:
    digest = _push(leaky, registry, "team/leaky:1")
    for target in (f"{registry.host}/team/leaky:1", f"docker://{registry.host}/team/leaky:1"):
        doc = check_leaky(_scan(target, leaky=leaky), leaky)
        assert doc["images"][0]["manifest_digest"] == digest  # type: ignore[index]
    check_leaky(_scan(f"{registry.host}/team/leaky@{digest}", leaky=leaky), leaky)


def test_a_local_image_wins_over_the_registry(leaky: LeakyImage, registry: Registry) -> None:
    """The CI gate scans what was just built, before the push: a name the engine has is the engine's."""
    _push(leaky, registry, "team/local:1")
    docker_cli("tag", leaky.tag, f"{registry.host}/team/local:1")
    try:
        doc = json.loads(_scan(f"{registry.host}/team/local:1").stdout)
        assert doc["source"]["kind"] == "docker-daemon"
    finally:
        docker_cli("rmi", f"{registry.host}/team/local:1")


def test_missing_tag_and_repository_are_clear_errors(registry: Registry) -> None:
    proc = _scan(f"{registry.host}/team/nothing:here")
    assert proc.returncode == 3 and "not found" in proc.stderr and "Traceback" not in proc.stderr


def test_htpasswd_auth_from_flags_docker_config_and_credential_helper(
    leaky: LeakyImage, auth_registry: Registry, tmp_path: Path
) -> None:
    login = tmp_path / "login"
    login.mkdir()
    docker_cli(
        "--config", str(login), "login", "-u", USER, "--password-stdin", auth_registry.host, input=PASSWORD.encode()
    )
    _push(leaky, auth_registry, "team/private:1", config_dir=login)
    target = f"{auth_registry.host}/team/private:1"
    empty = tmp_path / "empty"
    empty.mkdir()

    anonymous = _scan(target, env={"DOCKER_CONFIG": str(empty)})
    assert anonymous.returncode == 3 and "denied" in anonymous.stderr

    by_flag = _scan(
        target, "--registry-username", USER, env={"DOCKER_CONFIG": str(empty), "LEAKSCAN_REGISTRY_PASSWORD": PASSWORD}
    )
    assert by_flag.returncode == 1, by_flag.stderr[-1500:]
    wrong = _scan(
        target, "--registry-username", USER, env={"DOCKER_CONFIG": str(empty), "LEAKSCAN_REGISTRY_PASSWORD": "nope"}
    )
    assert wrong.returncode == 3

    auths = tmp_path / "auths"
    auths.mkdir()
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (auths / "config.json").write_text(json.dumps({"auths": {auth_registry.host: {"auth": pair}}}))
    check_leaky(_scan(target, env={"DOCKER_CONFIG": str(auths)}, leaky=leaky), leaky)

    helpers = tmp_path / "helpers"
    helpers.mkdir()
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-leakscantest"
    helper.write_text(
        f'#!/bin/sh\nread host\n[ "$host" = "{auth_registry.host}" ] || exit 1\n'
        f'printf \'{{"Username":"{USER}","Secret":"{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    (helpers / "config.json").write_text(json.dumps({"credHelpers": {auth_registry.host: "leakscantest"}}))
    env = {"DOCKER_CONFIG": str(helpers), "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    proc = _scan(target, env=env)
    assert proc.returncode == 1, proc.stderr[-1500:]
    for out in (anonymous, by_flag, wrong, proc):
        assert PASSWORD not in out.stdout + out.stderr


def test_token_auth_registry(leaky: LeakyImage, tmp_path: Path) -> None:
    """distribution's token auth: the registry answers 401 with a Bearer challenge, leakscan gets a
    JWT from the realm with the Docker config's credentials (and only then sees the image)."""
    require("docker-registry", *registry_available())
    with (
        token_server(tmp_path / "token", USER, PASSWORD) as tokens,
        run_registry(tmp_path / "registry", token=(tokens.realm, tokens.cert)) as reg,
    ):
        login = tmp_path / "login"
        login.mkdir()
        docker_cli("--config", str(login), "login", "-u", USER, "--password-stdin", reg.host, input=PASSWORD.encode())
        _push(leaky, reg, "team/tokened:1", config_dir=login)
        target = f"{reg.host}/team/tokened:1"
        before = len(tokens.requests)
        check_leaky(_scan(target, env={"DOCKER_CONFIG": str(login)}, leaky=leaky), leaky)
        ours = tokens.requests[before:]
        assert ours and all("scope=repository%3Ateam%2Ftokened%3Apull" in path for path, _ in ours)
        assert all(auth and auth.startswith("Basic ") for _, auth in ours)
        empty = tmp_path / "empty"
        empty.mkdir()
        anonymous = _scan(target, env={"DOCKER_CONFIG": str(empty)})
        assert anonymous.returncode == 3 and "denied" in anonymous.stderr


def test_skopeo_multiplatform_index_with_zstd_layers(registry: Registry, tmp_path: Path) -> None:
    layout = multiarch_layout(
        tmp_path / "layout",
        {
            "linux/amd64": {"app/amd64.env": f"GITHUB_TOKEN={GH}\n".encode()},
            "linux/arm64": {"app/arm64.env": b"DEBUG=1\n"},
        },
    )
    target = f"{registry.host}/team/multi:1"
    skopeo(
        "copy",
        "--all",
        "--dest-compress-format",
        "zstd",
        "--dest-tls-verify=false",
        f"oci:{layout}:multi",
        f"docker://{target}",
    )

    def paths(*args: str) -> dict[str, tuple[str, ...]]:
        proc = _scan(target, *args)
        assert GH not in proc.stdout + proc.stderr
        doc = json.loads(proc.stdout)
        assert doc["summary"]["complete"] is True
        return {
            img["platform"]: tuple(sorted({f["path"] for layer in img["layers"] for f in layer["findings"]}))
            + tuple(layer["compression"] for layer in img["layers"])
            for img in doc["images"]
        }

    assert paths() == {"linux/amd64": ("app/amd64.env", "zstd")}
    assert paths("--platform", "linux/arm64") == {"linux/arm64": ("zstd",)}
    assert paths("--all-platforms") == {"linux/amd64": ("app/amd64.env", "zstd"), "linux/arm64": ("zstd",)}
    proc = _scan(target, "--platform", "linux/s390x")
    assert proc.returncode == 3 and "linux/amd64, linux/arm64" in proc.stderr


def test_a_zip_with_a_bomb_member_still_reports_the_token_in_its_next_member(
    registry: Registry, tmp_path: Path
) -> None:
    """Issue 21: a decompression bomb inside an archive costs only itself.  The sixth member of the
    zip expands past its budget (a limit skip: the run is incomplete, exit 3); the seventh, listed
    in the central directory, is scanned and its token reported."""
    import io
    import zipfile

    import zstandard

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(5):
            zf.writestr(f"docs/{i}.txt", f"nothing to see {i}\n")
        zf.writestr("data/bomb.bin.zst", zstandard.ZstdCompressor().compress(bytes(200 << 20)))
        zf.writestr("etc/app.env", f"GITHUB_TOKEN={GH}\n")
    layout = multiarch_layout(tmp_path / "layout", {"linux/amd64": {"app/bundle.zip": buf.getvalue()}})
    target = f"{registry.host}/team/bomb:1"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{target}")
    proc = _scan(target)
    assert GH not in proc.stdout + proc.stderr
    assert proc.returncode == 3, proc.stderr[-1500:]
    doc = json.loads(proc.stdout)
    assert doc["summary"]["complete"] is False
    layers = doc["images"][0]["layers"]
    found = {(f["path"], f["rule_id"]) for layer in layers for f in layer["findings"]}
    assert any(path == "app/bundle.zip!/etc/app.env" and "github" in rule for path, rule in found), found
    skips = [s for layer in layers for s in layer["files_skipped"]]
    assert [s["path"] for s in skips if "decompression bomb" in s["reason"]] == ["app/bundle.zip!/data/bomb.bin.zst"]


def test_a_corrupted_blob_is_an_error_not_a_clean_scan(leaky: LeakyImage, registry: Registry) -> None:
    digest = _push(leaky, registry, "team/corrupt:1")
    manifest = registry.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data"
    layer = json.loads(manifest.read_text())["layers"][-1]["digest"]  # the last layer: app/.env
    blob = registry.root / "docker/registry/v2/blobs/sha256" / layer[7:9] / layer[7:] / "data"
    original = blob.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    try:
        proc = _scan(f"{registry.host}/team/corrupt:1", leaky=leaky)
    finally:
        blob.write_bytes(original)  # the blob is shared by every repository that pushed this layer
    assert proc.returncode == 3, proc.stdout[-1500:]
    assert "does not match" in proc.stderr or "does not match" in proc.stdout


def test_a_rescan_takes_cached_layers_without_downloading_them(
    leaky: LeakyImage, registry: Registry, tmp_path: Path
) -> None:
    """A registry blob is fetched by its digest and checked against it, so a layer result cached
    under that digest stands for it: the rescan must not download a layer at all.  Proven by
    deleting the layer blobs from the registry's storage between the scans."""
    digest = _push(leaky, registry, "team/rescan:1")
    target, cache = f"{registry.host}/team/rescan:1", tmp_path / "cache"
    first = check_leaky(_scan(target, "--cache-dir", str(cache), leaky=leaky, cached=True), leaky)
    manifest = json.loads(
        (registry.root / "docker/registry/v2/blobs/sha256" / digest[7:9] / digest[7:] / "data").read_text()
    )
    for layer in manifest["layers"]:
        blob = registry.root / "docker/registry/v2/blobs/sha256" / layer["digest"][7:9] / layer["digest"][7:] / "data"
        blob.unlink()
    again = check_leaky(_scan(target, "--cache-dir", str(cache), leaky=leaky, cached=True), leaky)
    assert again["summary"]["cached_layers"] == len(manifest["layers"]) and first["summary"]["cached_layers"] == 0
    strip = lambda doc: json.dumps({k: v for k, v in doc.items() if k != "summary"}, sort_keys=True)  # noqa: E731
    assert strip(again) == strip(first)
    # with an empty cache the same scan has to download the layers, and they are gone: an error
    fresh = _scan(target, "--cache-dir", str(tmp_path / "empty"), leaky=leaky, cached=True)
    assert fresh.returncode == 3, fresh.stdout[-1500:]
