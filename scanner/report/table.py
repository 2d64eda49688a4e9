"""The terminal report: per image, per layer in image order, then metadata and a summary."""

from __future__ import annotations

from ..models import Finding, ScanReport
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


def _finding_line(f: Finding) -> str:
    if f.path is not None:
        where = f.path + (f":{f.line}" if f.line else "")
        if f.link_target:
            where += f" (hard link to {f.link_target})"
        if f.status is not None and f.hidden_by_layer is not None:
            where += f"  [{f.status.value} in layer {f.hidden_by_layer}]"
        elif f.status is not None:
            where += f"  [{f.status.value}]"
    else:
        where = f.field or "-"
    what = f.rule_id
    if f.secret_id is not None:
        what += f" {f.secret_id!r} ({f.encoding})"
    detail = f"{f.preview}  sha256:{f.secret_sha256[:16]}  {f.description}"
    notes = "".join(f"\n{'':13}{note}" for note in f.notes())
    return f"    {f.severity.value.upper():8} {what:32} {where}\n{'':13}{detail}{notes}"


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
            )
            for layer in image.layers:
                state = (
                    ""
                    if layer.scanned
                    else f"  NOT FULLY SCANNED: {layer.error or '; '.join(s.reason for s in layer.skips)}"
                )
                out.append(
                    f"  Layer {layer.index}  {_short(layer.diff_id)}  {_size(layer.size)}  "
                    f"{layer.files_scanned} files  {_clip(layer.created_by, 70)}{state}"
                )
                for f in layer.findings:
                    out.append(_finding_line(f))
                for skip in layer.skips if layer.scanned else ():
                    out.append(f"    skipped {skip.where}: {skip.reason}")
            if image.metadata_findings:
                out.append("  Metadata (config, history, manifest, attestations)")
                out.extend(_finding_line(f) for f in image.metadata_findings)
            out.extend(f"  warning: {w}" for w in image.warnings)
            out.extend(f"  error: {e}" for e in image.errors)
        if report.metadata_findings:
            out.append("")
            out.append("Archive metadata")
            out.extend(_finding_line(f) for f in report.metadata_findings)
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
