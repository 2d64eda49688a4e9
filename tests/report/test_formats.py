"""SARIF (validated against the official 2.1.0 schema), JUnit XML, several formats in one run, and
the exit-code policy.  Every format is checked for the planted values."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_ENV_PASSWORD, SAMPLE_SECRET
from tests.support.report_schema import validate_json_reports, validate_report
from tests.support.tars import docker_archive, layer_tar
from tests.test_cli import SAMPLE_ARGS, SAMPLE_ENV, assert_no_canary, run

SCHEMAS = Path(__file__).resolve().parents[2] / "testdata/schemas"
SARIF_SCHEMA = json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text())
GITLAB_SCHEMA = json.loads((SCHEMAS / "gitlab-secret-detection-report-format-15.0.7.json").read_text())


@pytest.fixture(scope="module")
def outputs(sample_archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("formats")
    proc = run(
        str(sample_archives["containerd"]),
        *SAMPLE_ARGS,
        "--format",
        "table",
        "--format",
        f"sarif={out / 'r.sarif'}",
        "--format",
        f"json={out / 'r.json'}",
        "--format",
        f"junit={out / 'r.xml'}",
        "--format",
        f"gitlab={out / 'gl-secret-detection-report.json'}",
        env=SAMPLE_ENV,
    )
    assert proc.returncode == 1, proc.stderr
    return {
        "table": proc.stdout,
        "stderr": proc.stderr,
        "sarif": (out / "r.sarif").read_text(),
        "json": (out / "r.json").read_text(),
        "junit": (out / "r.xml").read_text(),
        "gitlab": (out / "gl-secret-detection-report.json").read_text(),
    }


def test_every_format_in_one_run_and_none_holds_a_secret(outputs: dict[str, str]) -> None:
    for text in outputs.values():
        assert_no_canary(text)
    assert "written to" in outputs["stderr"]


def test_sarif_validates_against_the_official_schema(outputs: dict[str, str]) -> None:
    doc = json.loads(outputs["sarif"])
    jsonschema.validate(doc, SARIF_SCHEMA)
    (run_,) = doc["runs"]
    rules = run_["tool"]["driver"]["rules"]
    assert all("security-severity" in r["properties"] for r in rules)
    results = run_["results"]
    assert results and all(r["partialFingerprints"]["leakscan/v1"] for r in results)
    assert all(rules[r["ruleIndex"]]["id"] == r["ruleId"] for r in results)
    deleted = [r for r in results if r["properties"].get("status") == "deleted"]
    assert deleted and all("diffId" in r["properties"] and "createdBy" in r["properties"] for r in deleted)
    assert any(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tmp/demo-token" for r in results)


def test_sarif_fingerprints_are_stable_across_layouts(sample_archives: dict[str, Path]) -> None:
    prints = []
    for fmt in ("containerd", "oci-zstd"):
        proc = run(str(sample_archives[fmt]), *SAMPLE_ARGS, "--format", "sarif", env=SAMPLE_ENV)
        prints.append(
            sorted(
                r["partialFingerprints"]["leakscan/v1"]
                for r in json.loads(proc.stdout)["runs"][0]["results"]
                if not r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].startswith("metadata/")
            )
        )
    assert prints[0] == prints[1]


def test_gitlab_report_validates_against_its_official_schema(outputs: dict[str, str]) -> None:
    doc = json.loads(outputs["gitlab"])
    assert GITLAB_SCHEMA["self"]["version"] == doc["version"]
    jsonschema.Draft7Validator(GITLAB_SCHEMA, format_checker=jsonschema.FormatChecker()).validate(doc)
    assert doc["scan"]["status"] == "success" and doc["scan"]["type"] == "secret_detection"
    vulns = doc["vulnerabilities"]
    sarif = json.loads(outputs["sarif"])["runs"][0]["results"]
    assert len(vulns) == len(sarif)  # every finding, none suppressed in this run
    assert len({v["id"] for v in vulns}) == len(vulns)
    deleted = [v for v in vulns if v["location"]["file"] == "tmp/demo-token"]
    assert deleted and deleted[0]["severity"] == "Critical"
    assert deleted[0]["details"]["status"]["value"] == "deleted"
    assert deleted[0]["location"]["commit"]["sha"].startswith("sha256:")
    assert any(v["location"]["file"].startswith("metadata/") for v in vulns)
    assert any(v.get("flags") for v in vulns)  # the sample's placeholder token is flagged, not dropped


def test_gitlab_report_ids_are_stable_and_an_incomplete_scan_is_a_failure(
    sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    ids = []
    for fmt in ("containerd", "oci-zstd"):
        proc = run(str(sample_archives[fmt]), *SAMPLE_ARGS, "--format", "gitlab", env=SAMPLE_ENV)
        doc = json.loads(proc.stdout)
        ids.append(sorted(v["id"] for v in doc["vulnerabilities"] if not v["location"]["file"].startswith("meta")))
    assert ids[0] == ids[1]
    partial = tmp_path / "partial.tar"  # a layer blob is missing: the report is written, and says so
    partial.write_bytes(docker_archive([layer_tar([("a", b"x")]), layer_tar([("b", b"c")])], drop={0}))
    proc = run(str(partial), "--format", "gitlab")
    assert proc.returncode == 3
    doc = json.loads(proc.stdout)
    jsonschema.validate(doc, GITLAB_SCHEMA)
    assert doc["scan"]["status"] == "failure"
    assert any(m["level"] == "fatal" for m in doc["scan"]["messages"])


def test_junit_validates_against_jenkins_junit_schema(outputs: dict[str, str]) -> None:
    import xmlschema

    xmlschema.XMLSchema(str(SCHEMAS / "junit-10.xsd")).validate(outputs["junit"])
    root = ET.fromstring(outputs["junit"])
    assert root.tag == "testsuites"
    failures = root.findall(".//failure")
    assert failures and int(root.get("failures", "0")) == len(failures)
    assert {c.get("name") for c in root.iter("testcase")} >= {"image metadata"}


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ((), 1),
        (("--fail-on", "critical"), 1),  # the build secret in the deleted file is critical
        (("--fail-on", "critical", "--no-fail-on-hidden", "--exclude-path", "etc/*"), 0),
        (("--exit-code", "42"), 42),
        (("--exit-code", "0"), 0),
    ],
)
def test_policy(sample_archives: dict[str, Path], args: tuple[str, ...], code: int) -> None:
    proc = run(str(sample_archives["docker-legacy"]), "--secret", f"id=demo,src={SAMPLE / 'demo-secret.txt'}", *args)
    assert proc.returncode == code, proc.stdout[-1500:]


def test_errors_exit_3_whatever_the_exit_code(tmp_path: Path) -> None:
    assert run(str(tmp_path / "missing.tar"), "--exit-code", "0").returncode == 3


@pytest.mark.parametrize("args", [("--format", "table", "--format", "json"), ("--format", "sarif=x", "-o", "y")])
def test_format_usage_errors(args: tuple[str, ...]) -> None:
    assert run("x.tar", *args).returncode == 2


def test_canaries_are_what_they_should_be() -> None:
    assert SAMPLE_SECRET and SAMPLE_DEPLOY_TOKEN and SAMPLE_ENV_PASSWORD


def test_every_run_ends_with_a_one_line_summary(sample_archives: dict[str, Path]) -> None:
    proc = run(str(sample_archives["oci-gzip"]), *SAMPLE_ARGS, "--format", "json", env=SAMPLE_ENV)
    json.loads(proc.stdout)  # stdout stays pure JSON; the summary goes to stderr
    (line,) = [x for x in proc.stderr.splitlines() if "finding(s) (" in x]
    assert line.startswith("leakscan-sample:1: ") and "4 layer(s)" in line and "complete" in line
    assert_no_canary(proc.stderr)


def test_the_json_report_validates_against_its_published_schema(outputs: dict[str, str]) -> None:
    doc = json.loads(outputs["json"])
    validate_report(doc)
    doc["images"][0]["layers"][0]["surprise"] = 1  # the schema is strict: a field it does not know fails
    with pytest.raises(jsonschema.ValidationError):
        validate_report(doc)


def test_the_cli_test_helper_validates_json_reports(tmp_path: Path) -> None:
    bad = tmp_path / "r.json"
    bad.write_text('{"schema_version": "1.2"}')
    with pytest.raises(jsonschema.ValidationError):
        validate_json_reports(("x.tar", "--format", f"json={bad}"), "", None)
    assert validate_json_reports(("x.tar", "--format", "table"), "not json", None) == 0
