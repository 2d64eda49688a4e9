"""Baselines, ignore files, --exclude-path and custom rules, through the command as users run it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_SECRET
from tests.test_cli import run

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
