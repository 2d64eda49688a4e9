"""Fuzzing the service's attacker-facing input: webhook bodies and Harbor scan requests.

Valid payloads of each sender are mutated (flipped bytes, cut ends) and random JSON is built with
the senders' own keys. The properties: every request gets a 2xx or a 4xx (never a 500 or a
crash), and a job is only ever created for the allow-listed registry."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

from scanner.service.app import create_app
from scanner.service.config import RegistryEntry, ServiceConfig
from scanner.service.sqlite_store import SqliteStore
from tests.fuzz.test_fuzz import CUT, EDITS, FUZZ, mutate

REG = "127.0.0.1:5000"
TOKEN = "fuzz-token"
D = "sha256:" + "ab" * 32
VALID = {
    "distribution": {
        "events": [
            {
                "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "digest": D,
                    "repository": "demo/app",
                    "tag": "v1",
                },
                "request": {"host": REG},
            }
        ]
    },
    "harbor": {
        "type": "PUSH_ARTIFACT",
        "event_data": {"resources": [{"digest": D, "tag": "v1", "resource_url": f"{REG}/demo/app:v1"}]},
    },
    "dockerhub": {"push_data": {"tag": "v1"}, "repository": {"repo_name": "demo/app"}},
    "scan": {"registry": {"url": f"http://{REG}"}, "artifact": {"repository": "demo/app", "digest": D}},
}
PATHS = {"distribution": "/hooks/distribution", "harbor": "/hooks/harbor", "dockerhub": "/hooks/dockerhub"}
PATHS["scan"] = "/api/v1/scan"
KEYS = sorted({"events", "action", "target", "mediaType", "digest", "repository", "tag", "request", "host",
               "type", "event_data", "resources", "resource_url", "specversion", "data", "push_data",
               "repo_name", "registry", "url", "artifact", "authorization", "enabled_capabilities"})  # fmt: skip
LEAVES = st.none() | st.booleans() | st.integers() | st.sampled_from(
    ["push", REG, "demo/app", D, "v1", "PUSH_ARTIFACT", "harbor.artifact.pushed", "1.0", "evil.com", "../x",
     "application/vnd.oci.image.manifest.v1+json", f"{REG}/demo/app:v1", f"http://{REG}", "169.254.169.254"]
) | st.text(max_size=30)  # fmt: skip
JSON = st.recursive(
    LEAVES,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=6),
    max_leaves=40,
)

_tmp = Path(tempfile.mkdtemp(prefix="leakscan-fuzz-service-"))
CONFIG = ServiceConfig(data_dir=_tmp, tokens=(TOKEN,), registries={REG: RegistryEntry(REG)}, max_body=64 * 1024)
STORE = SqliteStore(CONFIG.db_path)
CLIENT = TestClient(create_app(CONFIG, STORE), raise_server_exceptions=False)
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def post(kind: str, body: bytes) -> int:
    status = CLIENT.post(PATHS[kind], content=body, headers=HEADERS).status_code
    assert status < 500 or status == 501, (kind, status, body[:200])
    assert {j.registry for j in STORE.recent(1000)} <= {REG, "docker.io"}
    return int(status)


def test_the_valid_payloads_are_accepted() -> None:
    for kind, doc in VALID.items():
        assert post(kind, json.dumps(doc).encode()) in (202, 403), kind  # docker.io is not allow-listed


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), edits=EDITS, cut=CUT)
def test_mutated_payloads(kind: str, edits: list[tuple[int, int]], cut: int | None) -> None:
    post(kind, mutate(json.dumps(VALID[kind]).encode(), edits, cut))


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), doc=JSON)
def test_structured_payloads(kind: str, doc: Any) -> None:
    post(kind, json.dumps(doc).encode())


@FUZZ
@given(kind=st.sampled_from(sorted(VALID)), body=st.binary(max_size=3000))
def test_random_bytes(kind: str, body: bytes) -> None:
    post(kind, body)
