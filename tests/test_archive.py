"""Archive formats and resolution, on the committed sample (built by a real engine) and on
hand-made archives for the malformed cases."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.detectors import SecretSpec, load_known_values
from scanner.errors import FormatError, SourceError
from scanner.models import ScanReport, Status
from scanner.sources import OciLayoutSource, TarballSource, open_source
from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN
from tests.support.tars import compress, docker_archive, layer_tar

SAMPLE_FORMATS = {
    "docker-legacy": "docker-archive (legacy, Docker <= 24)",
    "docker-legacy-gzip": "docker-archive (legacy, Docker <= 24)",
    "podman-docker-archive": "docker-archive (podman)",
    "oci-gzip": "oci",
    "oci-zstd": "oci",
    "docker25": "docker-archive (OCI layout, Docker 25+)",
    "docker25-gzip": "docker-archive (OCI layout, Docker 25+)",
    "containerd": "docker-archive (containerd image store)",
}


def sample_options() -> ScanOptions:
    specs = [SecretSpec.parse(f"id=demo,src={SAMPLE / 'demo-secret.txt'}"), SecretSpec.parse("id=DEPLOY_TOKEN")]
    return ScanOptions(known=tuple(load_known_values(specs, environ={"DEPLOY_TOKEN": SAMPLE_DEPLOY_TOKEN})))


@pytest.mark.parametrize("fmt", sorted(SAMPLE_FORMATS))
def test_sample_in_every_format_gives_the_same_per_layer_report(fmt: str, sample_archives: dict[str, Path]) -> None:
    report = scan_image(open_source(str(sample_archives[fmt])), sample_options())
    assert report.archive_format == SAMPLE_FORMATS[fmt]
    assert report.complete, report.problems
    (image,) = report.images
    assert image.platform == "linux/amd64"
    assert len(image.layers) == 4
    assert all(layer.diff_id and layer.diff_id.startswith("sha256:") for layer in image.layers)
    by_layer = {
        (f.layer_index, f.path, f.rule_id, f.encoding, f.status, f.hidden_by_layer) for f in image.findings if f.path
    }
    assert (1, "root/.aws/credentials", "aws-access-key-id", None, Status.PRESENT, None) in by_layer
    assert (2, "tmp/demo-token", "known-secret", "raw", Status.DELETED, 3) in by_layer
    assert (2, "etc/demo-token.b64", "known-secret", "base64", Status.PRESENT, None) in by_layer
    assert (2, "etc/deploy.conf", "known-secret", "raw", Status.PRESENT, None) in by_layer
    assert "COPY demo-credentials" in (image.layers[1].created_by or "")
    fields = {(f.field, f.rule_id) for f in image.metadata_findings}
    assert ("config.Env[1]", "dotenv-secret") in fields  # ENV DEMO_PASSWORD=..., whatever its entropy
    assert any(fld and fld.startswith("history[") and rule == "known-secret" for fld, rule in fields)
    if fmt == "containerd":  # the attestation's build args are metadata too
        assert any(fld and fld.startswith("attestation[") and rule == "known-secret" for fld, rule in fields)
        assert any("linux/arm64/v8" in w and "not in the archive" in w for w in report.warnings)
        assert image.manifest_digest is not None


def test_compressed_digest_is_reported_when_layers_are_compressed(sample_archives: dict[str, Path]) -> None:
    report = scan_image(open_source(str(sample_archives["oci-zstd"])))
    layer = report.images[0].layers[0]
    assert layer.compression == "zstd"
    assert layer.digest != layer.diff_id
    assert layer.media_type == "application/vnd.oci.image.layer.v1.tar+zstd"


def _scan_bytes(data: bytes, tmp_path: Path, options: ScanOptions | None = None) -> ScanReport:
    path = tmp_path / "a.tar"
    path.write_bytes(data)
    return scan_image(TarballSource(str(path)), options or ScanOptions())


SECRET = b"archive-test-secret-7391"
OPTS = ScanOptions(known=(load_known_values([SecretSpec.parse("id=S")], environ={"S": SECRET.decode()})))


def test_multi_image_archive_scans_every_image(tmp_path: Path) -> None:
    l1 = layer_tar([("a", SECRET)])
    l2 = layer_tar([("b", b"clean")])
    one = docker_archive([l1], tags=["one:1"])
    two = docker_archive([l2], tags=["two:1"])
    members: dict[str, bytes] = {}
    manifests = []
    for data in (one, two):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for m in tar.getmembers():
                f = tar.extractfile(m)
                assert f is not None
                if m.name == "manifest.json":
                    manifests += json.loads(f.read())
                else:
                    members[m.name] = f.read()
    members["manifest.json"] = json.dumps(manifests).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    report = _scan_bytes(buf.getvalue(), tmp_path, OPTS)
    assert [img.name for img in report.images] == ["one:1", "two:1"]
    assert [len(img.findings) for img in report.images] == [1, 0]


def test_missing_layer_blob_is_reported_and_makes_the_scan_incomplete(tmp_path: Path) -> None:
    data = docker_archive([layer_tar([("a", b"x")]), layer_tar([("b", SECRET)])], drop={0})
    report = _scan_bytes(data, tmp_path, OPTS)
    layers = report.images[0].layers
    assert not layers[0].scanned and "missing" in layers[0].skips[0].reason
    assert layers[1].scanned and len(layers[1].findings) == 1
    assert not report.complete


def test_truncated_archive_is_incomplete_never_clean(tmp_path: Path) -> None:
    data = docker_archive([layer_tar([("a", b"x" * 5000)]), layer_tar([("b", b"y" * 5000)])])
    with pytest.raises(FormatError, match=r"could not be read to its end|no manifest"):
        _scan_bytes(data[: len(data) // 2], tmp_path)


def test_corrupt_layer_in_archive_is_incomplete(tmp_path: Path) -> None:
    good = compress(layer_tar([("a", SECRET + b"\n" + b"q" * 20000)]), "gzip")
    bad = good[:-40] + bytes(40)
    data = docker_archive([bad])
    report = _scan_bytes(data, tmp_path, OPTS)
    assert not report.complete
    assert report.images[0].layers[0].error is not None


@pytest.mark.parametrize(
    ("manifest", "message"),
    [(b"{not json", "malformed JSON"), (json.dumps({"a": 1}).encode(), "not a list")],
)
def test_malformed_manifest_is_a_clear_error(tmp_path: Path, manifest: bytes, message: str) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    with pytest.raises(FormatError, match=message):
        _scan_bytes(buf.getvalue(), tmp_path)


def test_history_that_does_not_line_up_is_a_warning_not_a_misattribution(tmp_path: Path) -> None:
    data = docker_archive([layer_tar([("a", b"x")]), layer_tar([("b", b"y")])], history=[{"created_by": "only one"}])
    report = _scan_bytes(data, tmp_path)
    assert [layer.created_by for layer in report.images[0].layers] == [None, None]
    assert any("history has 1 layer entries for 2 layers" in w for w in report.images[0].warnings)


def test_diff_id_mismatch_is_an_error(tmp_path: Path) -> None:
    layers = [layer_tar([("a", b"x")])]
    data = docker_archive(layers, config_extra={"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "0" * 64]}})
    report = _scan_bytes(data, tmp_path)
    assert not report.complete
    assert any("diff_id" in p for p in report.problems)


def test_not_an_archive(tmp_path: Path) -> None:
    with pytest.raises((SourceError, FormatError)):
        _scan_bytes(b"just some text, not a tar at all" * 40, tmp_path)
    with pytest.raises(FormatError, match=r"no manifest\.json or index\.json"):
        _scan_bytes(layer_tar([("random", b"file")]), tmp_path)


def test_outer_gzip_and_hardlinked_secret_across_layers(tmp_path: Path) -> None:
    data = docker_archive([layer_tar([("etc/token", SECRET)]), layer_tar([("usr/link", ("hard", "etc/token"))])])
    report = _scan_bytes(gzip.compress(data), tmp_path, OPTS)
    findings = {(f.layer_index, f.path, f.link_target) for f in report.findings}
    assert findings == {(0, "etc/token", None), (1, "usr/link", "etc/token")}


def test_oci_layout_dir_symlink_outside_is_not_followed(tmp_path: Path, sample_archives: dict[str, Path]) -> None:
    layout = tmp_path / "layout"
    with tarfile.open(sample_archives["oci-zstd"]) as tar:
        tar.extractall(layout, filter="data")
    (layout / "evil").symlink_to("/etc/passwd")
    report = scan_image(OciLayoutSource(str(layout)))
    assert report.complete and len(report.images) == 1


@pytest.mark.parametrize(
    ("arg", "kind"),
    [
        ("docker-daemon:alpine:3", "docker-daemon"),
        ("alpine:3", "docker-daemon"),
        ("sha256:" + "a" * 64, "docker-daemon"),
    ],
)
def test_open_source_resolution(arg: str, kind: str) -> None:
    assert open_source(arg).kind == kind


def test_open_source_paths(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    path = sample_archives["oci-zstd"]
    assert open_source(str(path)).kind == "archive"
    assert open_source(f"oci-archive:{path}").kind == "archive"
    src = open_source(f"oci-archive:{path}:leakscan-sample:1")
    assert src.select == "leakscan-sample:1"
    assert open_source(str(tmp_path)).kind == "oci-layout"
    with pytest.raises(SourceError):
        open_source(f"docker-archive:{tmp_path / 'missing.tar'}")
    with pytest.raises(SourceError):
        open_source("./missing.tar")


def test_created_by_never_shows_build_arg_values_whatever_their_name(tmp_path: Path) -> None:
    history = [{"created_by": "RUN |2 OPAQUE_NAME=hunter2-not-flagged X=1 /bin/sh -c make", "comment": "buildkit"}]
    report = _scan_bytes(docker_archive([layer_tar([("a", b"x")])], history=history), tmp_path)
    shown = report.images[0].layers[0].created_by or ""
    assert shown == "RUN |2 OPAQUE_NAME=<redacted> X=<redacted> /bin/sh -c make"


@pytest.mark.parametrize("suffix", ["\n", "/x", ""])
def test_a_stray_member_is_scanned_unless_it_is_exactly_a_legacy_v1_name(tmp_path: Path, suffix: str) -> None:
    # <id>/json and <id>/VERSION (docker save's legacy per-layer metadata) are the only members
    # passed over; a name that only starts like one (a trailing newline: "$" accepts it) is read
    name = "a" * 64 + "/json" + suffix
    data = docker_archive([layer_tar([("b", b"clean")])], tags=["one:1"])
    buf = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(data)) as src, tarfile.open(fileobj=buf, mode="w") as out:
        for m in src.getmembers():
            out.addfile(m, src.extractfile(m))
        info = tarfile.TarInfo(name)
        body = json.dumps({"config": {"Env": [f"S={SECRET.decode()}"]}}).encode()
        info.size = len(body)
        out.addfile(info, io.BytesIO(body))
    report = _scan_bytes(buf.getvalue(), tmp_path, OPTS)
    found = [f for f in report.metadata_findings if f.rule_id == "known-secret"]
    assert len(found) == (0 if suffix == "" else 1)


def _token() -> str:
    import secrets
    import string

    return "ghp_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def test_an_env_value_the_config_still_holds_is_one_finding_naming_its_history_step(tmp_path: Path) -> None:
    """An ENV step puts its value in the config and in its history entry: one finding, the
    config's (with the ENV remedy), whose places name the history entry.  A value a later ENV
    cleared from the config, and one a RUN step's build arguments hold, stay findings of their own."""
    kept, cleared = _token(), _token()
    history = [
        {"created_by": "ADD file:abc in / "},
        {"created_by": f"ENV GITHUB_TOKEN={kept}", "comment": "buildkit.dockerfile.v0", "empty_layer": True},
        {"created_by": f"/bin/sh -c #(nop)  ENV OLD_TOKEN={cleared}", "empty_layer": True},
        {"created_by": "/bin/sh -c #(nop)  ENV OLD_TOKEN=", "empty_layer": True},
        {"created_by": f"RUN |1 GITHUB_TOKEN={kept} /bin/sh -c true # buildkit"},
    ]
    env = ["PATH=/usr/bin", f"GITHUB_TOKEN={kept}", "OLD_TOKEN="]
    archive = tmp_path / "env.tar"
    archive.write_bytes(
        docker_archive([layer_tar([]), layer_tar([])], history=history, config_extra={"config": {"Env": env}})
    )
    report = scan_image(open_source(str(archive)), ScanOptions())
    (image,) = report.images
    found = {f.field: f for f in image.metadata_findings if f.rule_id == "github-token"}
    assert set(found) == {"config.Env[1]", "history[2].created_by", "history[4].created_by"}
    assert found["config.Env[1]"].places == ("history[1].created_by",)
    assert found["history[2].created_by"].places == () and found["history[4].created_by"].places == ()
    assert found["config.Env[1]"].secret_fingerprint == found["history[4].created_by"].secret_fingerprint
    from scanner.report.remediation import origin

    assert origin(found["config.Env[1]"]) == "env"
