"""Webhook payloads -> image push events.  Pure functions of the bytes received; no I/O.

Distribution (``events.v1+json`` and ``events.v2+json``), Harbor (Default and CloudEvents) and
Docker Hub; FORMATS.md section 4 documents each.  Anything that is not a well-formed push of a
manifest or index is ignored (pulls, deletes, blob events); anything malformed is a PayloadError.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ..errors import LeakscanError
from ..sources.interface import INDEX_TYPES, MANIFEST_TYPES
from ..sources.reference import DIGEST, Reference, has_registry_host

PUSHED_TYPES = frozenset((*INDEX_TYPES, *MANIFEST_TYPES))  # a push of an image or an index is scanned
_HOST = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,251}[a-z0-9])?(:[0-9]{1,5})?\Z|^\[[0-9a-f:.]+\](:[0-9]{1,5})?\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
MAX_DEPTH = 16


class PayloadError(ValueError):
    """The payload is not what its sender documents; the request gets a 400."""


@dataclass(frozen=True)
class PushEvent:
    registry: str  # host[:port], lower-case
    repository: str
    digest: str | None  # None: Docker Hub, resolved from the tag at scan time
    tag: str | None = None

    @property
    def ref(self) -> str:
        at = f"@{self.digest}" if self.digest else f":{self.tag or 'latest'}"
        return f"{self.registry}/{self.repository}{at}"


def parse_json(body: bytes) -> Any:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise PayloadError("body is not JSON") from None
    if _depth(doc) > MAX_DEPTH:
        raise PayloadError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return doc


def _depth(doc: Any) -> int:
    stack, deepest = [(doc, 1)], 0
    while stack:
        node, d = stack.pop()
        deepest = max(deepest, d)
        if d > MAX_DEPTH:
            return d
        if isinstance(node, dict):
            stack.extend((v, d + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, d + 1) for v in node)
    return deepest


def _str(obj: Any, key: str, where: str, required: bool = True) -> str | None:
    if not isinstance(obj, dict):
        raise PayloadError(f"{where} is not an object")
    value = obj.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value or len(value) > 512:
        raise PayloadError(f"{where}.{key} is missing or not a short string")
    return value


def _event(registry: str, repository: str, digest: str | None, tag: str | None, where: str) -> PushEvent:
    registry = registry.lower()
    if not _HOST.match(registry):
        raise PayloadError(f"{where}: {registry[:80]!r} is not a registry host")
    if digest is not None and not DIGEST.match(digest):
        raise PayloadError(f"{where}: {digest[:80]!r} is not a sha256 digest")
    if tag is not None and tag != digest and not _TAG.match(tag):
        raise PayloadError(f"{where}: {tag[:80]!r} is not a valid tag")
    try:
        ref = Reference.parse(f"{registry}/{repository}" + (f"@{digest}" if digest else f":{tag or 'latest'}"))
    except LeakscanError:
        raise PayloadError(f"{where}: not a valid image reference") from None
    if ref.registry != registry:
        raise PayloadError(f"{where}: {registry[:80]!r} is not a registry host")
    return PushEvent(registry, ref.repository, digest, tag if tag and tag != digest else None)


def _bounded_list(value: Any, what: str, limit: int) -> list[Any]:
    if not isinstance(value, list):
        raise PayloadError(f"expected a list of {what}")
    if len(value) > limit:
        raise PayloadError(f"{len(value)} {what} in one payload; at most {limit}")
    return value


def distribution(doc: Any, limit: int) -> list[PushEvent]:
    events = _bounded_list(doc.get("events") if isinstance(doc, dict) else None, "events", limit)
    out = []
    for i, event in enumerate(events):
        where = f"events[{i}]"
        if _str(event, "action", where) != "push":
            continue
        target = event.get("target")
        if _str(target, "mediaType", f"{where}.target") not in PUSHED_TYPES:
            continue  # blob pushes and other artifacts
        host = _str(event.get("request"), "host", f"{where}.request")
        out.append(
            _event(
                host or "",
                _str(target, "repository", f"{where}.target") or "",
                _str(target, "digest", f"{where}.target"),
                _str(target, "tag", f"{where}.target", required=False),
                where,
            )
        )
    return out


def _split_resource_url(url: str, where: str) -> tuple[str, str]:
    """``host/project/repo:tag`` or ``host/project/repo@sha256:...`` -> (host, project/repo)."""
    if not has_registry_host(url):
        raise PayloadError(f"{where}.resource_url has no registry host")
    host, _, rest = url.partition("/")
    rest = rest.split("@", 1)[0]
    slash, colon = rest.rfind("/"), rest.rfind(":")
    return host, rest[:colon] if colon > slash else rest


def harbor(doc: Any, limit: int) -> list[PushEvent]:
    """Harbor's Default payload (``type: PUSH_ARTIFACT``) or CloudEvents (``harbor.artifact.pushed``)."""
    if not isinstance(doc, dict):
        raise PayloadError("expected a JSON object")
    kind = _str(doc, "type", "payload")
    if "specversion" in doc:
        data, pushed = doc.get("data"), kind == "harbor.artifact.pushed"
    else:
        data, pushed = doc.get("event_data"), kind == "PUSH_ARTIFACT"
    if not pushed:
        return []
    resources = _bounded_list(data.get("resources") if isinstance(data, dict) else None, "resources", limit)
    if not resources:
        raise PayloadError("a push event without resources")
    out = []
    for i, res in enumerate(resources):
        where = f"resources[{i}]"
        host, repository = _split_resource_url(_str(res, "resource_url", where) or "", where)
        out.append(_event(host, repository, _str(res, "digest", where), _str(res, "tag", where, False), where))
    return out


def dockerhub(doc: Any, limit: int, registry: str = "docker.io") -> list[PushEvent]:
    """Docker Hub sends a tag and no digest: the digest is resolved from the tag when scanning."""
    if not isinstance(doc, dict):
        raise PayloadError("expected a JSON object")
    repository = _str(doc.get("repository"), "repo_name", "repository")
    tag = _str(doc.get("push_data"), "tag", "push_data")
    return [_event(registry, repository or "", None, tag, "payload")]


def event_from_ref(image: str) -> PushEvent:
    """``registry/repository[:tag|@digest]`` given to the API by hand."""
    try:
        ref = Reference.parse(image)
    except LeakscanError:
        raise PayloadError("not a valid image reference") from None
    return _event(ref.registry, ref.repository, ref.digest, ref.tag, "image")
