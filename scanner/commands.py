"""``leakscan baseline``, ``leakscan rules`` and ``leakscan fingerprint``: imported when one of them
is named or the commands are listed (scanner.cli), not by a scan."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from .cache import default_dir as default_cache_dir
from .cli import _fail
from .cli_options import image_source, scan_options, scan_settings, split_options
from .engine import scan_image
from .errors import ExitCode, UsageError
from .findings.fingerprint import load_key
from .findings.suppress import baseline_document
from .models import keyed, sha256_hex
from .report import jsontext
from .report.files import check_writable, write_atomically


@click.command("baseline")
@scan_options
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the baseline to this file instead of standard output.",
)
def baseline_cmd(image: str, output: Path | None, **kw: Any) -> None:
    """Scan IMAGE and write a baseline of its findings (JSON, keyed fingerprints only), for later
    scans to pass to --baseline (with the same fingerprint key: LEAKSCAN_FINGERPRINT_KEY in CI)."""
    try:
        if output is not None:
            check_writable(output, "baseline")
        source_kw, scan_kw = split_options(kw)
        report = scan_image(image_source(image, **source_kw), scan_settings(**scan_kw))
        text = jsontext.dumps(baseline_document(report)) + "\n"
        if output is not None:
            write_atomically(output, text, "baseline")
        else:
            sys.stdout.write(text)
    except Exception as exc:
        _fail(exc)
    if not report.complete:
        click.echo(f"error: the baseline is incomplete: {'; '.join(report.problems)[:400]}", err=True)
        sys.exit(int(ExitCode.SCAN_ERROR))


@click.command("rules")
@click.option(
    "--config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Apply this config's [rules] table (disabled and custom rules).",
)
def rules_cmd(config: Path | None) -> None:
    """List the pattern rules: id, severity, confidence, vendor, description, the reference of the format."""
    from .detectors.rules import RuleSet
    from .detectors.rules.loader import builtin_rules
    from .detectors.vendor_context import builtin_vendors

    try:
        rules = RuleSet.load(builtin_rules(), config)
    except Exception as exc:
        _fail(exc)
    for rule in sorted(rules.rules, key=lambda r: r.id):
        vendor = rule.vendor or "-"
        click.echo(
            f"{rule.id:40} {rule.severity.value:9} {rule.confidence:7} {vendor:24} {rule.description}"
            + (f"  <{rule.reference}>" if rule.reference else "")
        )
    formats = [r for r in rules.rules if r.vendor and r.vendor != "generic"]
    click.echo(
        f"{len(rules.rules)} rules: {len(formats)} vendor formats of {len({r.vendor for r in formats})} vendors, "
        f"{len(rules.rules) - len(formats)} generic or custom; "
        f"detect-secrets plugins {'on' if rules.detect_secrets else 'off'}; "
        "also: known-secret, high-entropy-assignment, build-arg-secret, metadata-secret-name, "
        f"vendor-context-<vendor> ({len({v.slug for v in builtin_vendors()})} vendors)"
    )


@click.command("fingerprint")
@click.argument("file", required=False, type=click.File("rb"), default="-")
@click.option("--config", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="As for scan.")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), help="As for scan.")
def fingerprint_cmd(file: Any, config: Path | None, cache_dir: Path | None) -> None:
    """Is this my secret? Print the fingerprint of a value, read from FILE or standard input (never
    from the command line, where other users and the shell history would see it), to look for in a
    report's secret_fingerprint (the table's fp:...). It uses the scan's key: the same
    LEAKSCAN_FINGERPRINT_KEY, --config or --cache-dir. Leading and trailing whitespace is ignored.

    \b
      leakscan fingerprint ~/.npmrc-token
      printf %s "$TOKEN" | leakscan fingerprint
    """
    try:
        if file.name == "<stdin>" and sys.stdin.isatty():
            value = click.prompt("value (not shown)", hide_input=True, err=True).encode()
        else:
            value = file.read()
        value = value.strip()
        if not value:
            raise UsageError("fingerprint: no value given (FILE or standard input is empty)")
        key = load_key(cache_dir or default_cache_dir(), config)
    except Exception as exc:
        _fail(exc)
    click.echo(keyed(key.key, sha256_hex(value)))
    click.echo(f"leakscan: fingerprint made with the {key.source}", err=True)
