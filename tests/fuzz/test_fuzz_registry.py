"""Fuzzing the registry source's manifest and index handling: what a hostile registry, or a hostile
image pushed to a watched registry, serves. Documents are random JSON built from the OCI keys, with
real digests of the other documents so that indexes point at manifests and manifests at configs.
The property: a plan, or one of leakscan's own errors; never another exception."""

from __future__ import annotations

import hashlib
import io
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from scanner.errors import LeakscanError
from scanner.sources.registry import RegistryOptions, RegistrySource
from tests.fuzz.test_fuzz import FUZZ

BLOB = b'{"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}'
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
KEYS = ["schemaVersion", "mediaType", "manifests", "layers", "config", "digest", "size", "platform", "os",
        "architecture", "variant", "annotations", "urls", "vnd.docker.reference.type",
        "vnd.docker.reference.digest", "subject", "artifactType"]  # fmt: skip
LEAF = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False)
    | st.sampled_from(
        [
            BLOB_DIGEST,
            "sha256:" + "0" * 64,
            "sha256:short",
            "linux",
            "amd64",
            "arm64",
            "v8",
            "attestation-manifest",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "",
            len(BLOB),
        ]
    )
    | st.text(max_size=12)
)
JSON = st.recursive(
    LEAF,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=7),
    max_leaves=40,
)


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.io = io.BytesIO(data)

    def read(self, n: int | None = None, decode_content: bool = False) -> bytes:
        return self.io.read(-1 if n is None else n)


class _Resp:
    def __init__(self, data: bytes) -> None:
        self.raw = _Raw(data)

    def close(self) -> None:
        pass


class FakeClient:
    """The Client surface the planner uses: manifests by tag or digest, blobs by digest."""

    host = "fuzz.example"

    def __init__(self, top: bytes, top_type: str, others: list[bytes]) -> None:
        self.top, self.top_type = top, top_type
        self.docs = {"sha256:" + hashlib.sha256(d).hexdigest(): d for d in others}
        self.docs[BLOB_DIGEST] = BLOB

    def manifest(self, reference: str) -> tuple[bytes, str, str]:
        body = self.top if reference == "v1" else self.docs.get(reference)
        if body is None:
            raise LeakscanError(f"manifest {reference} not found")
        json.loads(body)  # the real client refuses a body that is not JSON with a SourceError
        media = self.top_type if reference == "v1" else ""
        return body, media, "sha256:" + hashlib.sha256(body).hexdigest()

    def blob(self, digest: str) -> _Resp:
        if digest not in self.docs:
            raise LeakscanError(f"blob {digest} not found")
        return _Resp(self.docs[digest])


@FUZZ
@given(
    top=JSON,
    others=st.lists(JSON, max_size=3),
    top_type=st.sampled_from(
        ["", "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json", "text/html"]
    ),
    all_platforms=st.booleans(),
)
def test_manifest_planning(top: Any, others: list[Any], top_type: str, all_platforms: bool) -> None:
    bodies = [json.dumps(o).encode() for o in others]
    # an index whose entries point at the other documents, so that the walk goes deeper
    if isinstance(top, dict) and isinstance(top.get("manifests"), list):
        for body, entry in zip(bodies, top["manifests"], strict=False):
            if isinstance(entry, dict):
                entry["digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
    client = FakeClient(json.dumps(top).encode(), top_type, bodies)
    source = RegistrySource("fuzz.example/a/b:v1", RegistryOptions(all_platforms=all_platforms))
    try:
        plan = source._plan(client)  # type: ignore[arg-type]
    except LeakscanError:
        return
    assert all(d.startswith("sha256:") for d, _ in plan.layers)


# Documents that crashed the planner once (found by the target above), kept as regressions; each
# must now be one of leakscan's errors, never an image with fewer layers than it claims.
CRASHES: list[tuple[Any, str]] = [
    ({"schemaVersion": None, "layers": True}, ""),  # TypeError: 'bool' object is not iterable
    ({"manifests": True}, ""),
    ({"manifests": [{"digest": BLOB_DIGEST, "annotations": ["x"]}]}, ""),  # AttributeError on a list
    ({"manifests": [{"digest": BLOB_DIGEST, "platform": "linux/amd64"}]}, ""),
    ({"layers": [1, {"digest": BLOB_DIGEST}]}, ""),  # was skipped silently
    ({"manifests": [{"mediaType": "x"}]}, "application/vnd.oci.image.index.v1+json"),  # was skipped silently
]


def test_registry_crash_corpus() -> None:
    for doc, media in CRASHES:
        client = FakeClient(json.dumps(doc).encode(), media, [])
        try:
            RegistrySource("fuzz.example/a/b:v1")._plan(client)  # type: ignore[arg-type]
        except LeakscanError as exc:
            assert exc.message.startswith("registry")
        else:
            raise AssertionError(f"accepted: {doc}")
