"""Baselines, ignore files, --exclude-path and custom rules, through the command as users run it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scanner.findings.suppress import glob_match
from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_SECRET
from tests.test_cli import assert_no_canary, run

ROOT = Path(__file__).resolve().parents[1]

ARGS = ("--secret", f"id=demo,src={SAMPLE / 'demo-secret.txt'}")


def _json(proc_stdout: str) -> dict:  # type: ignore[type-arg]
    return json.loads(proc_stdout)


def test_baseline_round_trip_suppresses_everything_and_counts_it(
    sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    image = str(sample_archives["docker-legacy"])
    base = run("baseline", image, *ARGS)
    assert base.returncode == 0, base.stderr
    assert SAMPLE_SECRET not in base.stdout and SAMPLE_DEPLOY_TOKEN not in base.stdout
    doc = json.loads(base.stdout)
    assert doc["findings"] and all(len(e["fingerprint"]) == 32 for e in doc["findings"])
    path = tmp_path / "baseline.json"
    path.write_text(base.stdout)
    # the same content in another archive layout: fingerprints are stable across layouts and rebuilds
    proc = run(str(sample_archives["oci-zstd"]), *ARGS, "--baseline", str(path), "--format", "json")
    assert proc.returncode == 0, proc.stdout[-2000:]
    report = _json(proc.stdout)
    assert report["summary"]["findings"] == 0
    assert report["summary"]["suppressed"] == len(doc["findings"]) > 0
    suppressed = [f for layer in report["images"][0]["layers"] for f in layer["suppressed"]]
    assert suppressed and all(f["suppressed_by"] == "baseline" for f in suppressed)
    table = run(str(sample_archives["oci-zstd"]), *ARGS, "--baseline", str(path))
    assert "suppressed" in table.stdout and table.returncode == 0


def test_ignore_file_by_rule_and_path_glob(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    ignore = tmp_path / "ignore.toml"
    ignore.write_text(
        '[[ignore]]\nrule = "aws-access-key-id"\nreason = "docs"\n\n'
        '[[ignore]]\npath = "/tmp/*"\n\n[[ignore]]\nfield = "history[*"\n'
    )
    proc = run(str(sample_archives["docker-legacy"]), *ARGS, "--ignore-file", str(ignore), "--format", "json")
    report = _json(proc.stdout)
    findings = [f for layer in report["images"][0]["layers"] for f in layer["findings"]]
    suppressed = [f for layer in report["images"][0]["layers"] for f in layer["suppressed"]]
    assert not any(f["rule_id"] == "aws-access-key-id" for f in findings)
    assert not any((f["path"] or "").startswith("tmp/") for f in findings)
    assert {f["suppressed_by"] for f in suppressed} >= {"ignore rule=aws-access-key-id (docs)", "ignore path=/tmp/*"}
    meta = report["images"][0]
    assert not any((f["field"] or "").startswith("history[") for f in meta["metadata_findings"])
    assert any((f["field"] or "").startswith("history[") for f in meta["suppressed_metadata_findings"])
    assert report["summary"]["suppressed"] == len(suppressed) + len(meta["suppressed_metadata_findings"])


def test_exclude_path(sample_archives: dict[str, Path]) -> None:
    proc = run(str(sample_archives["docker-legacy"]), *ARGS, "--exclude-path", "etc/*", "--format", "json")
    report = _json(proc.stdout)
    layer2 = report["images"][0]["layers"][2]
    assert {f["path"] for f in layer2["findings"]} == {"tmp/demo-token"}
    assert {f["suppressed_by"] for f in layer2["suppressed"]} == {"exclude-path etc/*"}


def test_custom_and_disabled_rules_from_config(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    config = tmp_path / "leakscan.toml"
    config.write_text(
        '[rules]\ndisable = ["aws-access-key-id"]\n\n[[rules.custom]]\nid = "demo-deploy"\n'
        'description = "demo deploy token"\nregex = "deploy=(demo-[a-z-]+[0-9]+)"\ngroup = 1\n'
        'keywords = ["deploy="]\nseverity = "critical"\n'
    )
    proc = run(str(sample_archives["docker-legacy"]), "--config", str(config), "--format", "json")
    report = _json(proc.stdout)
    rules = {f["rule_id"] for layer in report["images"][0]["layers"] for f in layer["findings"]}
    assert "aws-access-key-id" not in rules and "demo-deploy" in rules
    assert SAMPLE_DEPLOY_TOKEN not in proc.stdout
    listed = run("rules", "--config", str(config)).stdout
    assert "demo-deploy" in listed and "aws-access-key-id " not in listed


def test_bad_config_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text('[[rules.custom]]\nid = "x"\nregex = "("\n')
    proc = run("x.tar", "--config", str(config))
    assert proc.returncode == 2 and "bad regex" in proc.stderr
    config.write_text('[rules]\ndisable = ["no-such-rule"]\n')
    assert run("x.tar", "--config", str(config)).returncode == 2


def test_rules_command_lists_every_rule() -> None:
    proc = run("rules")
    assert proc.returncode == 0
    assert "github-token" in proc.stdout and "private-key-openssh" in proc.stdout
    count = int(proc.stdout.strip().splitlines()[-1].split()[0])
    assert count >= 150


def _readme_ignore_example() -> str:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```toml\n(.*?)```", text, re.S)
    return next(b for b in blocks if "[[ignore]]" in b and "history[*].created_by" in b)


def test_the_readmes_ignore_example_suppresses_the_history_findings(
    sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    ignore = tmp_path / ".leakscan-ignore.toml"
    ignore.write_text(_readme_ignore_example())
    proc = run(str(sample_archives["docker-legacy"]), *ARGS, "--ignore-file", str(ignore), "--format", "json")
    image = _json(proc.stdout)["images"][0]
    assert not any((f["field"] or "").startswith("history[") for f in image["metadata_findings"])
    gone = [f for f in image["suppressed_metadata_findings"] if f["field"].startswith("history[")]
    # the two RUN steps' DEPLOY_TOKEN build argument; the ENV step's DEMO_PASSWORD is the config's
    # finding, which names that history entry among its places (engine._fold_env_history)
    assert len(gone) == 2 and all(f["suppressed_by"].startswith("ignore field=history[*].created_by") for f in gone)
    assert {f["rule_id"] for f in gone} == {"build-arg-secret"}
    (env,) = [f for f in image["metadata_findings"] if f["field"] == "config.Env[1]"]
    assert len(env["places"]) == 1 and env["places"][0].startswith("history[")


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("history[*].created_by", "history[4].created_by", True),
        ("history[4].created_by", "history[4].created_by", True),  # exact, brackets and all
        ("history[4].created_by", "history4.created_by", False),  # a [ is a bracket, not a class
        ("history[45]", "history4", False),
        ("history[?].created_by", "history[7].created_by", True),
        ("history[?].created_by", "history[12].created_by", False),
        ('config.Labels["org.*"]', 'config.Labels["org.example.key"]', True),
        ("usr/lib/python3*/site-packages/*", "usr/lib/python3.11/site-packages/a/b.py", True),
        ("etc/*.conf", "etc/deploy.conf", True),
        ("etc/*.conf", "etc/deployxconf", False),  # a . is a dot
        ("etc/[!a]*", "etc/b", False),
    ],
)
def test_globs_are_literal_except_star_and_question_mark(pattern: str, text: str, matches: bool) -> None:
    assert glob_match(text, pattern) is matches


def test_ignore_and_baseline_entries_that_match_nothing_are_warnings(
    sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    image = str(sample_archives["docker-legacy"])
    ignore = tmp_path / "ignore.toml"
    ignore.write_text(
        '[[ignore]]\nrule = "no-such-rule"\n\n[[ignore]]\npath = "etc/*"\n\n'
        '[[ignore]]\nfield = "history[99].created_by"\nreason = "stale"\n'
    )
    baseline = tmp_path / "baseline.json"
    doc = json.loads(run("baseline", image, *ARGS).stdout)
    doc["findings"].append({"fingerprint": "0" * 32, "rule_id": "github-token", "path": "gone/file", "field": None})
    baseline.write_text(json.dumps(doc))
    args = (image, *ARGS, "--ignore-file", str(ignore), "--baseline", str(baseline))
    proc = run(*args, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    warnings = _json(proc.stdout)["warnings"]
    assert f"--ignore-file {ignore} ignore[0] (ignore rule=no-such-rule) matched no finding" in warnings
    assert f"--ignore-file {ignore} ignore[2] (ignore field=history[99].created_by (stale)) matched no finding" in (
        warnings
    )
    assert not any("ignore[1]" in w for w in warnings)  # etc/* matched (shadowed by the baseline, still used)
    assert f"--baseline {baseline}: entry {'0' * 32} (github-token gone/file) matched no finding" in warnings
    assert len(warnings) == 3
    assert all(f"warning: {w}" in proc.stderr for w in warnings)  # on stderr too when stdout is JSON
    table = run(*args)
    assert "ignore[0] (ignore rule=no-such-rule) matched no finding" in table.stdout
    assert_no_canary(proc.stdout, proc.stderr, table.stdout)
