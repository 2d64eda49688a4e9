"""The README is a front door a newcomer reads in five minutes: at most 300 lines, its two
newcomer commands exactly as they were, its quick start run as written (a SARIF on Dockerfile
lines with remediation), and links into docs/ that exist."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema

from tests.test_cli import assert_no_canary

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
TRY_IT = (
    "pip install . && leakscan testdata/archives/sample-docker-legacy.tar.gz "
    "--secret id=demo,src=testdata/sample/demo-secret.txt"
)
TESTS = "pip install -e '.[test]' && scripts/with-services python -m pytest"


def test_the_readme_is_short_and_keeps_the_newcomer_commands() -> None:
    assert len(README.splitlines()) <= 300
    assert f"```sh\n{TRY_IT}\n```" in README
    assert f"```sh\n{TESTS}\n```" in README


def test_every_link_into_docs_exists() -> None:
    links = re.findall(r"\]\((docs/[^)#]+)", README)
    assert len(links) >= 8
    for link in links:
        assert (ROOT / link).is_file(), link
    for doc in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), (doc.name, target)


def test_the_detection_and_performance_sections_moved_whole() -> None:
    detection = (ROOT / "docs" / "detection.md").read_text()
    performance = (ROOT / "docs" / "performance.md").read_text()
    assert "## Detection and precision" in detection and "**Recall: 33/33**" in detection
    assert "## Performance" in performance and "### The service" in performance


def test_the_quick_start_as_a_newcomer_runs_it(tmp_path: Path) -> None:
    """The README's commands after `pip install .`, in a copy of the checkout's testdata, with the
    leakscan this environment installed (tests.test_distribution: under its own name)."""
    blocks = re.findall(r"```sh\n(.*?)```", README[: README.index("## Run the tests")], re.S)
    commands = [line.removeprefix("pip install . && ") for b in blocks for line in b.splitlines()]
    commands = [c for c in commands if c.startswith("leakscan testdata/")]
    assert len(commands) == 2 and "--dockerfile testdata/sample/Dockerfile" in commands[1]
    for part in ("sample", "archives/sample-docker-legacy.tar.gz"):
        src = ROOT / "testdata" / part
        dst = tmp_path / "testdata" / part
        dst.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dst)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    for command in commands:
        proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert proc.returncode == 1, proc.stderr  # the sample leaks
        assert_no_canary(proc.stdout, proc.stderr)
    assert "testdata/sample/Dockerfile:7 COPY" in proc.stdout and "fix: " in proc.stdout
    sarif = json.loads((tmp_path / "leakscan.sarif").read_text())
    schema = json.loads((ROOT / "testdata" / "schemas" / "sarif-schema-2.1.0.json").read_text())
    jsonschema.validate(sarif, schema)
    results = sarif["runs"][0]["results"]
    assert results and all(
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "testdata/sample/Dockerfile"
        and r["locations"][0]["physicalLocation"]["region"]["startLine"] in (5, 7, 8, 10)
        for r in results
    )
    rules = sarif["runs"][0]["tool"]["driver"]["rules"]
    assert all("Rotate the secret" in rule["help"]["text"] for rule in rules)
    assert all("Fix: " in r["message"]["text"] for r in results)
