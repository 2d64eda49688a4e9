"""The first day in CI: --dockerfile ties every layer and finding to its instruction and line (or
says the base image made it), SARIF results point at the Dockerfile line, every format says how to
fix what it found (by how the secret got there), the table has one entry per leaked value, ENV
and LABEL read as such, and BuildKit provenance's Dockerfile is used without the flag."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from scanner.findings.dockerfile import history_keyword, map_history, parse, shown_instruction
from tests.conftest import SAMPLE
from tests.support.convert import to_containerd
from tests.support.tars import docker_archive, layer_tar
from tests.test_cli import SAMPLE_ARGS, SAMPLE_ENV, assert_no_canary, run

SCHEMAS = Path(__file__).resolve().parents[2] / "testdata/schemas"
DOCKERFILE = "testdata/sample/Dockerfile"  # the README's newcomer command, from the checkout
ROOT = Path(__file__).resolve().parents[2]
# the sample Dockerfile: 5 ENV, 7 COPY credentials, 8 RUN (secret mount, copies, deploy.conf), 10 RUN rm


@pytest.fixture(scope="module")
def reports(sample_archives: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("dockerfile")
    files = {fmt: out / f"r.{fmt}" for fmt in ("sarif", "json", "gitlab", "junit")}
    proc = run(
        str(sample_archives["docker-legacy"]),
        *SAMPLE_ARGS,
        "--dockerfile",
        DOCKERFILE,
        *[a for fmt, path in files.items() for a in ("--format", f"{fmt}={path}")],
        "--format",
        "table",
        env={**SAMPLE_ENV, "XDG_CACHE_HOME": str(out / "cache")},
        cwd=ROOT,
    )
    assert proc.returncode == 1, proc.stderr
    texts = {fmt: path.read_text() for fmt, path in files.items()}
    assert_no_canary(proc.stdout, proc.stderr, *texts.values())
    return {"table": proc.stdout, **texts}


def test_sarif_results_point_at_the_dockerfile_line_with_the_image_path_related(reports: dict[str, Any]) -> None:
    doc = json.loads(reports["sarif"])
    jsonschema.validate(doc, json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text()))
    results = doc["runs"][0]["results"]
    lines = {}
    for r in results:
        (loc,) = r["locations"]
        assert loc["physicalLocation"]["artifactLocation"]["uri"] == DOCKERFILE
        (related,) = r["relatedLocations"]
        inside = related["physicalLocation"]["artifactLocation"]["uri"]
        assert inside in r["message"]["text"] or inside.removeprefix("metadata/") in r["message"]["text"]
        lines[inside] = loc["physicalLocation"]["region"]["startLine"]
    assert lines["tmp/demo-token"] == 8 and lines["etc/demo-token.b64"] == 8
    assert lines["root/.aws/credentials"] == 7
    assert lines["metadata/config.Env[1]"] == 5
    assert lines["metadata/history[5].created_by"] == 10  # the build argument, recorded by the RUN on line 10
    rules = doc["runs"][0]["tool"]["driver"]["rules"]
    for rule in rules:
        assert "Rotate the secret" in rule["help"]["text"] and "**" in rule["help"]["markdown"]
    known = next(r for r in rules if r["id"] == "known-secret")
    assert "RUN --mount=type=secret" in known["help"]["text"] and "later layer" in known["help"]["text"]


def _findings(doc: dict[str, Any]) -> list[dict[str, Any]]:
    image = doc["images"][0]
    return [f for layer in image["layers"] for f in layer["findings"]] + image["metadata_findings"]


def test_json_carries_instructions_base_image_and_a_remedy_per_origin(reports: dict[str, Any]) -> None:
    doc = json.loads(reports["json"])
    image = doc["images"][0]
    assert image["dockerfile"] == DOCKERFILE
    layers = image["layers"]
    assert layers[0]["base_image"] is True and layers[0]["instruction"] is None
    assert [layer["instruction"]["line"] for layer in layers[1:]] == [7, 8, 10]
    assert layers[2]["instruction"]["text"].startswith("RUN --mount=type=secret,id=demo cp /run/secrets/demo")
    assert layers[2]["created_by"].startswith("RUN |1 DEPLOY_TOKEN=<redacted> /bin/sh -c")  # kept whole
    by_place = {(f["path"] or f["field"]): f for f in _findings(doc)}
    expected = {
        "root/.aws/credentials": "copied-file",
        "tmp/demo-token": "deleted-later",
        "etc/demo-token.b64": "run-wrote",
        "config.Env[1]": "env",
        "history[4].created_by": "build-arg",
    }
    for place, origin in expected.items():
        assert by_place[place]["origin"] == origin, place
    remedies = {by_place[p]["remediation"] for p in expected}
    assert len(remedies) == len(expected)  # each says something of its own
    assert all("Rotate the secret" in r for r in remedies)
    assert "your build secret" in by_place["tmp/demo-token"]["remediation"].lower()  # a known build secret
    assert "--secret id=NAME,env=NAME" in by_place["history[4].created_by"]["remediation"]
    assert by_place["tmp/demo-token"]["instruction"]["line"] == 8


def test_env_and_label_findings_read_as_env_and_label(reports: dict[str, Any]) -> None:
    env = next(f for f in _findings(json.loads(reports["json"])) if f["field"] == "config.Env[1]")
    assert "environment file" not in env["description"] and "ENV variable DEMO_PASSWORD" in env["description"]
    assert env["instruction"]["text"] == "ENV DEMO_PASSWORD=<redacted>"  # the Dockerfile holds the value


def test_gitlab_and_junit_carry_the_fix_and_the_line(reports: dict[str, Any]) -> None:
    doc = json.loads(reports["gitlab"])
    schema = json.loads((SCHEMAS / "gitlab-secret-detection-report-format-15.0.7.json").read_text())
    jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker()).validate(doc)
    by_file = {v["location"]["file"]: v for v in doc["vulnerabilities"]}
    deleted = by_file["tmp/demo-token"]
    assert "later layer" in deleted["solution"] and deleted["details"]["dockerfile"]["value"].startswith(
        f"{DOCKERFILE}:8 RUN"
    )
    assert by_file["root/.aws/credentials"]["solution"] != deleted["solution"]
    failures = ET.fromstring(reports["junit"]).findall(".//failure")
    assert failures and all("Fix: " in (f.get("message") or "") for f in failures)
    assert any(f"made by: {DOCKERFILE}:7 COPY" in (f.text or "") for f in failures)


def test_table_one_entry_per_value_with_its_places_and_instructions(reports: dict[str, Any]) -> None:
    table = reports["table"]
    assert "Layer 0" in table and "base image: no instruction of the Dockerfile made it" in table
    assert f"{DOCKERFILE}:7 COPY demo-credentials /root/.aws/credentials" in table
    assert table.count("known-secret 'DEPLOY_TOKEN'") == 1  # a file and two history entries: one entry
    entry = re.split(r"\n    (?=\S)", table[table.index("known-secret 'DEPLOY_TOKEN'") :])[0]
    assert "3 places" in entry.splitlines()[0]
    assert "at history[4].created_by" in entry and "at history[5].created_by" in entry
    assert "at layer 2 etc/deploy.conf:1" in entry
    assert f"<- {DOCKERFILE}:10 RUN rm /tmp/demo-token" in table
    assert table.count("fix: ") >= 5
    assert "RUN |1" not in table  # the instruction, not the build-arg prefix


def test_without_a_dockerfile_the_table_shows_the_command_and_json_every_occurrence(
    sample_archives: dict[str, Path],
) -> None:
    args = (str(sample_archives["docker-legacy"]), *SAMPLE_ARGS[:2])  # DEPLOY_TOKEN as a build argument only
    table = run(*args).stdout
    assert "RUN cp /run/secrets/demo /tmp/demo-token && base64" in table
    assert "fix: " in table
    assert table.count("build-arg-secret") == 1 and "2 places" in table.split("build-arg-secret")[1].splitlines()[0]
    doc = json.loads(run(*args, "--format", "json").stdout)
    fields = [f["field"] for f in doc["images"][0]["metadata_findings"] if f["rule_id"] == "build-arg-secret"]
    assert fields == ["history[4].created_by", "history[5].created_by"]
    assert all(f["remediation"] for f in _findings(doc))


def test_a_secret_in_a_base_layer_is_the_base_images(tmp_path: Path) -> None:
    token = b"ghp_" + b"x7Q2" * 9
    archive = tmp_path / "app.tar"
    history = [
        {"created_by": "/bin/sh -c #(nop) ADD file:0123 in / "},
        {"created_by": "RUN /bin/sh -c echo made-by-base > /base.txt # buildkit"},
        {"created_by": "COPY app.py /app/app.py # buildkit"},
    ]
    archive.write_bytes(
        docker_archive(
            [
                layer_tar([("etc/os-release", b"ID=test\n")]),
                layer_tar([("root/.git-credentials", b"https://u:" + token + b"@github.com\n")]),
                layer_tar([("app/app.py", b"print('hello')\n")]),
            ],
            history=history,
        )
    )
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM example/base:1\nCOPY app.py /app/app.py\n")
    proc = run(str(archive), "--dockerfile", str(dockerfile), "--format", "json")
    assert proc.returncode == 1 and token.decode() not in proc.stdout
    doc = json.loads(proc.stdout)
    layers = doc["images"][0]["layers"]
    assert [layer["base_image"] for layer in layers] == [True, True, False]
    assert layers[2]["instruction"]["line"] == 2
    found = layers[1]["findings"]
    assert found and all(f["origin"] == "base-image" and f["base_image"] for f in found)
    assert all("base image" in f["remediation"] for f in found)


def test_provenance_dockerfile_is_used_without_the_flag(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "with-provenance.tar"
    to_containerd(sample_archives["docker-legacy"], archive, dockerfile=(SAMPLE / "Dockerfile").read_bytes())
    proc = run(str(archive), *SAMPLE_ARGS, "--format", "sarif", env=SAMPLE_ENV)
    assert proc.returncode == 1, proc.stderr
    assert_no_canary(proc.stdout)
    results = json.loads(proc.stdout)["runs"][0]["results"]
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert uris == {"Dockerfile"}
    deleted = next(
        r
        for r in results
        if r["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "tmp/demo-token"
    )
    assert deleted["locations"][0]["physicalLocation"]["region"]["startLine"] == 8


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM a\nRUN echo \\\n  one \\\n  # a comment inside\n  two\nCOPY x /y\n", [("RUN", 2), ("COPY", 6)]),
        ("# escape=`\nFROM a\nRUN echo `\n  b\nENV A=1\n", [("RUN", 3), ("ENV", 5)]),
        ("FROM a\nRUN <<EOF\nset -e\necho hi\nEOF\nUSER app\n", [("RUN", 2), ("USER", 6)]),
        ("FROM a AS build\nRUN make\nFROM b\nCOPY --from=build /out /out\n", [("COPY", 4)]),
        ("FROM a AS build\nRUN make\nFROM build AS final\nENV X=1\n", [("RUN", 2), ("ENV", 4)]),  # chained
    ],
)
def test_dockerfile_parsing(text: str, expected: list[tuple[str, int]]) -> None:
    chain = parse(text, "Dockerfile").final_chain()
    assert [(i.keyword, i.line) for i in chain] == expected


def test_copy_from_a_numbered_stage_names_it() -> None:
    (copy,) = parse("FROM a AS builder\nRUN make\nFROM b\nCOPY --from=0 /o /o\n", "D").final_chain()
    assert copy.from_stage == "builder"


@pytest.mark.parametrize(
    ("created_by", "keyword", "shown"),
    [
        ("RUN |2 A=<redacted> B=<redacted> /bin/sh -c make install # buildkit", "RUN", "RUN make install"),
        ("/bin/sh -c #(nop)  ENV PATH=/usr/bin", "ENV", "ENV PATH=/usr/bin"),
        ("/bin/sh -c apt-get update", "RUN", "RUN apt-get update"),
        ("COPY app /app # buildkit", "COPY", "COPY app /app"),
    ],
)
def test_history_entries_read_as_instructions(created_by: str, keyword: str, shown: str) -> None:
    assert history_keyword(created_by) == keyword and shown_instruction(created_by) == shown


def test_a_dockerfile_that_does_not_match_the_history_is_a_warning() -> None:
    history = [{"created_by": "RUN /bin/sh -c make # buildkit"}]
    mapped, warnings = map_history(history, parse("FROM a\nRUN something else\n", "Dockerfile"))
    assert mapped[0] is not None and warnings and "differs from the image's history" in warnings[0]
