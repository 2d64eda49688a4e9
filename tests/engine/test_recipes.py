"""The README's pipeline recipes (examples/), run as far as this machine allows: the real leakscan
commands of the GitHub Actions and GitLab CI jobs on a real leaky image, the scan-then-push snippet
and the docker build wrapper with the real engine.  The README must carry each file verbatim."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.support.images import LeakyImage, build_leaky_image
from tests.support.services import DOCKER

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
SCHEMAS = ROOT / "testdata" / "schemas"


def _env(leaky: LeakyImage, **extra: str) -> dict[str, str]:
    """The job's environment: leakscan on PATH, NPM_TOKEN holding the value the build was given."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    npmrc = Path(leaky.secret_flags[0].split("src=")[1]).read_text()
    return {**os.environ, "PATH": path, "NPM_TOKEN": npmrc, **extra}


def _bash(script: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-ec", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _no_secret(leaky: LeakyImage, *texts: str) -> None:
    for text in texts:
        for value in leaky.all_values():
            assert value not in text, "a planted secret in the output"


@pytest.mark.parametrize("name", ["github-actions.yml", "gitlab-ci.yml", "scan-then-push.sh", "docker-build-scan.sh"])
def test_the_readme_carries_each_recipe_verbatim(name: str) -> None:
    assert (EXAMPLES / name).read_text().strip() in (ROOT / "README.md").read_text()


def test_github_actions_job_scans_uploads_sarif_and_does_not_push(leaky: LeakyImage, tmp_path: Path) -> None:
    job: dict[str, Any] = yaml.safe_load((EXAMPLES / "github-actions.yml").read_text())["jobs"]["build-scan-push"]
    steps = {s.get("name"): s for s in job["steps"]}
    assert steps["Upload SARIF"]["with"]["sarif_file"] == "leakscan.sarif"
    assert "!cancelled()" in steps["Upload SARIF"]["if"] and "if" not in steps["Push"]  # push only after a pass
    build_secret = steps["Build"]["run"].split("--secret ")[1].split()[0]
    assert f"--secret {build_secret}" in steps["Scan"]["run"]  # the scan gets the build's own flag
    proc = _bash(steps["Scan"]["run"], tmp_path, _env(leaky, IMAGE=leaky.tag))
    assert proc.returncode == 1, proc.stderr[-2000:]
    _no_secret(leaky, proc.stdout, proc.stderr, (tmp_path / "leakscan.sarif").read_text())
    sarif = json.loads((tmp_path / "leakscan.sarif").read_text())
    jsonschema.validate(sarif, json.loads((SCHEMAS / "sarif-schema-2.1.0.json").read_text()))
    hits = [r for r in sarif["runs"][0]["results"] if r["ruleId"] == "known-secret"]
    assert any(r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "app/.npmrc" for r in hits)


def test_gitlab_job_writes_a_valid_secret_detection_report(leaky: LeakyImage, tmp_path: Path) -> None:
    pipeline: dict[str, Any] = yaml.safe_load((EXAMPLES / "gitlab-ci.yml").read_text())
    job = pipeline["secret_detection"]
    assert job["artifacts"]["reports"]["secret_detection"] == "gl-secret-detection-report.json"
    assert job["artifacts"]["when"] == "always" and pipeline["stages"].index("scan") < pipeline["stages"].index("push")
    with (tmp_path / "image.tar").open("wb") as fh:  # what the build job leaves as an artifact
        subprocess.run([DOCKER, "save", leaky.tag], stdout=fh, check=True, timeout=300)
    proc = _bash("\n".join(job["script"]), tmp_path, _env(leaky))
    assert proc.returncode == 1, proc.stderr[-2000:]
    text = (tmp_path / "gl-secret-detection-report.json").read_text()
    _no_secret(leaky, proc.stdout, proc.stderr, text)
    doc = json.loads(text)
    schema = json.loads((SCHEMAS / "gitlab-secret-detection-report-format-15.0.7.json").read_text())
    jsonschema.validate(doc, schema)
    files = {v["location"]["file"] for v in doc["vulnerabilities"] if v["identifiers"][0]["value"] == "known-secret"}
    assert "app/.npmrc" in files


def test_scan_then_push_pushes_only_a_clean_image(leaky: LeakyImage, tmp_path: Path) -> None:
    script = str(EXAMPLES / "scan-then-push.sh")
    fake = tmp_path / "docker"  # records the push instead of contacting a registry
    fake.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "pushed"}\n')
    fake.chmod(0o755)
    env = _env(leaky, DOCKER=str(fake))
    proc = _bash(f'{script} "$IMAGE" --secret id=npm_token,env=NPM_TOKEN', tmp_path, {**env, "IMAGE": leaky.tag})
    assert proc.returncode == 1 and "not pushing" in proc.stderr
    assert not (tmp_path / "pushed").exists()
    _no_secret(leaky, proc.stdout, proc.stderr)
    clean = "leakscan-test-base:1"
    proc = _bash(f'{script} "$IMAGE"', tmp_path, {**env, "IMAGE": clean})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "pushed").read_text().split() == ["push", clean]


def test_docker_build_wrapper_scans_with_the_builds_own_secret_flags(engine: str, tmp_path: Path) -> None:
    built = build_leaky_image(tmp_path / "first", tag="leakscan-test-wrapper:1")  # makes the context and secrets
    args = [a for flag in built.secret_flags for a in ("--secret", flag)]
    args += [a for name, value in built.env.items() for a in ("--build-arg", f"{name}={value}")]
    proc = subprocess.run(
        [
            str(EXAMPLES / "docker-build-scan.sh"),
            "--network",
            "none",
            "-q",
            *args,
            "-t",
            "leakscan-test-wrapper:2",
            str(built.context),
        ],
        env={**_env(built), "DOCKER": DOCKER, "LEAKSCAN_ARGS": "--format json --no-cache"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr[-2000:]
    _no_secret(built, proc.stdout, proc.stderr)
    doc = json.loads(proc.stdout[proc.stdout.index("{") :])
    ids = {f.get("secret_id") for layer in doc["images"][0]["layers"] for f in layer["findings"]}
    assert {"npmrc", "token", "cache", "conf"} <= ids  # every --secret of the build, found where it leaked
