"""SARIF 2.1.0, for GitHub code scanning and other SARIF consumers (FORMATS.md 5.1).

One run per image.  When the finding's Dockerfile instruction is known (``--dockerfile``, or the
Dockerfile of a BuildKit provenance attestation), the primary location is that Dockerfile line, so
that code scanning annotates it in the pull request; the path in the image (``uriBaseId:
ROOTPATH``), or ``metadata/<field>`` for config and history findings, is then in the message and a
related location.  Without one, the in-image path is the location.  Each result carries a stable
``partialFingerprints`` entry (rule, path or field, keyed secret fingerprint: no layer digests, no
times) and, in its properties, the layer index, diff_id, ``created_by`` (redacted) and status.
Each rule's ``help`` says how to fix what its results found, by how the secret got there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .. import __version__
from ..models import Finding, ImageReport, Instruction, LayerReport, ScanReport, Severity
from . import jsontext
from .interface import Renderer
from .remediation import Remedy, remedy

SCHEMA = "https://raw.githubusercontent.com/oasis-tcs/sarif-spec/main/sarif-2.1/schema/sarif-schema-2.1.0.json"
LEVEL = {Severity.CRITICAL: "error", Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
SECURITY_SEVERITY = {Severity.CRITICAL: "9.5", Severity.HIGH: "8.0", Severity.MEDIUM: "5.5", Severity.LOW: "2.0"}
PRECISION = {"high": "very-high", "medium": "high", "low": "medium"}
MAX_RESULTS = 25_000  # GitHub's limit per run


def _rule(f: Finding, remedies: list[Remedy]) -> dict[str, Any]:
    return {
        "id": f.rule_id,
        "name": "Secret",
        "shortDescription": {"text": f.description.split(" (")[0][:200]},
        "help": {
            "text": " ".join(r.text for r in remedies),
            "markdown": "\n\n---\n\n".join(r.markdown for r in remedies),
        },
        "defaultConfiguration": {"level": LEVEL[f.severity]},
        "properties": {
            "tags": ["secret", "security", f.severity.value.upper()],
            "security-severity": SECURITY_SEVERITY[f.severity],
            "precision": PRECISION.get(f.confidence, "medium"),
        },
    }


def _dockerfile_uri(i: Instruction) -> str:
    """The Dockerfile as a path relative to the working directory (the repository, in CI)."""
    path = Path(i.file.removesuffix(" (provenance)"))
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_uri()
    return Path(os.path.normpath(path)).as_posix()


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
    text += f"; value {f.preview}, fingerprint {f.secret_fingerprint[:16]}"
    text += "".join(f"; {note}" for note in f.notes())
    fix = remedy(f, layer.created_by if layer is not None else None)
    if f.instruction is not None:
        text += f". Made by {f.instruction.where} {f.instruction.text[:200]}"
    elif f.base_image:
        text += ". No instruction of the Dockerfile made it: it comes from the base image"
    text += f". Fix: {fix.summary}"
    props: dict[str, Any] = {
        "detector": f.detector,
        "confidence": f.confidence,
        "secretFingerprint": f.secret_fingerprint,
        "origin": fix.kind,
        "dockerfile": f.instruction.where if f.instruction is not None else None,
        "baseImage": f.base_image or None,
        "status": f.status.value if f.status else None,
        "field": f.field,
        "alsoMatched": list(f.also_matched) or None,
        "downgradedFrom": f.downgraded_from.value if f.downgraded_from else None,
        "downgradeReason": f.downgrade_reason,
        "package": f.package.describe() if f.package else None,
        "places": list(f.places) or None,
    }
    if layer is not None:
        props.update(layerIndex=layer.index, diffId=layer.diff_id, layerDigest=layer.digest, createdBy=layer.created_by)
    if f.hidden_by_layer is not None:
        props["hiddenByLayer"] = f.hidden_by_layer
    region = {"startLine": f.line or 1, "endLine": f.line or 1}
    in_image = {
        "physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": "ROOTPATH"}, "region": region},
        "message": {"text": f"layer {layer.diff_id}" if layer is not None and layer.diff_id else "image metadata"},
    }
    result: dict[str, Any] = {
        "ruleId": f.rule_id,
        "ruleIndex": index,
        "level": LEVEL[f.severity],
        "message": {"text": text},
        "locations": [in_image],
        "partialFingerprints": {"leakscan/v1": f.fingerprint},
        "properties": {k: v for k, v in props.items() if v is not None},
    }
    if f.instruction is not None:
        line = {"startLine": f.instruction.line, "endLine": f.instruction.line}
        result["locations"] = [
            {
                "physicalLocation": {"artifactLocation": {"uri": _dockerfile_uri(f.instruction)}, "region": line},
                "message": {"text": f"{f.instruction.keyword} that put the secret in the image, at {where}"},
            }
        ]
        result["relatedLocations"] = [{"id": 1, **in_image}]
    return result


def _run(image: ImageReport, extra: tuple[Finding, ...]) -> dict[str, Any]:
    rules: dict[str, int] = {}
    rule_docs: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    placed: list[tuple[Finding, LayerReport | None]] = [(f, layer) for layer in image.layers for f in layer.findings]
    placed += [(f, None) for f in image.metadata_findings + extra]
    placed.sort(key=lambda p: -p[0].severity.rank)  # GitHub keeps the first results when there are too many
    kept = placed[:MAX_RESULTS]
    remedies: dict[str, list[Remedy]] = {}
    for f, layer in kept:
        fix = remedy(f, layer.created_by if layer is not None else None)
        if fix not in remedies.setdefault(f.rule_id, []):
            remedies[f.rule_id].append(fix)
    for f, layer in kept:
        if f.rule_id not in rules:
            rules[f.rule_id] = len(rule_docs)
            rule_docs.append(_rule(f, remedies[f.rule_id]))
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
        "originalUriBaseIds": {"ROOTPATH": {"uri": "file:///", "description": {"text": "the image's filesystem"}}},
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
