"""The layer cache: hits are verified, a change of rules or secrets is a miss, no value on disk."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.detectors import BUILTIN_RULES, RuleSet, SecretSpec, load_known_values
from scanner.sources import open_source
from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_SECRET
from tests.support.tars import docker_archive, layer_tar, sha


def _opts(cache: Path, **kw: object) -> ScanOptions:
    specs = [SecretSpec.parse(f"id=demo,src={SAMPLE / 'demo-secret.txt'}"), SecretSpec.parse("id=DEPLOY_TOKEN")]
    known = tuple(load_known_values(specs, environ={"DEPLOY_TOKEN": SAMPLE_DEPLOY_TOKEN}))
    return ScanOptions(known=known, cache_dir=cache, **kw)  # type: ignore[arg-type]


def _key(report):  # type: ignore[no-untyped-def]
    return sorted(
        ((f.layer_index or -1), f.path or "", f.field or "", f.rule_id, f.secret_sha256) for f in report.findings
    )


def test_rescan_hits_every_layer_and_gives_the_same_report(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    image = str(sample_archives["docker25"])
    first = scan_image(open_source(image), _opts(tmp_path))
    second = scan_image(open_source(image), _opts(tmp_path))
    assert first.cached_layers == 0
    assert second.cached_layers == len(second.images[0].layers) == 4
    assert _key(first) == _key(second) and second.complete
    # the same layers in another layout share the cache (podman names layers by diff_id)
    podman = scan_image(open_source(str(sample_archives["podman-docker-archive"])), _opts(tmp_path))
    assert podman.cached_layers == 4 and _key(podman) == _key(first)


def test_a_change_of_rules_or_secrets_is_a_miss(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    image = str(sample_archives["oci-zstd"])
    scan_image(open_source(image), _opts(tmp_path))
    fewer = RuleSet(tuple(r for r in BUILTIN_RULES if r.id != "aws-access-key-id"))
    assert scan_image(open_source(image), _opts(tmp_path, rules=fewer)).cached_layers == 0
    no_secrets = ScanOptions(cache_dir=tmp_path)
    assert scan_image(open_source(image), no_secrets).cached_layers == 0
    assert scan_image(open_source(image), _opts(tmp_path, archive_depth=1)).cached_layers == 0
    assert scan_image(open_source(image), _opts(tmp_path)).cached_layers == 4


def test_no_secret_value_reaches_the_cache(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    scan_image(open_source(str(sample_archives["oci-zstd"])), _opts(tmp_path))
    files = list(tmp_path.rglob("*.json"))
    assert files
    for f in files:
        text = f.read_text()
        assert SAMPLE_SECRET not in text and SAMPLE_DEPLOY_TOKEN not in text


def test_a_member_that_lies_about_its_digest_is_never_a_hit(tmp_path: Path) -> None:
    clean = layer_tar([("etc/motd", b"hello\n")])
    leaky = layer_tar([("etc/motd", b"ghp_" + b"Zq8w" * 9 + b"\n")])
    cache = tmp_path / "cache"
    archive = tmp_path / "clean.tar"
    archive.write_bytes(docker_archive([clean]))
    assert scan_image(open_source(str(archive)), ScanOptions(cache_dir=cache)).complete
    # same name (the clean layer's digest), other content
    data = io.BytesIO(docker_archive([clean]))
    out = io.BytesIO()
    with tarfile.open(fileobj=data) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == f"blobs/sha256/{sha(clean)[7:]}":
                body = leaky
            m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    forged = tmp_path / "forged.tar"
    forged.write_bytes(out.getvalue())
    report = scan_image(open_source(str(forged)), ScanOptions(cache_dir=cache))
    assert not report.complete
    assert any("does not match the digest" in p for p in report.problems)


def test_a_change_to_leakscan_s_code_is_a_cache_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner import cache

    before = cache.namespace({"rules": []})
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "another build of the detectors")
    assert cache.namespace({"rules": []}) != before
