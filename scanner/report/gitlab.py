"""GitLab's secret-detection report, schema 15.0.7 (FORMATS.md 5.2), for ``artifacts:reports:secret_detection``.

GitLab knows repositories, not images, so the mapping is:

- ``location.file``: the path in the image (``metadata/<field>`` for config and history findings);
  ``location.commit.sha`` (required by the schema): the image's manifest digest, else its config
  digest, else ``0000000``, as FORMATS.md suggests for scans that are not of a git commit.
- ``id``: a UUID derived from the finding's fingerprint and layer, so that the same finding has the
  same id across runs and two copies of a file in two layers are two vulnerabilities.
- ``details``: layer index, diff_id, the instruction that created the layer (redacted), the
  Dockerfile line that put the secret there (``--dockerfile`` or provenance), the status (present,
  deleted, overwritten), the secret's keyed fingerprint and preview.
- ``solution``: what to change, by how the secret got there (scanner.report.remediation).
- ``raw_source_code_extract`` is the redacted preview.  GitLab's own analyzer puts the secret there;
  a report that is uploaded as a CI artifact must not hold it.
- Low-confidence findings (documented examples, placeholders, test paths) carry GitLab's
  ``flagged-as-likely-false-positive`` flag.  Suppressed findings are left out: GitLab has no
  notion of an accepted finding and would show them as open.
- ``scan.status`` is ``failure`` when any part of the image could not be read, with the reasons in
  ``scan.messages``: an incomplete scan never looks like a clean one.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from .. import __version__
from ..models import Finding, ImageReport, LayerReport, ScanReport, Severity
from . import jsontext
from .interface import Renderer
from .remediation import remedy
from .remediation import where as made_by_of

VERSION = "15.0.7"
SCHEMA = "https://gitlab.com/gitlab-org/security-products/security-report-schemas/-/raw/v15.0.7/dist/secret-detection-report-format.json"
SEVERITY = {Severity.CRITICAL: "Critical", Severity.HIGH: "High", Severity.MEDIUM: "Medium", Severity.LOW: "Low"}
NO_COMMIT = "0000000"
_NAMESPACE = uuid.UUID("6c65616b-7363-616e-2d67-69746c616221")  # fixed: ids stay stable across versions
_TOOL = {"id": "leakscan", "name": "leakscan", "version": __version__, "vendor": {"name": "leakscan"}}


def _time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))


def _text(name: str, value: object) -> dict[str, Any]:
    return {"name": name, "type": "text", "value": str(value)}


def _vulnerability(f: Finding, image: ImageReport | None, layer: LayerReport | None) -> dict[str, Any]:
    file = f.path if f.path is not None else f"metadata/{f.field or 'unknown'}"
    commit = (image.manifest_digest or image.config_digest) if image is not None else None
    where = f"in layer {layer.index} ({layer.diff_id or 'no diff_id'}), file `{file}`" if layer else f"in `{file}`"
    description = f"{f.description}, found {where} of image `{image.name if image else 'archive'}`."
    if f.status is not None and f.status.value != "present":
        hidden = f" by layer {f.hidden_by_layer}" if f.hidden_by_layer is not None else ""
        description += f" The file is {f.status.value}{hidden}, but the layer still ships it."
    if f.secret_id:
        description += f" It is the build secret `{f.secret_id}` ({f.encoding})."
    made_by = made_by_of(f)
    if made_by is not None:
        description += f" Put there by `{made_by[:300]}`."
    description += f" Value {f.preview}, fingerprint {f.secret_fingerprint}."
    description += "".join(f" {note[0].upper()}{note[1:]}." for note in f.notes())
    details: dict[str, Any] = {
        "image": _text("Image", image.name if image else "archive"),
        "detector": _text("Detector", f.detector),
        "confidence": _text("Confidence", f.confidence),
        "secret_fingerprint": _text("Secret fingerprint (keyed)", f.secret_fingerprint),
        "preview": _text("Redacted value", f.preview),
    }
    if made_by is not None:
        details["dockerfile"] = _text("Dockerfile", made_by)
    if layer is not None:
        details["layer_index"] = _text("Layer index", layer.index)
        details["diff_id"] = _text("Layer diff_id", layer.diff_id or "-")
        details["created_by"] = _text("Created by", layer.created_by or "-")
    if f.status is not None:
        details["status"] = _text("Status", f.status.value)
    if f.package is not None:
        details["package"] = _text("Package", f.package.describe())
    if f.also_matched:
        details["also_matched"] = _text("Also matched", ", ".join(f.also_matched))
    location: dict[str, Any] = {"file": file, "commit": {"sha": commit or NO_COMMIT}}
    if f.line:
        location.update(start_line=f.line, end_line=f.line)
    vuln: dict[str, Any] = {
        "id": str(uuid.uuid5(_NAMESPACE, f"{f.fingerprint}/{layer.index if layer else '-'}")),
        "name": f.description.split(" (")[0][:255],
        "description": description,
        "severity": SEVERITY[f.severity],
        "solution": remedy(f, layer.created_by if layer is not None else None).text,
        "identifiers": [{"type": "leakscan_rule_id", "name": f"leakscan rule {f.rule_id}", "value": f.rule_id}],
        "location": location,
        "details": details,
        "raw_source_code_extract": f.preview,
    }
    if f.confidence == "low":
        vuln["flags"] = [
            {
                "type": "flagged-as-likely-false-positive",
                "origin": "leakscan",
                "description": f.downgrade_reason
                or "A documented example, a placeholder or a file under docs/, examples/ or tests/.",
            }
        ]
    return vuln


def _messages(report: ScanReport) -> list[dict[str, str]]:
    out = [{"level": "fatal", "value": problem} for problem in report.problems]
    out += [{"level": "warn", "value": w} for w in report.warnings]
    for image in report.images:
        out += [{"level": "warn", "value": f"{image.name}: {w}"} for w in image.warnings]
        skipped = sum(len(layer.skips) for layer in image.layers if layer.scanned)
        if skipped:
            out.append({"level": "warn", "value": f"{image.name}: {skipped} item(s) skipped; see the JSON report"})
    return [m for m in out if m["value"]]


class GitlabRenderer(Renderer):
    def render(self, report: ScanReport) -> str:
        vulns: list[dict[str, Any]] = []
        for image in report.images:
            for layer in image.layers:
                vulns += [_vulnerability(f, image, layer) for f in layer.findings]
            vulns += [_vulnerability(f, image, None) for f in image.metadata_findings]
        first = report.images[0] if report.images else None
        vulns += [_vulnerability(f, first, None) for f in report.metadata_findings]
        started = report.started_at or time.time() - report.duration_s
        scan: dict[str, Any] = {
            "type": "secret_detection",
            "status": "success" if report.complete else "failure",
            "start_time": _time(started),
            "end_time": _time(started + report.duration_s),
            "analyzer": _TOOL,
            "scanner": {**_TOOL, "url": "https://pypi.org/project/leakscan-image/"},
        }
        messages = _messages(report)
        if messages:
            scan["messages"] = messages
        doc = {"version": VERSION, "schema": SCHEMA, "scan": scan, "vulnerabilities": vulns}
        return jsontext.dumps(doc, ensure_ascii=False) + "\n"
