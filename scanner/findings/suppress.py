"""Suppression that security teams accept: a baseline, an ignore file, excluded paths.

A suppressed finding is never dropped: it moves to the report's ``suppressed`` lists with the
reason, and the summary counts it.  Matching is by fingerprint (stable across rebuilds of the same
content: rule, path or field, secret fingerprint), by rule id, and by path or field glob.

Globs match literally except ``*`` (any run of characters, ``/`` included) and ``?`` (one
character): a ``[`` is a bracket, so ``history[*].created_by`` means what it says.  Every ignore
entry and every baseline entry that matched no finding is reported as a warning: a stale
suppression is visible, never a silent no-op.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..models import Finding, ScanReport, Value, value

BASELINE_VERSION = "2.0"  # 2.0: fingerprints keyed with the user's key (scanner.findings.fingerprint)


@functools.lru_cache(maxsize=1024)
def _glob(pattern: str) -> re.Pattern[str]:
    """``*`` and ``?`` are wildcards; every other character, ``[`` and ``]`` included, is itself."""
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.S)


def glob_match(text: str, pattern: str) -> bool:
    return _glob(pattern).fullmatch(text) is not None


@value(slots=True)
class IgnoreRule(Value):
    """An ignore entry: a finding matching every field given is suppressed."""

    fingerprint: str | None = None
    rule: str | None = None
    path: str | None = None  # glob on the in-image path (leading / optional)
    field: str | None = None  # glob on the metadata field
    reason: str = ""
    where: str = ""  # the file and entry it came from, for a warning when it matches nothing

    def matches(self, f: Finding) -> bool:
        if self.fingerprint is not None and f.fingerprint != self.fingerprint:
            return False
        if self.rule is not None and f.rule_id != self.rule:
            return False
        if self.path is not None and (f.path is None or not glob_match(f.path, self.path.lstrip("/"))):
            return False
        return self.field is None or (f.field is not None and glob_match(f.field, self.field))

    def describe(self) -> str:
        parts = [
            f"{k}={v}"
            for k, v in (
                ("fingerprint", self.fingerprint),
                ("rule", self.rule),
                ("path", self.path),
                ("field", self.field),
            )
            if v is not None
        ]
        return "ignore " + " ".join(parts) + (f" ({self.reason})" if self.reason else "")


@value(slots=True)
class BaselineEntry(Value):
    """A finding recorded in a baseline, by its keyed fingerprint."""

    fingerprint: str
    about: str = ""  # rule and place, as the baseline file records them


@value
class Suppressions(Value):
    """What the user asked to suppress: a baseline, ignore entries and path globs."""

    baseline: tuple[BaselineEntry, ...] = ()
    ignores: tuple[IgnoreRule, ...] = ()
    exclude_paths: tuple[str, ...] = ()
    baseline_file: str = "--baseline"  # named in the warning about entries that matched nothing

    def __bool__(self) -> bool:
        return bool(self.baseline or self.ignores or self.exclude_paths)


class _Matcher:
    """One scan's suppressions, counting which entries matched something."""

    def __init__(self, s: Suppressions) -> None:
        self.s = s
        self.baseline = {e.fingerprint for e in s.baseline}
        self.used_baseline: set[str] = set()
        self.used_ignores: set[int] = set()

    def reason(self, f: Finding) -> str | None:
        reasons: list[str] = []
        if f.fingerprint in self.baseline:
            self.used_baseline.add(f.fingerprint)
            reasons.append("baseline")
        for n, rule in enumerate(self.s.ignores):
            if rule.matches(f):
                self.used_ignores.add(n)
                reasons.append(rule.describe())
        for glob in self.s.exclude_paths:
            if f.path is not None and glob_match(f.path, glob.lstrip("/")):
                reasons.append(f"exclude-path {glob}")
        return reasons[0] if reasons else None

    def warnings(self) -> list[str]:
        out = [
            f"{rule.where or 'ignore entry'} ({rule.describe()}) matched no finding"
            for n, rule in enumerate(self.s.ignores)
            if n not in self.used_ignores
        ]
        unused = [e for e in self.s.baseline if e.fingerprint not in self.used_baseline]
        out += [
            f"{self.s.baseline_file}: entry {e.fingerprint}{f' ({e.about})' if e.about else ''} matched no finding"
            for e in unused
        ]
        return out


def load_baseline(path: Path) -> tuple[BaselineEntry, ...]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"--baseline {path}: {type(exc).__name__}: {str(exc)[:160]}") from None
    entries = doc.get("findings") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise UsageError(
            f"--baseline {path}: not a leakscan baseline (no findings list)",
            remedy="make one with: leakscan baseline IMAGE > .leakscan-baseline.json",
        )
    out: dict[str, BaselineEntry] = {}
    for e in entries:
        if isinstance(e, dict) and "fingerprint" in e:
            place = e.get("path") or e.get("field") or ""
            about = " ".join(str(x) for x in (e.get("rule_id"), place) if x)
            out.setdefault(str(e["fingerprint"]), BaselineEntry(str(e["fingerprint"]), about))
    return tuple(out.values())


def parse_ignores(entries: Any, where: str) -> tuple[IgnoreRule, ...]:
    if not isinstance(entries, list):
        raise UsageError(f"{where}: [[ignore]] must be a list of tables")
    rules = []
    for n, e in enumerate(entries):
        if not isinstance(e, dict):
            raise UsageError(f"{where}: ignore[{n}] must be a table")
        unknown = set(e) - {"fingerprint", "rule", "path", "field", "reason"}
        if unknown or not (set(e) - {"reason"}):
            raise UsageError(
                f"{where}: ignore[{n}] needs fingerprint, rule, path or field (and only those, plus reason)"
            )
        rules.append(IgnoreRule(**{k: str(v) for k, v in e.items()}, where=f"{where} ignore[{n}]"))
    return tuple(rules)


def load_ignore_file(path: Path, flag: str) -> tuple[IgnoreRule, ...]:
    """The [[ignore]] entries of a TOML file (an --ignore-file, or the --config file)."""
    import tomllib  # only for an ignore file

    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{flag} {path}: {type(exc).__name__}: {str(exc)[:160]}") from None
    return parse_ignores(doc.get("ignore", []), f"{flag} {path}")


def _split(findings: Iterable[Finding], s: _Matcher) -> tuple[tuple[Finding, ...], tuple[Finding, ...]]:
    kept, suppressed = [], []
    for f in findings:
        reason = s.reason(f)
        if reason is None:
            kept.append(f)
        else:
            suppressed.append(replace(f, suppressed_by=reason))
    return tuple(kept), tuple(suppressed)


def apply(report: ScanReport, suppressions: Suppressions) -> ScanReport:
    if not suppressions:
        return report
    s = _Matcher(suppressions)
    images = []
    for image in report.images:
        layers = []
        for layer in image.layers:
            kept, gone = _split(layer.findings, s)
            layers.append(replace(layer, findings=kept, suppressed=layer.suppressed + gone))
        kept_meta, gone_meta = _split(image.metadata_findings, s)
        images.append(
            replace(
                image,
                layers=tuple(layers),
                metadata_findings=kept_meta,
                suppressed_metadata=image.suppressed_metadata + gone_meta,
            )
        )
    kept_archive, gone_archive = _split(report.metadata_findings, s)
    return replace(
        report,
        images=tuple(images),
        metadata_findings=kept_archive,
        suppressed_metadata=report.suppressed_metadata + gone_archive,
        warnings=report.warnings + tuple(s.warnings()),
    )


def baseline_document(report: ScanReport) -> dict[str, Any]:
    """Every finding of the report, by fingerprint: a file to pass back with --baseline."""
    entries: dict[str, dict[str, Any]] = {}
    for f in report.findings:
        entries.setdefault(
            f.fingerprint,
            {
                "fingerprint": f.fingerprint,
                "rule_id": f.rule_id,
                "path": f.path,
                "field": f.field,
                "secret_fingerprint": f.secret_fingerprint,
            },
        )
    return {
        "leakscan_baseline": BASELINE_VERSION,
        "image": report.source_ref,
        "findings": sorted(entries.values(), key=lambda e: (e["rule_id"], e["path"] or "", e["field"] or "")),
    }
