"""Detection benchmark: recall per vendor family on every rule's examples and false alarms on its
negatives (no Docker), recall per leak vector on engine-built leaky images, false positives per
rule on engine-built clean images, and throughput on the clean images.  Prints figures.

    DOCKER_HOST=... python benchmarks/detection.py [--compare GIT_REV] [--work DIR] [--rules-only]

Rule examples: every built-in rule's examples and negatives (the family files of
scanner/detectors/rules/data, through the loader), expanded with fresh random characters, each
in a file under a neutral name (or the name the rule asks for), scanned by the content scanner
with every detector.  Printed: recall per family (found by the rule itself, found at all), what
names each positive's finding (a vendor's format, vendor-context, a generic key=value rule, the
entropy fallback), the same for a `<VENDOR>_API_KEY = "..."` line per vendor of vendors.txt, and
the negatives reported at critical or high: by their own rule (none may be), by another vendor's
format (a shared prefix), or by a generic rule (a negative of one format that is still a random
value under a credential name; `--all-alarms` lists them).

Leaky images: tests' leaky and deep images (testdata/leaky, testdata/deep), one vector per layer,
fresh random secrets.  Clean images, built with the real engine from real packages:
  python   a site-packages of common PyPI packages (requests, boto3/botocore, numpy, cryptography,
           PyYAML, Jinja2, click, ...) with pip's RECORD hashes and .pyc files
  node     node_modules of common npm packages with package-lock.json integrity hashes
  debian   this machine's dpkg database, md5sums, apt lists and /usr/share/doc
  fixtures test fixtures with vendors' documented example keys, UUIDs, a git repository's object
           ids, base64 fonts and images in CSS, minified JavaScript
With --compare REV the clean images are also scanned by leakscan at that git revision (from a
temporary worktree) to compare throughput.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scanner import ScanOptions, scan_image  # noqa: E402
from scanner.detectors import SecretSpec, load_known_values  # noqa: E402
from scanner.models import Severity  # noqa: E402
from scanner.sources import open_source  # noqa: E402
from tests.engine.test_deep_image import EXPECTED as DEEP_EXPECTED  # noqa: E402
from tests.engine.test_real_images import EXPECTED_FILES as LEAKY_EXPECTED  # noqa: E402
from tests.support.images import build_deep_image, build_leaky_image, ensure_base_image  # noqa: E402
from tests.support.services import docker_cli, engine_available  # noqa: E402

RULE_SAMPLES = 3  # expansions of each example and negative template

PY_PACKAGES = [
    "requests",
    "boto3",
    "numpy",
    "cryptography",
    "PyYAML",
    "Jinja2",
    "click",
    "python-dateutil",
    "attrs",
    "packaging",
    "pydantic",
    "SQLAlchemy",
]
NPM_PACKAGES = ["express", "lodash", "axios", "moment", "react", "react-dom", "jsonwebtoken", "uuid"]
DOCKERFILE = "FROM leakscan-test-base:1\nCOPY . /\n"


def _run(cmd: list[str], **kw: object) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)  # type: ignore[call-overload]


def python_context(ctx: Path) -> None:
    site = ctx / "usr/local/lib/python3.11/site-packages"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(site), *PY_PACKAGES])
    stdlib = Path(os.path.dirname(os.__file__))
    shutil.copytree(
        stdlib,
        ctx / "usr/local/lib/python3.11",
        dirs_exist_ok=True,
        symlinks=True,
        ignore=shutil.ignore_patterns("site-packages", "test", "tests", "idlelib", "tkinter", "turtledemo"),
    )


def node_context(ctx: Path) -> None:
    app = ctx / "app"
    app.mkdir(parents=True)
    (app / "package.json").write_text(json.dumps({"name": "app", "version": "1.0.0", "private": True}))
    _run(["npm", "install", "--silent", "--no-audit", "--no-fund", *NPM_PACKAGES], cwd=app)


def debian_context(ctx: Path) -> None:
    for src in ("/var/lib/dpkg", "/usr/share/doc", "/usr/share/common-licenses", "/var/lib/apt/lists", "/etc/apt"):
        if os.path.isdir(src):
            shutil.copytree(
                src,
                ctx / src.lstrip("/"),
                symlinks=True,
                dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("lock", "partial", "auxfiles"),
            )


def fixtures_context(ctx: Path) -> None:
    d = ctx / "app/tests/fixtures"
    d.mkdir(parents=True)
    (d / "aws.ini").write_text(
        "[default]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    (d / "stripe.json").write_text(json.dumps({"secret_key": "sk_test_4eC39HqLyjWDarjtT1zdp7dc", "currency": "usd"}))
    (d / "ids.json").write_text(
        json.dumps({"ids": [str(uuid.uuid4()) for _ in range(500)], "request_id": str(uuid.uuid4())})
    )
    (d / "placeholders.env").write_text("API_KEY=your-api-key-here\nDB_PASSWORD=changeme\nTOKEN=xxxxxxxxxxxxxxxxxxxx\n")
    static = ctx / "app/static"
    static.mkdir(parents=True)
    font = base64.b64encode(os.urandom(40_000)).decode()
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + os.urandom(20_000)).decode()
    (static / "site.css").write_text(
        f"@font-face {{ font-family: x; src: url(data:font/woff2;base64,{font}) format('woff2'); }}\n"
        f".logo {{ background: url(data:image/png;base64,{png}); }}\n"
    )
    (static / "app.min.js").write_text("".join(f"var a{i}=function(b){{return b*{i}}};" for i in range(20000)))
    repo = ctx / "app/src"
    repo.mkdir(parents=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@example.com",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@example.com",
    }
    _run(["git", "init", "-q", str(repo)])
    for i in range(30):
        (repo / f"mod{i}.py").write_text(f"def f{i}():\n    return {i}\n")
        _run(["git", "-C", str(repo), "add", "."], env=env)
        _run(["git", "-C", str(repo), "commit", "-q", "-m", f"c{i}"], env=env)
    _run(["git", "-C", str(repo), "gc", "-q"], env=env)
    (repo / "commits.txt").write_text(
        subprocess.run(
            ["git", "-C", str(repo), "log", "--format=%H %T"], capture_output=True, text=True, check=True
        ).stdout
    )


CLEAN = {"python": python_context, "node": node_context, "debian": debian_context, "fixtures": fixtures_context}


def build_clean(work: Path) -> dict[str, Path]:
    ensure_base_image()
    archives = {}
    for name, make in CLEAN.items():
        archive = work / f"clean-{name}.tar"
        if not archive.exists():
            ctx = work / f"ctx-{name}"
            shutil.rmtree(ctx, ignore_errors=True)
            ctx.mkdir(parents=True)
            make(ctx)
            (ctx / "Dockerfile").write_text(DOCKERFILE)
            (ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
            docker_cli("build", "--network", "none", "-q", "-t", f"leakscan-bench-{name}:1", str(ctx))
            docker_cli("save", "-o", str(archive), f"leakscan-bench-{name}:1")
        archives[name] = archive
    return archives


def recall(work: Path) -> list[tuple[str, bool]]:
    leaky = build_leaky_image(work / "leaky")
    specs = [SecretSpec.parse(f) for f in leaky.secret_flags] + [SecretSpec.parse(f"id={n}") for n in leaky.env]
    report = scan_image(open_source(leaky.tag), ScanOptions(known=tuple(load_known_values(specs, environ=leaky.env))))
    got = {
        (f.layer_index, f.path, f.rule_id, f.secret_id, f.encoding, f.status, f.hidden_by_layer)
        for f in report.findings
        if f.path
    }
    rows = [
        (f"leaky L{e[0]} {e[1]} {e[2]}{' ' + e[4] if e[4] else ''} [{e[5].value}]", e in got)
        for e in sorted(LEAKY_EXPECTED, key=str)
    ]
    fields = {(f.field or "", f.secret_id) for f in report.findings if f.field}
    rows.append(("leaky config.Env ENV secret", any(f == "config.Env[1]" and s == "ENV_SECRET" for f, s in fields)))
    rows.append(
        (
            "leaky config.Labels LABEL secret",
            any(f.startswith("config.Labels") and s == "LABEL_SECRET" for f, s in fields),
        )
    )
    rows.append(("leaky history build ARG", any(f.startswith("history[") and s == "BUILD_TOKEN" for f, s in fields)))
    deep = build_deep_image(work / "deep")
    env = {"UTF16_PASSWORD": deep.values["utf16_password"]}
    report = scan_image(
        open_source(deep.tag),
        ScanOptions(known=tuple(load_known_values([SecretSpec.parse("id=UTF16_PASSWORD")], environ=env))),
    )
    got2 = {(f.layer_index, f.path, f.rule_id, f.encoding, f.status) for f in report.findings if f.path}
    rows += [
        (f"deep L{e[0]} {e[1]} {e[2]}{' ' + e[3] if e[3] else ''} [{e[4].value}]", e in got2)
        for e in sorted(DEEP_EXPECTED, key=str)
    ]
    return rows


def scan_clean(archives: dict[str, Path], compare: str | None, work: Path) -> None:
    print("\n## Clean images: findings (all are false positives by construction)\n")
    print("| image | size | files | critical | high | medium | low | MB/s (this) | MB/s (compare) |")
    print("|---|---|---|---|---|---|---|---|---|")
    per_rule: collections.Counter[tuple[str, str, str]] = collections.Counter()
    old = _worktree(compare, work) if compare else None
    for name, archive in archives.items():
        report = scan_image(open_source(str(archive)))
        wall = _timed_cli(ROOT, archive)
        layers = [layer for image in report.images for layer in image.layers]
        size = sum(layer.size or 0 for layer in layers)
        sev = collections.Counter(f.severity for f in report.findings)
        for f in report.findings:
            per_rule[(name, f.rule_id, f.severity.value)] += 1
        old_rate = "-"
        if old is not None:
            old_rate = f"{size / 1e6 / _timed_cli(old, archive):.0f}"
        print(
            f"| {name} | {size / 1e6:.0f} MB | {sum(layer.files_scanned for layer in layers)} | "
            f"{sev[Severity.CRITICAL]} | {sev[Severity.HIGH]} | {sev[Severity.MEDIUM]} | {sev[Severity.LOW]} | "
            f"{size / 1e6 / wall:.0f} | {old_rate} |"
        )
    print("\n## False positives per rule on the clean images\n")
    print("| image | rule | severity | count |")
    print("|---|---|---|---|")
    for (name, rule, sev_name), n in sorted(per_rule.items()):
        print(f"| {name} | {rule} | {sev_name} | {n} |")


def _timed_cli(tree: Path, archive: Path) -> float:
    """Wall time of ``leakscan ARCHIVE`` from a source tree, as a user runs it (every core), without
    the layer cache: both revisions are timed the same way."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "scanner", str(archive), "--no-cache", "--format", "json", "-o", os.devnull],
        cwd=tree,
        capture_output=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    return time.perf_counter() - start


def _worktree(rev: str, work: Path) -> Path:
    path = work / f"worktree-{rev}"
    if not path.exists():
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev], check=True, capture_output=True
        )
    return path


def _naming(hit_rule: str, detector: str) -> str:
    from scanner.detectors.content import GENERIC_RULES

    if detector == "vendor-context":
        return "vendor-context"
    if detector == "entropy":
        return "entropy (generic)"
    if detector == "pattern" and hit_rule not in GENERIC_RULES:
        return "vendor rule"
    return "generic rule"


def rule_examples(samples: int = RULE_SAMPLES, all_alarms: bool = False) -> None:
    """Recall per family on every rule's examples, who names the findings, and false alarms."""
    from scanner.detectors import ContentScanner, build_detectors
    from scanner.detectors.vendor_context import builtin_vendors
    from tests.detectors.rule_table import all_rules, cases, where
    from tests.detectors.samples import expand

    table = cases()
    scanner = ContentScanner(build_detectors([], rules=all_rules(table)))
    own: collections.Counter[str] = collections.Counter()
    anywhere: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    naming: collections.Counter[str] = collections.Counter()
    negatives: collections.Counter[str] = collections.Counter()
    alarms: list[tuple[str, str, str, str]] = []
    for case in table:
        path = where(case.rule)
        for template in case.examples:
            for _ in range(samples):
                hits = scanner.scan_bytes(("x = 1\n" + expand(template) + "\n").encode(), path=path)
                total[case.family] += 1
                mine = [h for h in hits if case.rule.id in (h.rule_id, *h.also)]
                own[case.family] += bool(mine)
                anywhere[case.family] += bool(hits)
                lead = max(mine or hits, key=lambda h: h.severity.rank, default=None)
                naming["missed" if lead is None else _naming(lead.rule_id, lead.detector)] += 1
        for template in case.negatives:
            for _ in range(samples):
                negatives[case.family] += 1
                for h in scanner.scan_bytes(("x = 1\n" + expand(template) + "\n").encode(), path=path):
                    if h.severity.value in ("critical", "high"):
                        by = "its own rule" if case.rule.id in (h.rule_id, *h.also) else h.rule_id
                        alarms.append((case.family, case.rule.id, by, h.severity.value))
    print("## Rule examples: recall per vendor family (content scanner, every detector)\n")
    print("| family | rules | positives | found by the rule | found at all | negatives | critical/high on negatives |")
    print("|---|---|---|---|---|---|---|")
    rules = collections.Counter(c.family for c in table)
    per_family_alarms = collections.Counter(a[0] for a in alarms)
    for family in sorted(total):
        print(
            f"| {family} | {rules[family]} | {total[family]} | {own[family] / total[family]:.1%} | "
            f"{anywhere[family] / total[family]:.1%} | {negatives[family]} | {per_family_alarms[family]} |"
        )
    print(f"\nrules: {len(table)}; positives: {sum(total.values())}; found by their rule: {sum(own.values())}")
    print("\n## What names a positive's finding\n")
    print("| named by | positives |\n|---|---|")
    for name, n in naming.most_common():
        print(f"| {name} | {n} |")
    vendors = {v.slug: v for v in builtin_vendors()}
    by_vendor: collections.Counter[str] = collections.Counter()
    for vendor in vendors.values():
        name = vendor.name.upper()
        value = expand("{a8}") + expand("{d2}") + expand("{a22}")
        hits = scanner.scan_bytes(f'{name}_API_KEY = "{value}"\n'.encode(), path="app/settings.conf")
        lead = max(hits, key=lambda h: h.severity.rank, default=None)
        by_vendor["missed" if lead is None else _naming(lead.rule_id, lead.detector)] += 1
    print(f'\n## `<VENDOR>_API_KEY = "..."` for each of the {len(vendors)} vendors of vendors.txt\n')
    print("| named by | findings |\n|---|---|")
    for name, n in by_vendor.most_common():
        print(f"| {name} | {n} |")
    non_credentials(scanner, sorted({c.rule.vendor for c in table if c.rule.vendor not in ("", "generic")}))
    print(f"\n## Rules' own negatives reported at critical/high: {len(alarms)} (of {sum(negatives.values())})\n")
    vendor_of = {r.id: r.vendor for c in table for r in (c.rule,)}
    own_alarms = [a for a in alarms if a[2] == "its own rule"]
    other_format = [
        a
        for a in alarms
        if a[2] != "its own rule" and vendor_of.get(a[2], "generic") not in ("generic", vendor_of.get(a[1]))
    ]
    print(
        f"- by their own rule: {len(own_alarms)} (a rule's failure: must be 0)\n"
        f"- by another vendor's format: {len(other_format)} (a prefix two vendors share, listed below)\n"
        f"- by a generic rule or by the vendor's name: {len(alarms) - len(own_alarms) - len(other_format)} (a "
        "negative of one format that is still a random value under a credential name, e.g. a key of the wrong "
        "length in a .env file: how a secret of any vendor looks, so a finding; see the non-credentials above "
        "for what must not be one)\n"
    )
    if other_format:
        print("| family | negative of | reported as | severity | count |\n|---|---|---|---|---|")
        for (family, rule, got, sev), n in sorted(collections.Counter(other_format).items()):
            print(f"| {family} | {rule} | {got} | {sev} | {n} |")
    if alarms and all_alarms:
        print("\n| family | negative of | reported as | severity | count |\n|---|---|---|---|---|")
        for (family, rule, got, sev), n in sorted(collections.Counter(alarms).items()):
            print(f"| {family} | {rule} | {got} | {sev} | {n} |")


# What configs, code and docs hold under a vendor's name that is not a credential: a placeholder,
# a reference to where the secret lives, an empty value, a public identifier, an endpoint, a version.
# Each is written as the vendors' own docs and config samples write them; none may be high or critical.
NON_CREDENTIALS = [
    ("{U}_API_KEY=${{{U}_API_KEY}}", ".env"),
    ("{U}_API_KEY=<your-{l}-api-key>", ".env"),
    ("{U}_SECRET_KEY=changeme", ".env"),
    ("{U}_TOKEN=", ".env"),
    ("{U}_SECRET=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", ".env"),
    ("{U}_API_TOKEN=your_{l}_api_token_here", ".env"),
    ('{l}_api_key = os.environ["{U}_API_KEY"]', "settings.py"),
    ("{l}_secret = settings.{U}_SECRET", "settings.py"),
    ("  {c}ApiKey: process.env.{U}_API_KEY,", "config.js"),
    ('{{"{l}": {{"apiKey": "YOUR_API_KEY", "secret": "{{{{ .Values.secret }}}}"}}}}', "config.json"),
    ('{l}:\n  apiKey: ""\n  existingSecret: {l}-credentials\n', "values.yaml"),
    ("{U}_TOKEN_FILE=/run/secrets/{l}_token", ".env"),
    ("{U}_REQUEST_ID={{uuid}}", ".env"),
    ("{U}_API_VERSION=2024-06-01", ".env"),
    ("{U}_API_URL=https://api.{l}.com/v1/", ".env"),
    ("# Set {U}_API_KEY to the key from your {N} dashboard.", "README"),
]


def non_credentials(scanner: object, rule_vendors: list[str]) -> None:
    """Every vendor named by a rule or by vendors.txt, in every shape of NON_CREDENTIALS."""
    import re

    from scanner.detectors import ContentScanner
    from scanner.detectors.vendor_context import builtin_vendors
    from tests.detectors.samples import expand

    assert isinstance(scanner, ContentScanner)
    names = sorted(set(rule_vendors) | {v.name for v in builtin_vendors()})
    alarms: collections.Counter[tuple[str, str]] = collections.Counter()
    total = 0
    for name in names:
        word = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")
        if not word:
            continue
        fields = {"U": word.upper(), "l": word.lower(), "c": word[0].lower() + word[1:], "N": name}
        for template, path in NON_CREDENTIALS:
            text = expand(template.format(**fields))
            total += 1
            for h in scanner.scan_bytes(("x = 1\n" + text + "\n").encode(), path=f"app/{path}"):
                if h.severity.value in ("critical", "high"):
                    alarms[(template, h.rule_id)] += 1
    print(
        f"\n## Non-credentials under {len(names)} vendors' names: {sum(alarms.values())} "
        f"at critical/high (of {total})\n"
    )
    print(
        "placeholders, references, empty values, public ids, endpoints, versions: "
        + "; ".join(t for t, _ in NON_CREDENTIALS[:4])
        + " ..."
    )
    if alarms:
        print("\n| shape | reported as | count |\n|---|---|---|")
        for (template, rule), n in alarms.most_common(40):
            print(f"| `{template}` | {rule} | {n} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--compare", help="a git revision to compare throughput with")
    ap.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "leakscan-bench"))
    ap.add_argument("--rules-only", action="store_true", help="only the rule examples (no Docker needed)")
    ap.add_argument("--all-alarms", action="store_true", help="list every negative reported at critical/high")
    ap.add_argument("--seed", type=int, help="the same rule samples in every run (to compare two trees)")
    args = ap.parse_args()
    if args.seed is not None:
        from tests.detectors.samples import seed

        seed(args.seed)
    rule_examples(all_alarms=args.all_alarms)
    if args.rules_only:
        return
    print()
    ok, why = engine_available()
    if not ok:
        sys.exit(f"needs a Docker Engine (DOCKER_HOST): {why}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows = recall(work)
    print("## Recall per leak vector (real engine builds, fresh random secrets)\n")
    print("| vector | found |")
    print("|---|---|")
    for name, found in rows:
        print(f"| {name} | {'yes' if found else 'NO'} |")
    print(f"\nrecall: {sum(f for _, f in rows)}/{len(rows)}")
    scan_clean(build_clean(work), args.compare, work)


if __name__ == "__main__":
    main()
