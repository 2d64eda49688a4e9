"""What a scan of the leaky image (testdata/leaky, tests.support.images) must report: every leak
vector in its layer with its status, and the build args, ENV and LABEL in the metadata.  One
checker for every way the image reaches leakscan (engine, archives, registry, podman, service)."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from scanner.models import Status

from .images import LeakyImage
from .report_schema import validate_report

P, D, OV = Status.PRESENT, Status.DELETED, Status.OVERWRITTEN

# (layer, path, rule_id, secret_id, encoding, status, hidden_by)
EXPECTED_FILES = {
    (1, "root/.aws/credentials", "aws-access-key-id", None, None, P, None),
    (1, "root/.aws/credentials", "aws-secret-access-key", None, None, P, None),
    (2, "app/.npmrc", "known-secret", "npmrc", "raw", P, None),
    (2, "app/.npmrc", "npm-token", None, None, P, None),
    (2, "app/npmrc.b64", "known-secret", "npmrc", "base64-wrapped", P, None),
    (2, "app/npmrc.hex", "known-secret", "npmrc", "hex", P, None),
    (2, "app/npmrc.hex.link", "known-secret", "npmrc", "hex", P, None),
    (3, "tmp/token.txt", "known-secret", "token", "raw", D, 4),
    (4, "app/build-arg.txt", "known-secret", "BUILD_TOKEN", "raw", P, None),
    (5, "var/cache/app/key", "known-secret", "cache", "raw", D, 6),
    (7, "app/config.ini", "known-secret", "conf", "raw", OV, 8),
    (9, "app/.env", "github-token", None, None, P, None),
    (9, "app/.env", "private-key-rsa", None, None, P, None),
    (9, "app/.env", "url-password", None, None, P, None),
}


def check_leaky_doc(doc: dict[str, Any]) -> dict[str, Any]:
    """Checks a JSON report of the leaky image scanned with its --secret flags; returns the image."""
    validate_report(doc)
    assert doc["summary"]["complete"] is True, doc["summary"]["problems"]
    (img,) = doc["images"]
    found = {
        (layer["index"], f["path"], f["rule_id"], f.get("secret_id"), f.get("encoding"), f.get("status")): f.get(
            "hidden_by_layer"
        )
        for layer in img["layers"]
        for f in layer["findings"]
    }
    for lay, path, rule, sid, enc, status, by in EXPECTED_FILES:
        key = (lay, path, rule, sid, enc, status.value)
        assert key in found, f"leak vector not reported: {key}"
        assert found[key] == by, (key, found[key])
    meta = {(f["secret_id"], f["rule_id"]) for f in img["metadata_findings"] if f.get("secret_id")}
    assert {("BUILD_TOKEN", "known-secret"), ("ENV_SECRET", "known-secret"), ("LABEL_SECRET", "known-secret")} <= meta
    return dict(img)


def check_leaky_run(proc: subprocess.CompletedProcess[str], leaky: LeakyImage) -> dict[str, Any]:
    """A ``leakscan --format json`` run on the leaky image: exit 1, no planted value anywhere."""
    assert proc.returncode == 1, proc.stderr[-2000:]
    for value in leaky.all_values():
        assert value not in proc.stdout and value not in proc.stderr
    doc: dict[str, Any] = json.loads(proc.stdout)
    check_leaky_doc(doc)
    return doc
