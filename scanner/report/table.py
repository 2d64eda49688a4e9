"""The terminal report: per image, per layer in image order, then metadata and a summary."""

from __future__ import annotations

from ..findings.dockerfile import shown_instruction
from ..models import Finding, LayerReport, ScanReport, Status
from . import remediation
from .interface import Renderer
from .json import summary_dict


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def _short(digest: str | None) -> str:
    return digest[:19] if digest else "-"


def _clip(text: str | None, width: int = 90) -> str:
    if not text:
        return "-"
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _place(f: Finding, layers: dict[int, LayerReport]) -> str:
    """One place a value was found, with the instruction that put it there."""
    if f.path is not None:
        where = f"layer {f.layer_index} {f.path}" + (f":{f.line}" if f.line else "")
        if f.link_target:
            where += f" (hard link to {f.link_target})"
        if f.status is not None and f.hidden_by_layer is not None:
            where += f"  [{f.status.value} in layer {f.hidden_by_layer}]"
        elif f.status is not None and f.status is not Status.PRESENT:
            where += f"  [{f.status.value}]"
    else:
        where = f.field or "-"
    if f.encoding not in (None, "raw"):
        where += f" ({f.encoding})"
    made_by = remediation.where(f)
    if made_by is None and f.layer_index is not None and f.layer_index in layers:
        made_by = shown_instruction(layers[f.layer_index].created_by or "") or None
    return f"{where}  <- {_clip(made_by, 100)}" if made_by else where


def _entries(findings: tuple[Finding, ...], layers: dict[int, LayerReport]) -> list[str]:
    """One entry per leaked value (its keyed fingerprint) with every place it was found; the JSON
    report keeps every occurrence."""
    groups: dict[str, list[Finding]] = {}
    for f in findings:
        groups.setdefault(f.secret_fingerprint, []).append(f)
    ordered = sorted(groups.values(), key=lambda g: (-max(f.severity.rank for f in g), g[0].layer_index or -1))
    out = []
    for group in ordered:
        top = max(group, key=lambda f: f.severity.rank)
        rules = ", ".join(dict.fromkeys(f.rule_id for f in group))
        what = rules + (f" {top.secret_id!r}" if top.secret_id is not None else "")
        places = list(dict.fromkeys(_place(f, layers) for f in group))
        count = f"  {len(places)} places" if len(places) > 1 else ""
        out.append(f"    {top.severity.value.upper():8} {what}  {top.preview}  fp:{top.secret_fingerprint[:12]}{count}")
        out.append(f"{'':13}{top.description}")
        out.extend(f"{'':13}{note}" for note in top.notes())
        out.extend(f"{'':13}at {p}" for p in places)
        fixes = dict.fromkeys(
            remediation.remedy(f, layers[f.layer_index].created_by if f.layer_index in layers else None).summary
            for f in group
        )
        out.extend(f"{'':13}fix: {fix}" for fix in fixes)
    return out


def _layer_made_by(layer: LayerReport) -> str:
    if layer.instruction is not None:
        return f"{layer.instruction.where} {layer.instruction.text}"
    if layer.base_image:
        return "base image: no instruction of the Dockerfile made it"
    return shown_instruction(layer.created_by or "")


def summary_line(report: ScanReport) -> str:
    """The one line every run ends with: image, layers, bytes, findings by severity, suppressed,
    skipped, completeness, time."""
    s = summary_dict(report)
    by_sev = ", ".join(f"{n} {sev}" for sev, n in s["by_severity"].items() if n) or "none"
    state = "complete" if s["complete"] else f"INCOMPLETE ({len(s['problems'])} problem(s))"
    if s["cached_layers"]:
        state += f"; {s['cached_layers']} layer(s) from the cache"
    names = ", ".join(image.name for image in report.images) or report.source_ref
    suppressed = f", {s['suppressed']} suppressed" if s["suppressed"] else ""
    return (
        f"{names}: {s['findings']} finding(s) ({by_sev}){suppressed} in {s['images']} image(s), "
        f"{s['layers']} layer(s), {_size(s['bytes_scanned'])}, {s['files_scanned']} files scanned, "
        f"{s['files_skipped']} skipped; {state}; {s['duration_s']:.1f}s"
    )


class TableRenderer(Renderer):
    def render(self, report: ScanReport) -> str:
        out = [f"leakscan: {report.source_kind}:{report.source_ref}  format: {report.archive_format}"]
        for image in report.images:
            out.append("")
            out.append(
                f"Image {image.name}  platform {image.platform or '?'}  config {_short(image.config_digest)}"
                f"  manifest {_short(image.manifest_digest)}"
                + (f"  Dockerfile {image.dockerfile}" if image.dockerfile else "")
            )
            for layer in image.layers:
                state = (
                    ""
                    if layer.scanned
                    else f"  NOT FULLY SCANNED: {layer.error or '; '.join(s.reason for s in layer.skips)}"
                )
                out.append(
                    f"  Layer {layer.index}  {_short(layer.diff_id)}  {_size(layer.size)}  "
                    f"{layer.files_scanned} files  {_clip(_layer_made_by(layer), 100)}{state}"
                )
                for skip in layer.skips if layer.scanned else ():
                    out.append(f"    skipped {skip.where}: {skip.reason}")
            if image.findings:
                layers = {layer.index: layer for layer in image.layers}
                values = len({f.secret_fingerprint for f in image.findings})
                out.append(f"  Findings: {values} leaked value(s) in {len(image.findings)} place(s)")
                out.extend(_entries(image.findings, layers))
            out.extend(f"  warning: {w}" for w in image.warnings)
            out.extend(f"  error: {e}" for e in image.errors)
        if report.metadata_findings:
            out.append("")
            out.append("Archive metadata")
            out.extend(_entries(report.metadata_findings, {}))
        out.extend(f"warning: {w}" for w in report.warnings)
        out.extend(f"error: {e}" for e in report.errors)
        out.append("")
        if report.suppressed:
            out.append(
                f"{len(report.suppressed)} finding(s) suppressed (baseline, ignore file or --exclude-path); "
                "--format json lists them with the reason"
            )
        out.append(summary_line(report))
        return "\n".join(out) + "\n"
