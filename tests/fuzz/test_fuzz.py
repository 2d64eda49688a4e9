"""Property-based fuzzing of every parser that reads attacker-controlled bytes.

Each target starts from valid input and mutates it (flipped bytes, cut ends, random JSON). The
property: the scanner returns a result or raises one of its own errors, never anything else, and
never hangs.  LEAKSCAN_FUZZ_EXAMPLES sets the examples per target (CI runs the default).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import os
import tarfile
import zipfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner import ScanOptions, scan_image
from scanner.detectors import ContentScanner, build_detectors
from scanner.errors import LeakscanError
from scanner.layers.archive import Archive, BlobRecord, resolve
from scanner.layers.nested import FileScanner
from scanner.layers.walk import LayerWalker
from scanner.sources import TarballSource
from tests.support.tars import compress, docker_archive, layer_tar

EXAMPLES = int(os.environ.get("LEAKSCAN_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

_zip = io.BytesIO()
with zipfile.ZipFile(_zip, "w") as _zf:
    _zf.writestr("a/b.properties", b"password=ghp_" + b"Zq8w" * 9)
LAYER = layer_tar(
    [
        ("etc/", "dir"),
        ("etc/app.conf", b"token=ghp_" + b"Zq8w" * 9 + b"\n"),
        ("etc/link", ("hard", "etc/app.conf")),
        ("etc/.wh.gone", b""),
        ("opt/app.jar", _zip.getvalue()),
        ("var/log.gz", gzip.compress(b"x" * 2000)),
        ("s", ("sym", "/etc/passwd")),
    ]
)
ARCHIVE = docker_archive([LAYER, compress(layer_tar([("b", b"y" * 3000)]), "gzip")])


def mutate(data: bytes, edits: list[tuple[int, int]], cut: int | None) -> bytes:
    out = bytearray(data)
    for pos, value in edits:
        out[pos % len(out)] = value
    return bytes(out[: cut % (len(out) + 1)] if cut is not None else out)


EDITS = st.lists(st.tuples(st.integers(min_value=0), st.integers(min_value=0, max_value=255)), max_size=12)
CUT = st.none() | st.integers(min_value=0)


def walker() -> LayerWalker:
    return LayerWalker(ContentScanner(build_detectors([])))


@FUZZ
@given(edits=EDITS, cut=CUT, kind=st.sampled_from(["none", "gzip", "zstd"]))
def test_layer_walker(edits: list[tuple[int, int]], cut: int | None, kind: str) -> None:
    blob = mutate(compress(LAYER, kind), edits, cut)
    scan = walker().walk(io.BytesIO(blob))
    assert scan.size >= 0


@FUZZ
@given(edits=EDITS, cut=CUT)
def test_archive(edits: list[tuple[int, int]], cut: int | None, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    scan_archive_bytes(mutate(ARCHIVE, edits, cut), tmp_path_factory)


def scan_archive_bytes(data: bytes, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """The property of every archive target: a report, or one of leakscan's own errors."""
    path = tmp_path_factory.mktemp("fuzz") / "a.tar"
    path.write_bytes(data)
    try:
        report = scan_image(TarballSource(str(path)), ScanOptions())
    except LeakscanError:
        return
    assert report.images is not None


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Config",
                    "Layers",
                    "RepoTags",
                    "manifests",
                    "digest",
                    "mediaType",
                    "layers",
                    "config",
                    "annotations",
                    "platform",
                    "history",
                    "rootfs",
                    "diff_ids",
                    "Env",
                    "Labels",
                    "created_by",
                    "empty_layer",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@FUZZ
@given(manifest=JSON, index=JSON)
def test_manifest_and_index_json(manifest: object, index: object) -> None:
    archive = Archive()
    archive.records["manifest.json"] = BlobRecord("manifest.json", 0, data=json.dumps(manifest).encode())
    archive.records["index.json"] = BlobRecord("index.json", 0, data=json.dumps(index).encode())
    with contextlib.suppress(LeakscanError):
        resolve(archive)


@FUZZ
@given(
    prefix=st.sampled_from([b"PK\x03\x04", b"\x1f\x8b\x08", b"\x28\xb5\x2f\xfd", b"BZh", b"\xfd7zXZ\x00", b""]),
    body=st.binary(max_size=2000),
)
def test_nested_file_scanner(prefix: bytes, body: bytes) -> None:
    _hits, _skips, count = FileScanner(ContentScanner(build_detectors([]))).scan(io.BytesIO(prefix + body), "f")
    assert count >= 0


def test_deep_json_is_a_format_error() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    archive = Archive()
    archive.records["manifest.json"] = BlobRecord("manifest.json", 0, data=deep)
    try:
        resolve(archive)
    except LeakscanError as exc:
        assert "malformed JSON" in exc.message
    else:
        raise AssertionError("deeply nested JSON must be refused")


def test_member_names_with_invalid_utf8(tmp_path) -> None:  # type: ignore[no-untyped-def]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        info = tarfile.TarInfo("caf\xe9/\udcff.txt".encode("utf-8", "surrogateescape").decode("latin-1"))
        data = b"token=ghp_" + b"Zq8w" * 9
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    scan = walker().walk(io.BytesIO(buf.getvalue()))
    assert scan.error is None and scan.files
    json.dumps([f.path for f in scan.files])  # reportable


# Inputs that crashed the scanner once (found by the targets above), kept as regressions.
CRASHES = [
    b"\xfd7zXZ\x00" + b"\x00" * 12,  # corrupt .xz: lzma.LZMAError escaped the nested scanner
    b"\x28\xb5\x2f\xfd" + b"\xff" * 12,  # corrupt .zst
]


def test_crash_corpus() -> None:
    for data in CRASHES:
        _hits, skips, _ = FileScanner(ContentScanner(build_detectors([]))).scan(io.BytesIO(data), "f")
        assert skips, "a file that cannot be opened is a reported skip"


def _oci_tar(index: object, manifest: object, config: object) -> bytes:
    """An OCI layout tar whose index points at ``manifest`` and whose manifest points at ``config``."""
    config_body = json.dumps(config).encode()
    config_digest = "sha256:" + hashlib.sha256(config_body).hexdigest()
    if isinstance(manifest, dict) and isinstance(manifest.get("config"), dict):
        manifest["config"]["digest"] = config_digest
    manifest_body = json.dumps(manifest).encode()
    manifest_digest = "sha256:" + hashlib.sha256(manifest_body).hexdigest()
    if isinstance(index, dict) and isinstance(index.get("manifests"), list):
        for entry in index["manifests"][:1]:
            if isinstance(entry, dict):
                entry["digest"] = manifest_digest
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (
            ("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
            ("index.json", json.dumps(index).encode()),
            (f"blobs/sha256/{manifest_digest[7:]}", manifest_body),
            (f"blobs/sha256/{config_digest[7:]}", config_body),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@FUZZ
@given(index=JSON, manifest=JSON, config=JSON)
def test_oci_index_manifest_and_config(index: object, manifest: object, config: object, tmp_path_factory) -> None:  # type: ignore[no-untyped-def]
    """The documents of an OCI layout, linked by real digests so that each is reached."""
    if isinstance(index, dict):
        index.setdefault("manifests", [{}])
    if isinstance(manifest, dict):
        manifest.setdefault("config", {})
    scan_archive_bytes(_oci_tar(index, manifest, config), tmp_path_factory)


# OCI documents that crashed the resolver once (found by the target above): each is now an error
# that makes the scan incomplete, never an exception and never an image with its layers dropped.
OCI_CRASHES = [
    ({"manifests": [{}]}, {"config": {}, "layers": True}, {}),
    ({"manifests": [{}]}, {"config": {}, "layers": [], "annotations": ["x"]}, {}),
    ({"manifests": [{"annotations": ["y"], "platform": "linux"}]}, {"config": {}, "layers": []}, {}),
    ({"manifests": [{}]}, {"config": {}, "layers": []}, {"rootfs": [1], "history": 7}),
]


def test_oci_crash_corpus(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for n, (index, manifest, config) in enumerate(OCI_CRASHES):
        path = tmp_path / f"{n}.tar"
        path.write_bytes(_oci_tar(index, manifest, config))
        report = scan_image(TarballSource(str(path)), ScanOptions())
        assert not report.complete, (index, manifest, config)
