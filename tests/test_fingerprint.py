"""No plain hash of a secret in any report: fingerprints are keyed with a key that stays with the
user (LEAKSCAN_FINGERPRINT_KEY, the config's key_file, or a mode-600 file in the cache directory,
made on first use); baselines still work across runs; `leakscan fingerprint` answers "is this my
token?" from a value on standard input or in a file, never from the command line."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from scanner.errors import UsageError
from scanner.findings.fingerprint import FILE_NAME, load_key
from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_ENV_PASSWORD, SAMPLE_SECRET
from tests.test_cli import SAMPLE_ARGS, SAMPLE_ENV, run

PLAIN = [hashlib.sha256(v.encode()).hexdigest() for v in (SAMPLE_SECRET, SAMPLE_DEPLOY_TOKEN, SAMPLE_ENV_PASSWORD)]


def _formats(image: Path, cache: Path, out: Path, *extra: str, env: dict[str, str] | None = None) -> dict[str, str]:
    files = {fmt: out / f"r.{fmt}" for fmt in ("json", "sarif", "gitlab", "junit")}
    proc = run(
        str(image),
        *SAMPLE_ARGS,
        "--cache-dir",
        str(cache),
        *[a for fmt, path in files.items() for a in ("--format", f"{fmt}={path}")],
        "--format",
        "table",
        *extra,
        env={**SAMPLE_ENV, **(env or {})},
    )
    assert proc.returncode == 1, proc.stderr
    return {"table": proc.stdout, **{fmt: path.read_text() for fmt, path in files.items()}}


def _known(doc_text: str, secret_id: str) -> str:
    doc = json.loads(doc_text)
    found = [f for layer in doc["images"][0]["layers"] for f in layer["findings"]] + doc["images"][0][
        "metadata_findings"
    ]
    return next(f["secret_fingerprint"] for f in found if f.get("secret_id") == secret_id)


def test_no_report_holds_a_plain_sha256_and_the_key_file_is_private(
    sample_archives: dict[str, Path], tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    outputs = _formats(sample_archives["docker-legacy"], cache, tmp_path)
    for text in outputs.values():
        for digest in PLAIN:
            assert digest not in text and digest[:16] not in text
        assert "secret_sha256" not in text and "secretSha256" not in text
    key = cache / FILE_NAME
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = _formats(sample_archives["oci-zstd"], cache, tmp_path)  # the same key: the same fingerprints
    assert _known(again["json"], "demo") == _known(outputs["json"], "demo")
    other = _formats(sample_archives["oci-zstd"], tmp_path / "elsewhere", tmp_path)  # another key
    assert _known(other["json"], "demo") != _known(outputs["json"], "demo")


def test_the_environment_key_wins_and_is_shared(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    env = {"LEAKSCAN_FINGERPRINT_KEY": "ci-secret-key-of-the-team-0123"}
    a = _formats(sample_archives["docker-legacy"], tmp_path / "a", tmp_path, env=env)
    b = _formats(sample_archives["docker-legacy"], tmp_path / "b", tmp_path, env=env)
    assert _known(a["json"], "demo") == _known(b["json"], "demo")
    assert not (tmp_path / "a" / FILE_NAME).exists()


def test_leakscan_fingerprint_answers_is_this_my_token(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    report = _formats(sample_archives["docker-legacy"], cache, tmp_path)["json"]
    expected = _known(report, "demo")
    from_stdin = run("fingerprint", "--cache-dir", str(cache), stdin=(SAMPLE_SECRET + "\n").encode())
    assert from_stdin.returncode == 0, from_stdin.stderr
    assert from_stdin.stdout.strip() == expected
    assert f"key file {cache / FILE_NAME}" in from_stdin.stderr
    from_file = run("fingerprint", str(SAMPLE / "demo-secret.txt"), "--cache-dir", str(cache))
    assert from_file.stdout.strip() == expected
    token = run("fingerprint", "--cache-dir", str(cache), stdin=SAMPLE_DEPLOY_TOKEN.encode())
    assert token.stdout.strip() == _known(report, "DEPLOY_TOKEN")
    assert run("fingerprint", "--cache-dir", str(cache), stdin=b"not-my-token-at-all").stdout.strip() != expected
    for proc in (from_stdin, from_file, token):
        assert SAMPLE_SECRET not in proc.stdout + proc.stderr and SAMPLE_DEPLOY_TOKEN not in proc.stdout + proc.stderr


def test_a_value_on_the_command_line_is_not_taken(tmp_path: Path) -> None:
    proc = run("fingerprint", "hunter2-my-password", "--cache-dir", str(tmp_path))
    assert proc.returncode == 2 and "hunter2" not in proc.stdout  # a FILE argument, which does not exist
    assert run("fingerprint", "--cache-dir", str(tmp_path), stdin=b"  \n").returncode == 2  # nothing given


def test_key_sources(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="shorter than"):
        load_key(tmp_path, environ={"LEAKSCAN_FINGERPRINT_KEY": "short"})
    key_file = tmp_path / "team.key"
    key_file.write_text("a-team-key-kept-out-of-the-repo\n")
    config = tmp_path / "leakscan.toml"
    config.write_text('[fingerprint]\nkey_file = "team.key"\n')
    configured = load_key(tmp_path / "cache", config, environ={})
    assert configured.key == b"a-team-key-kept-out-of-the-repo" and "team.key" in configured.source
    made = load_key(tmp_path / "cache", environ={})
    assert "made now" in made.source and load_key(tmp_path / "cache", environ={}).key == made.key
    assert "key=<redacted>" in repr(made)
