"""Webhook payloads -> push events: every documented sender, and what must be refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from scanner.service import events, harbor
from scanner.service.events import PayloadError, PushEvent

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
OCI = "application/vnd.oci.image.manifest.v1+json"


def dist_event(action: str = "push", media: str = OCI, host: str = "127.0.0.1:5000", **target: Any) -> dict[str, Any]:
    return {
        "id": "x",
        "action": action,
        "target": {"mediaType": media, "digest": D1, "repository": "demo/app", "tag": "v1", **target},
        "request": {"host": host, "method": "PUT"},
        "actor": {},
        "source": {"addr": "vm:5000"},
    }


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"events": [dist_event()]}, [PushEvent("127.0.0.1:5000", "demo/app", D1, "v1")]),
        # a child manifest of a multi-arch push: by digest, no tag
        ({"events": [dist_event(tag=None)]}, [PushEvent("127.0.0.1:5000", "demo/app", D1, None)]),
        (
            {"events": [dist_event(media="application/vnd.docker.distribution.manifest.list.v2+json", digest=D2)]},
            [PushEvent("127.0.0.1:5000", "demo/app", D2, "v1")],
        ),
        ({"events": [dist_event(action="pull")]}, []),
        ({"events": [dist_event(media="application/octet-stream")]}, []),  # a blob push
        ({"events": [dist_event(action="delete")]}, []),
        (
            {"events": [dist_event(host="Registry.Example.com")]},
            [PushEvent("registry.example.com", "demo/app", D1, "v1")],
        ),
        ({"events": []}, []),
    ],
)
def test_distribution(payload: dict[str, Any], expected: list[PushEvent]) -> None:
    assert events.distribution(payload, 100) == expected


@pytest.mark.parametrize(
    "payload",
    [
        [],
        {"events": "no"},
        {"events": [{"action": "push"}]},
        {"events": [dist_event(digest="sha256:short")]},
        {"events": [dist_event(digest="md5:" + "1" * 32)]},
        {"events": [dist_event(repository="../../etc")]},
        {"events": [dist_event(repository="UPPER/case")]},
        {"events": [dist_event(host="evil.com/path")]},
        {"events": [dist_event(host="user@evil.com")]},
        {"events": [dist_event(host="")]},
        {"events": [dist_event(tag="bad tag!")]},
        {"events": [dist_event(host="127.0.0.1:5000\n")]},  # "$" accepts a trailing newline; \Z does not
        {"events": [dist_event(tag="v1\n")]},
        {"events": [dist_event(digest="sha256:" + "1" * 64 + "\n")]},
        {"events": [dist_event(repository=["x"])]},
        {"events": [dist_event() for _ in range(101)]},
    ],
)
def test_distribution_malformed(payload: Any) -> None:
    with pytest.raises(PayloadError):
        events.distribution(payload, 100)


HARBOR_DEFAULT = {
    "type": "PUSH_ARTIFACT",
    "occur_at": 1586922308,
    "operator": "admin",
    "event_data": {
        "resources": [{"digest": D1, "tag": "latest", "resource_url": "harbor.example.com/team/debian:latest"}],
        "repository": {"name": "debian", "namespace": "team", "repo_full_name": "team/debian"},
    },
}
HARBOR_CLOUD = {
    "specversion": "1.0",
    "id": "4b2f89a6",
    "source": "/projects/1/webhook/policies/3",
    "type": "harbor.artifact.pushed",
    "datacontenttype": "application/json",
    "data": {
        "resources": [{"digest": D2, "tag": D2, "resource_url": f"harbor.example.com:8443/team/sub/app@{D2}"}],
        "repository": {"repo_full_name": "team/sub/app"},
    },
}


def test_harbor_default_and_cloudevents() -> None:
    assert events.harbor(HARBOR_DEFAULT, 100) == [PushEvent("harbor.example.com", "team/debian", D1, "latest")]
    # a digest-only push: tag equals the digest and is dropped
    assert events.harbor(HARBOR_CLOUD, 100) == [PushEvent("harbor.example.com:8443", "team/sub/app", D2, None)]
    assert events.harbor({**HARBOR_DEFAULT, "type": "PULL_ARTIFACT"}, 100) == []
    assert events.harbor({**HARBOR_CLOUD, "type": "harbor.scan.completed"}, 100) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "PUSH_ARTIFACT"},
        {"type": "PUSH_ARTIFACT", "event_data": {"resources": []}},
        {"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"digest": D1, "resource_url": "no-host/x:1"}]}},
        {"type": "PUSH_ARTIFACT", "event_data": {"resources": [{"digest": "x", "resource_url": "h.io/a/b:1"}]}},
        {"type": 7},
        "string",
    ],
)
def test_harbor_malformed(payload: Any) -> None:
    with pytest.raises(PayloadError):
        events.harbor(payload, 100)


def test_dockerhub_has_a_tag_and_no_digest() -> None:
    doc = {"push_data": {"tag": "1.2", "pusher": "x"}, "repository": {"repo_name": "team/app"}}
    [event] = events.dockerhub(doc, 100)
    assert event == PushEvent("docker.io", "team/app", None, "1.2")
    assert event.ref == "docker.io/team/app:1.2"
    with pytest.raises(PayloadError):
        events.dockerhub({"push_data": {}, "repository": {"repo_name": "team/app"}}, 100)


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"\xff\xfe", b"[" * 100_000, json.dumps({"a": [[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]}).encode()],
)
def test_parse_json_refuses_garbage_and_deep_nesting(body: bytes) -> None:
    with pytest.raises(PayloadError):
        events.parse_json(body)


def test_harbor_scan_request() -> None:
    doc = {
        "registry": {"url": "https://core.harbor.domain", "authorization": "Basic cm9ib3Q6cHc="},
        "artifact": {"repository": "library/mongo", "digest": D1, "tag": "3.14", "mime_type": OCI},
        "enabled_capabilities": [{"type": "vulnerability"}],
    }
    event, auth, _ = harbor.parse_scan_request(doc)
    assert event == PushEvent("core.harbor.domain", "library/mongo", D1, "3.14")
    assert auth == "Basic cm9ib3Q6cHc="
    for bad in (
        {**doc, "registry": {"url": "ftp://core.harbor.domain"}},
        {**doc, "registry": {"url": "https://user:pw@core.harbor.domain"}},
        {**doc, "registry": {"url": "https://core.harbor.domain/path"}},
        {**doc, "artifact": {"repository": "library/mongo"}},
        {"registry": {}, "artifact": {}},
    ):
        with pytest.raises(PayloadError):
            harbor.parse_scan_request(bad)


@pytest.mark.parametrize("caps", [[{"type": []}], [{"type": {"a": 1}}], [{"type": None}], [{"type": "sbom"}], "x", [1]])
def test_harbor_capabilities_of_any_shape_are_refused_not_a_crash(caps: Any) -> None:
    """A capability type that is not a string (a list: unhashable) was a TypeError, a 500; found
    by tests/fuzz/test_fuzz_service.py.  Anything but the vulnerability capability is refused."""
    with pytest.raises(harbor.Unsupported):
        harbor.parse_scan_request({"enabled_capabilities": caps, "registry": {}, "artifact": {}})
