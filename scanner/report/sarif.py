"""SARIF 2.1.0, for GitHub code scanning and other SARIF consumers (FORMATS.md 5.1).

One run per image.  The artifact location is the path in the image (``uriBaseId: ROOTPATH``), or
the metadata field for config/history findings.  Each result carries a stable
``partialFingerprints`` entry (rule, path or field, secret hash: no layer digests, no times) and,
in its properties, the layer index, diff_id, ``created_by`` (redacted) and status.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..models import Finding, ImageReport, LayerReport, ScanReport, Severity
from . import jsontext
from .interface import Renderer

SCHEMA = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/main/sarif-2.1/schema/sarif-schema-2.1.0.json"
LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "2.0"}
PRECISION = {"high": "very-high", "medium": "high", "low": "medium"}
MAX_RESULTS = 25_000  # GitHub's limit per run


def _rule(f: Finding) -> dict[str, Any]:
    return {
        "id": f.rule_id,
        "name": "Secret",
        "shortDescription": {"text": f.description.split(" (")[0][:200]},
        "defaultConfiguration": {"level": LEVEL[f.severity]},
        "properties": {
            "tags": ["secret", "security", f.severity.value.upper()],
            "security-severity": SECURITY_SEVERITY[f.severity],
            "precision": PRECISION.get(f.confidence, "medium"),
        },
    }


def _result(f: Finding, index: int, layer: LayerReport | None) -> dict[str, Any]:
    uri = f.path if f.path is not None else f"metadata/{f.field}"
    where = f"{f.path}:{f.line}" if f.path and f.line else (f.path or f.field or "?")
    text = f"{f.description} in {where}"
    if layer is not None:
        text += f" (layer {layer.index}"
        hidden = f.status is not None and f.hidden_by_layer is not None
        text += f", {f.status.value if f.status else ''} in layer {f.hidden_by_layer})" if hidden else ")"
    if f.secret_id:
        text += f"; build secret {f.secret_id!r} as {f.encoding}"
    text += f"; value {f.preview}, sha256 {f.secret_sha256[:16]}"
    props: dict[str, Any] = {
        "detector": f.detector,
        "confidence": f.confidence,
        "secretSha256": f.secret_sha256,
        "status": f.status.value if f.status else None,
        "field": f.field,
    }
    if layer is not None:
        props.update(layerIndex=layer.index, diffId=layer.diff_id, layerDigest=layer.digest, createdBy=layer.created_by)
    if f.hidden_by_layer is not None:
        props["hiddenByLayer"] = f.hidden_by_layer
    region = {"startLine": f.line or 1, "endLine": f.line or 1}
    return {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": LEVEL[f.severity],
        "message": {"text": text},
        "locations": [
            {
                "physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "ROOTPATH"}, "region": region},
                "message": {
                    "text": f"layer {layer.diff_id}" if layer is not None and layer.diff_id else "image metadata"
                },
            }
        ],
        "partialFingerprints": {"leakscan/v1": f.fingerprint},
        "properties": {k: v for k, v in props.items() if v is not None},
    }


def _run(image: ImageReport, extra: tuple[Finding, ...]) -> dict[str, Any]:
    rules: dict[str, int] = {}
    rule_docs: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    placed: list[tuple[Finding, LayerReport | None]] = [(f, layer) for layer in image.layers for f in layer.findings]
    placed += [(f, None) for f in image.metadata_findings + extra]
    placed.sort(key=lambda p: -p[0].severity.rank)  # GitHub keeps the first results when there are too many
    for f, layer in placed[:MAX_RESULTS]:
        if f.rule_id not in rules:
            rules[f.rule_id] = len(rule_docs)
            rule_docs.append(_rule(f))
        results.append(_result(f, rules[f.rule_id], layer))
    return {
        "tool": {
            "driver": {
                "name": "leakscan",
                "version": __version__,
                "semanticVersion": __version__,
                "informationUri": "https://pypi.org/project/leakscan-image/",
                "rules": rule_docs,
            }
        },
        "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///"}},
        "columnKind": "utf16CodeUnits",
        "results": results,
        "properties": {
            "imageName": image.name,
            "repoTags": list(image.repo_tags),
            "imageID": image.config_digest,
            "manifestDigest": image.manifest_digest,
            "platform": image.platform,
            "truncated": len(placed) > MAX_RESULTS,
        },
    }


class SarifRenderer(Renderer):
    def render(self, report: ScanReport) -> str:
        runs = [_run(image, report.metadata_findings if n == 0 else ()) for n, image in enumerate(report.images)]
        if not runs:
            runs = [_run(ImageReport(report.source_ref, (), None, None, None, (), ()), report.metadata_findings)]
        return jsontext.dumps({"version": "2.1.0", "$schema": SCHEMA, "runs": runs}) + "\n"
