"""The JSON report: a public contract, versioned by ``schema_version`` (see README)."""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..models import Finding, ImageReport, Instruction, LayerReport, ScanReport, Severity
from . import jsontext
from .interface import SCHEMA_VERSION, Renderer
from .remediation import origin, text_of


def instruction_dict(i: Instruction | None) -> dict[str, Any] | None:
    if i is None:
        return None
    return {
        "file": i.file,
        "line": i.line,
        "keyword": i.keyword,
        "text": i.text,
        "stage": i.stage,
        "from_stage": i.from_stage,
    }


def finding_dict(f: Finding, created_by: str | None = None) -> dict[str, Any]:
    kind = origin(f, created_by)
    return {
        "rule_id": f.rule_id,
        "detector": f.detector,
        "severity": f.severity.value,
        "description": f.description,
        "layer_index": f.layer_index,
        "path": f.path,
        "line": f.line,
        "field": f.field,
        "status": f.status.value if f.status else None,
        "hidden_by_layer": f.hidden_by_layer,
        "link_target": f.link_target,
        "secret_id": f.secret_id,
        "encoding": f.encoding,
        "secret_fingerprint": f.secret_fingerprint,
        "preview": f.preview,
        "confidence": f.confidence,
        "fingerprint": f.fingerprint,
        "also_matched": list(f.also_matched),
        "proven": f.proven,
        "downgraded_from": f.downgraded_from.value if f.downgraded_from else None,
        "downgrade_reason": f.downgrade_reason,
        "package": None
        if f.package is None
        else {
            "manager": f.package.manager,
            "name": f.package.name,
            "version": f.package.version,
            "state": f.package.state,
            "text": f.package.describe(),
        },
        "places": list(f.places),
        "instruction": instruction_dict(f.instruction),
        "base_image": f.base_image,
        "origin": kind,
        "remediation": text_of(kind, f),
        **({"suppressed_by": f.suppressed_by} if f.suppressed_by else {}),
    }


def layer_dict(layer: LayerReport) -> dict[str, Any]:
    return {
        "index": layer.index,
        "diff_id": layer.diff_id,
        "digest": layer.digest,
        "media_type": layer.media_type,
        "compression": layer.compression,
        "created_by": layer.created_by,
        "size": layer.size,
        "compressed_size": layer.compressed_size,
        "scanned": layer.scanned,
        "error": layer.error,
        "files_scanned": layer.files_scanned,
        "files_skipped": [{"path": s.where, "reason": s.reason, "limit": s.limit} for s in layer.skips],
        "findings": [finding_dict(f, layer.created_by) for f in layer.findings],
        "suppressed": [finding_dict(f, layer.created_by) for f in layer.suppressed],
        "instruction": instruction_dict(layer.instruction),
        "base_image": layer.base_image,
    }


def image_dict(image: ImageReport) -> dict[str, Any]:
    return {
        "name": image.name,
        "repo_tags": list(image.repo_tags),
        "config_digest": image.config_digest,
        "manifest_digest": image.manifest_digest,
        "platform": image.platform,
        "dockerfile": image.dockerfile,
        "layers": [layer_dict(layer) for layer in image.layers],
        "metadata_findings": [finding_dict(f) for f in image.metadata_findings],
        "suppressed_metadata_findings": [finding_dict(f) for f in image.suppressed_metadata],
        "warnings": list(image.warnings),
        "errors": list(image.errors),
    }


def summary_dict(report: ScanReport) -> dict[str, Any]:
    findings = report.findings
    layers = [layer for image in report.images for layer in image.layers]
    return {
        "findings": len(findings),
        "by_severity": {s.value: sum(1 for f in findings if f.severity is s) for s in reversed(Severity)},
        "suppressed": len(report.suppressed),
        "images": len(report.images),
        "layers": len(layers),
        "bytes_scanned": sum(layer.size or 0 for layer in layers),
        "files_scanned": sum(layer.files_scanned for layer in layers),
        "files_skipped": sum(len(layer.skips) for layer in layers if layer.scanned),
        "complete": report.complete,
        "problems": list(report.problems),
        "duration_s": round(report.duration_s, 3),
        "cached_layers": report.cached_layers,
    }


def report_dict(report: ScanReport) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "leakscan", "version": __version__},
        "source": {"kind": report.source_kind, "ref": report.source_ref, "format": report.archive_format},
        "images": [image_dict(image) for image in report.images],
        "metadata_findings": [finding_dict(f) for f in report.metadata_findings],
        "suppressed_metadata_findings": [finding_dict(f) for f in report.suppressed_metadata],
        "warnings": list(report.warnings),
        "errors": list(report.errors),
        "summary": summary_dict(report),
    }


class JsonRenderer(Renderer):
    def render(self, report: ScanReport) -> str:
        return "".join(self.pieces(report))

    def pieces(self, report: ScanReport) -> list[str]:
        return [*jsontext.pieces(report_dict(report), ensure_ascii=False), "\n"]
