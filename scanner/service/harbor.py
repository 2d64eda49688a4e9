"""Harbor's pluggable scanner adapter API v1.2 (FORMATS.md 4.3): metadata, scan request, report.

Harbor renders only vulnerability reports, so each secret finding becomes a "vulnerability":
``id`` is the rule, ``package`` the file (or metadata field), ``version`` the layer, and the
description says where it is and whether it is still visible; ``vendor_attributes`` carry the
hash and the redacted preview.  Never the secret.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass, field
from typing import Any

from .. import __version__
from ..errors import LeakscanError
from ..sources.reference import Credentials
from .events import PUSHED_TYPES, PayloadError, PushEvent, _event

METADATA_TYPE = "application/vnd.scanner.adapter.metadata+json; version=1.1"
SCAN_RESPONSE_TYPE = "application/vnd.scanner.adapter.scan.response+json; version=1.0"
ERROR_TYPE = "application/vnd.scanner.adapter.error+json; version=1.0"
REPORT_TYPES = (
    "application/vnd.security.vulnerability.report; version=1.1",
    "application/vnd.scanner.adapter.vuln.report.harbor+json; version=1.0",
)
RAW_TYPE = "application/vnd.scanner.adapter.vuln.report.raw"
_SEVERITY = {"critical": "Critical", "high": "High", "medium": "Medium", "low": "Low"}
_ORDER = ["Unknown", "Negligible", "Low", "Medium", "High", "Critical"]


def metadata() -> dict[str, Any]:
    return {
        "scanner": {"name": "leakscan", "vendor": "leakscan", "version": __version__},
        "capabilities": [
            {
                "type": "vulnerability",
                "consumes_mime_types": sorted(PUSHED_TYPES),
                "produces_mime_types": [*REPORT_TYPES, RAW_TYPE],
            }
        ],
        "properties": {
            "harbor.scanner-adapter/scanner-type": "secret-scanner",
            "harbor.scanner-adapter/vulnerability-database-updated-at": "",
        },
    }


class Unsupported(PayloadError):
    """The request asks for a capability leakscan does not have (Harbor expects 501)."""


def parse_scan_request(doc: Any) -> tuple[PushEvent, str | None, dict[str, Any]]:
    """(the image, the robot authorization, the artifact as Harbor described it)."""
    if not isinstance(doc, dict):
        raise PayloadError("expected a JSON object")
    caps = doc.get("enabled_capabilities")
    if caps is not None:  # absent: the vulnerability capability, as in spec 1.0
        # a type is a string; anything else (a list, found by the fuzzer: unhashable) is no capability
        kinds = [c.get("type") for c in caps if isinstance(c, dict)] if isinstance(caps, list) else []
        if "vulnerability" not in kinds:
            raise Unsupported("leakscan offers only the vulnerability capability (secrets as findings)")
    registry, artifact = doc.get("registry"), doc.get("artifact")
    if not isinstance(registry, dict) or not isinstance(artifact, dict):
        raise PayloadError("registry and artifact are required objects")
    url = registry.get("url")
    m = re.match(r"^(https?)://([^/?#@]+)/?$", url) if isinstance(url, str) else None
    if m is None:
        raise PayloadError("registry.url is not an http(s) URL of a host")
    repository, digest = artifact.get("repository"), artifact.get("digest")
    if not isinstance(repository, str) or not isinstance(digest, str):
        raise PayloadError("artifact.repository and artifact.digest are required strings")
    tag = artifact.get("tag") if isinstance(artifact.get("tag"), str) else None
    auth = registry.get("authorization")
    if auth is not None and not isinstance(auth, str):
        raise PayloadError("registry.authorization is not a string")
    try:
        harbor_auth(auth)
    except LeakscanError as exc:
        raise PayloadError(exc.message) from None
    return _event(m.group(2), repository, digest, tag, "artifact"), auth or None, artifact


_B64TOKEN = re.compile(r"^[A-Za-z0-9._~+/-]+=*\Z")  # RFC 6750's b64token: nothing that could end a header


@dataclass(frozen=True)
class HarborAuth:
    """Harbor's ``registry.authorization``: ``Basic base64(robot:secret)`` gives credentials (the
    client answers the registry's challenge with them); ``Bearer <token>`` (the pull token Harbor
    issues for the scan) is sent as it is."""

    credentials: Credentials | None = None
    authorization: str | None = field(default=None, repr=False)


def harbor_auth(authorization: str | None) -> HarborAuth:
    if not authorization:
        return HarborAuth()
    scheme, _, value = authorization.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not _B64TOKEN.match(value):
            raise LeakscanError("the scan request's registry authorization is not a Bearer token")
        return HarborAuth(authorization=f"Bearer {value}")
    if scheme.lower() != "basic":
        raise LeakscanError("the scan request's registry authorization is neither Basic nor Bearer")
    try:
        user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise LeakscanError("the scan request's registry authorization is not base64 of user:password") from None
    if not sep:
        raise LeakscanError("the scan request's registry authorization is not base64 of user:password")
    return HarborAuth(Credentials(user, password))


def _findings(report: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None, str | None]]:
    out: list[tuple[dict[str, Any], dict[str, Any] | None, str | None]] = []
    for image in report.get("images", []):
        for layer in image.get("layers", []):
            out += [(f, layer, image.get("platform")) for f in layer.get("findings", [])]
        out += [(f, None, image.get("platform")) for f in image.get("metadata_findings", [])]
    out += [(f, None, None) for f in report.get("metadata_findings", [])]
    return out


def vulnerability_report(report: dict[str, Any], artifact: dict[str, Any], generated: float) -> dict[str, Any]:
    """The HarborVulnerabilityReport for a stored leakscan JSON report."""
    items = []
    for f, layer, platform in _findings(report):
        where = f.get("path") or f.get("field") or "image metadata"
        if layer is not None:
            state = "still present" if f.get("status") in (None, "present") else f"{f['status']} (still in the layer)"
            context = f"layer {layer['index']} ({(layer.get('created_by') or '')[:120]}): {state}"
        else:
            context = "image configuration or manifest"
        items.append(
            {
                "id": f["rule_id"],
                "package": where,
                "version": (layer or {}).get("digest") or "metadata",
                "fix_version": "",
                "severity": _SEVERITY.get(f["severity"], "Unknown"),
                "description": f"{f['description']} in {where}, {context}. Rotate the secret and rebuild.",
                "links": [],
                "vendor_attributes": {
                    "detector": f.get("detector"),
                    "secret_fingerprint": f.get("secret_fingerprint"),
                    "preview": f.get("preview"),
                    "layer_index": f.get("layer_index"),
                    "status": f.get("status"),
                    "platform": platform,
                    "fingerprint": f.get("fingerprint"),
                },
            }
        )
    worst = max((_ORDER.index(v["severity"]) for v in items), default=0)
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(generated)),
        "artifact": {k: artifact.get(k) for k in ("repository", "digest", "tag", "mime_type")},
        "scanner": metadata()["scanner"],
        "severity": _ORDER[worst] if items else "None",
        "vulnerabilities": items,
    }
