"""docs/report.schema.json, the JSON report's published schema: every JSON report the tests make
is validated against it (tests.test_cli.run, tests.support.expected.check_leaky_doc)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report.schema.json"


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def validate_report(doc: Any) -> None:
    _validator().validate(doc)


def validate_json_reports(args: tuple[str, ...], stdout: str, cwd: Path | None) -> int:
    """Validate the JSON reports a ``leakscan`` command line wrote (standard output, FILE of
    json=FILE, or --output); returns how many."""
    if args[:1] in (("baseline",), ("rules",), ("fingerprint",), ("help",), ("serve",), ("worker",)):
        return 0
    specs = [args[i + 1] for i, a in enumerate(args[:-1]) if a == "--format"]
    output = next((args[i + 1] for i, a in enumerate(args[:-1]) if a in ("--output", "-o")), None)
    count = 0
    for spec in specs:
        name, sep, file = spec.partition("=")
        if name.strip().lower() != "json":
            continue
        target = file if sep else output
        if target is not None:
            path = Path(target) if cwd is None or Path(target).is_absolute() else cwd / target
            if not path.is_file():
                continue
            text = path.read_text()
        else:
            text = stdout
        if not text.strip():
            continue
        validate_report(json.loads(text))
        count += 1
    return count
