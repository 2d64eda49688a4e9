"""JUnit XML, for CI systems that only read test reports: one test suite per image, one test case
per layer and one for the image metadata; each finding is a failure of its case."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from ..models import Finding, ScanReport
from .interface import Renderer
from .remediation import remedy, where


def _failure(case: ET.Element, f: Finding, created_by: str | None = None) -> None:
    place = f.path if f.path is not None else f.field
    fix = remedy(f, created_by)
    message = f"{f.severity.value}: {f.description}. Fix: {fix.summary}"
    node = ET.SubElement(case, "failure", message=message, type=f.rule_id)
    made_by = where(f)
    node.text = (
        f"{place}{':' + str(f.line) if f.line else ''} status={f.status.value if f.status else '-'} "
        f"value={f.preview} secret_fingerprint={f.secret_fingerprint} fingerprint={f.fingerprint}"
        + (f"\nmade by: {made_by}" if made_by else "")
        + f"\nfix: {fix.text}"
        + "".join(f"\n{note}" for note in f.notes())
    )


class JunitRenderer(Renderer):
    def render(self, report: ScanReport) -> str:
        suites = ET.Element("testsuites", name="leakscan", tests="0", failures="0", errors="0")
        total = failures = errors = 0
        for image in report.images:
            suite = ET.SubElement(suites, "testsuite", name=image.name)
            cases = 0
            for layer in image.layers:
                case = ET.SubElement(
                    suite, "testcase", classname=image.name, name=f"layer {layer.index} {layer.diff_id or ''}".strip()
                )
                cases += 1
                for f in layer.findings:
                    _failure(case, f, layer.created_by)
                    failures += 1
                if not layer.scanned:
                    ET.SubElement(case, "error", message=layer.error or "layer not scanned")
                    errors += 1
            meta = ET.SubElement(suite, "testcase", classname=image.name, name="image metadata")
            cases += 1
            for f in image.metadata_findings:
                _failure(meta, f)
                failures += 1
            suite.set("tests", str(cases))
            suite.set("failures", str(sum(len(c.findall("failure")) for c in suite)))
            suite.set("errors", str(sum(len(c.findall("error")) for c in suite)))
            total += cases
        suites.set("tests", str(total))
        suites.set("failures", str(failures))
        suites.set("errors", str(errors))
        ET.indent(suites)
        return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
