"""Precision benchmark: leakscan on clean images built from real third-party content, the way teams
ship them.  Every finding on these images is a false alarm unless it is key material that a package
really ships; the script prints what a user would have to triage.

    DOCKER_HOST=unix:///tmp/leakscan-services/docker.sock python benchmarks/precision.py \\
        [--work DIR] [--images debian,python,...] [--json OUT] [--compare GITREV] [--jobs N] [--rebuild]

Images (built with the Docker Engine at DOCKER_HOST by BuildKit with ``--network none``; the Debian
bases are made by ``mmdebstrap`` and ``docker import``ed, every other download happens on the host
first).  Each Debian base is ``mmdebstrap --variant=minbase`` of bookworm with the stock packages
python3, git, openssl and ca-certificates plus the image's own packages, with /usr/share/doc, man
pages and locales kept (no path-excludes), as a stock base has them:
  debian    the stock base alone (one layer)
  python    base + python3-venv; /opt/venv holds ~130 wheels from PyPI (requests, boto3/botocore,
            numpy, pandas, scipy, cryptography, pydantic, fastapi, django, flask, sqlalchemy, celery,
            kubernetes, google-cloud-storage, azure-*, openai, anthropic, paramiko, ansible-core,
            lxml, pillow, grpcio, ...; benchmarks/precision/python/requirements.in and their
            dependencies) installed by pip from ``pip download``ed wheels in a build stage, with the
            .pyc files pip compiles; a small FastAPI app in /app
  node      base + Debian's nodejs; /app is an Express app whose node_modules (~380 packages:
            express, lodash, axios, react, webpack, typescript, @aws-sdk/client-s3, mongoose, pg,
            socket.io, ...; benchmarks/precision/node/packages.txt) ``npm install``ed on the host
  jvm       base + default-jre-headless, tomcat10 and Debian's packaged jars (Spring 4.3, Jackson 2,
            Log4j 2, Logback, commons-*, Guava, Netty, Jetty 9, JDBC drivers, Bouncy Castle, ...);
            a WAR assembled from those jars (WEB-INF/lib), a web.xml and a non-secret
            application.properties, deployed as tomcat10's ROOT.war
  tools     base + common ops packages (curl, wget, openssh-client, postgresql-client,
            mariadb-client, redis-tools, nginx, gnupg, jq, rsync, bind9-dnsutils, ...) and an nginx
            site, a crontab and a backup script
  leakscan  leakscan's own image (the repository's Dockerfile on scripts/python-base, installed
            from scripts/wheelhouse's wheels)

Built images are cached as ``docker save`` tarballs in the work directory (default
/var/tmp/leakscan-precision), with their build time; only missing ones are built (``--rebuild``
rebuilds the chosen ones).  Each tarball is scanned in this process by the current code, without a
layer cache.  The output: per image its size, files, findings by severity and by rule, every
critical and high finding, and a sample of the medium ones; then totals.  Findings carry only a
redacted preview and a SHA-256, and that is all that is printed.  ``--json OUT`` writes the same
figures (and every critical/high/medium finding) as JSON, to diff before/after a change.
``--compare GITREV`` also scans each image with leakscan at that revision (a git worktree of that
commit under the work directory, kept for the next run; run as ``python -m scanner ARCHIVE --no-cache
--format json``) and prints the counts by severity side by side.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.detection import _worktree  # noqa: E402
from scanner import ScanOptions, scan_image  # noqa: E402
from scanner.report.json import report_dict  # noqa: E402
from scanner.sources import open_source  # noqa: E402
from tests.support.services import docker_cli, engine_available  # noqa: E402
from tests.support.tars import zip_of  # noqa: E402

HERE = Path(__file__).resolve().parent / "precision"
SEVERITIES = ("critical", "high", "medium", "low")
MEDIUM_SAMPLE = 30
SUITE = "bookworm"
STOCK = ("python3", "git", "openssl", "ca-certificates")
JVM_PACKAGES = (
    "default-jre-headless",
    "tomcat10",
    "libspring-core-java",
    "libspring-beans-java",
    "libspring-context-java",
    "libspring-context-support-java",
    "libspring-aop-java",
    "libspring-expression-java",
    "libspring-web-java",
    "libspring-web-servlet-java",
    "libspring-jdbc-java",
    "libspring-orm-java",
    "libspring-transaction-java",
    "libjackson2-databind-java",
    "libjackson2-dataformat-xml-java",
    "libjackson2-dataformat-yaml",
    "liblog4j2-java",
    "libslf4j-java",
    "liblogback-java",
    "libcommons-lang3-java",
    "libcommons-io-java",
    "libcommons-codec-java",
    "libcommons-collections4-java",
    "libcommons-compress-java",
    "libcommons-dbcp2-java",
    "libguava-java",
    "libhttpclient-java",
    "libnetty-java",
    "libjetty9-java",
    "libpostgresql-jdbc-java",
    "libmariadb-java",
    "libbcprov-java",
    "libbcpkix-java",
    "libgoogle-gson-java",
    "libyaml-snake-java",
    "libjoda-time-java",
    "libhibernate-validator-java",
    "libjaxb-api-java",
    "libmail-java",
    "libhikaricp-java",
    "libjsoup-java",
    "libquartz2-java",
    "libfreemarker-java",
)
# Jars of /usr/share/java that go into the WAR's WEB-INF/lib (file name prefixes).
WAR_JARS = (
    "spring3-",  # Debian's Spring 4.3 jars are spring3-*-3.x.jar
    "logback-classic",
    "logback-core",
    "jcl-over-slf4j",
    "bcprov",
    "jackson-",
    "log4j-api",
    "log4j-core",
    "slf4j-api",
    "commons-lang3",
    "commons-io",
    "commons-codec",
    "commons-collections4",
    "commons-dbcp2",
    "commons-pool2",
    "guava",
    "httpclient",
    "httpcore",
    "postgresql",
    "mariadb-java-client",
    "HikariCP",
    "snakeyaml",
    "gson",
    "joda-time",
    "hibernate-validator",
    "jsoup",
    "quartz",
    "freemarker",
)
TOOLS_PACKAGES = (
    "curl",
    "wget",
    "openssh-client",
    "postgresql-client",
    "mariadb-client",
    "redis-tools",
    "nginx",
    "gnupg",
    "jq",
    "rsync",
    "less",
    "vim-tiny",
    "netcat-openbsd",
    "bind9-dnsutils",
    "iproute2",
    "iputils-ping",
    "procps",
    "unzip",
    "sudo",
    "cron",
    "logrotate",
    "tzdata",
)


# -- building ---------------------------------------------------------------------------------------


def _run(cmd: list[str], **kw: Any) -> str:
    """Run a host command; on failure raise with the tail of its output."""
    proc = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-3000:]
        raise RuntimeError(f"{shlex.join(cmd[:3])} ... failed ({proc.returncode}):\n{tail}")
    return proc.stdout


def _lines(path: Path) -> list[str]:
    return [s for line in path.read_text().splitlines() if (s := line.strip()) and not s.startswith("#")]


def debian_rootfs(work: Path, packages: tuple[str, ...]) -> Path:
    """``mmdebstrap --variant=minbase`` of bookworm with these packages (docs kept), as a tarball.
    The .debs are kept in one cache directory shared by every base (mmdebstrap's sync-in/sync-out
    recipe), so a package is downloaded once; the cache never ends up in the image."""
    name = ",".join(sorted(packages))
    out = work / "rootfs" / f"{hashlib.sha256(name.encode()).hexdigest()[:16]}.tar"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        cache = work / "debs"
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".partial")
        _run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                "--include=" + ",".join(packages),
                "--skip=essential/unlink",
                f'--setup-hook=mkdir -p {shlex.quote(str(cache))} "$1"/var/cache/apt/archives/',
                f"--setup-hook=sync-in {shlex.quote(str(cache))} /var/cache/apt/archives/",
                f"--customize-hook=sync-out /var/cache/apt/archives {shlex.quote(str(cache))}",
                "--format=tar",
                SUITE,
                str(tmp),
            ]
        )
        tmp.rename(out)
        out.with_suffix(".packages").write_text(name)
    return out


def import_base(work: Path, name: str, packages: tuple[str, ...]) -> str:
    """The image's Debian base, imported into the engine as ``leakscan-precision-base-NAME:1``."""
    tag = f"leakscan-precision-base-{name}:1"
    rootfs = debian_rootfs(work, packages)
    docker_cli("import", "--change", 'CMD ["bash"]', str(rootfs), tag)
    return tag


def build_context(name: str, base: str, ctx: Path, tag: str) -> None:
    """``docker build --network none`` of benchmarks/precision/NAME's Dockerfile in ctx."""
    _copy_tree(HERE / name, ctx)
    docker_cli("build", "--network", "none", "-q", "--build-arg", f"BASE={base}", "-t", tag, str(ctx))


def _copy_tree(src: Path, dst: Path) -> None:
    _run(["cp", "-a", f"{src}/.", str(dst)])


def build_debian(work: Path, tag: str) -> None:
    rootfs = debian_rootfs(work, STOCK)
    docker_cli("import", "--change", 'CMD ["bash"]', str(rootfs), tag)


def build_python(work: Path, tag: str) -> None:
    ctx = _fresh(work / "python" / "ctx")
    wheels = work / "python" / "wheels"
    requirements = HERE / "python" / "requirements.in"
    if not _done(wheels, requirements):
        wheels.mkdir(parents=True, exist_ok=True)
        platforms = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_27_x86_64", "manylinux_2_28_x86_64")
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--disable-pip-version-check",
                "--only-binary=:all:",
                "--python-version",
                "3.11",
                "--implementation",
                "cp",
                *[f"--abi={abi}" for abi in ("cp311", "abi3", "none")],
                *[f"--platform={p}" for p in (*platforms, "any")],
                "-d",
                str(wheels),
                "-r",
                str(requirements),
            ]
        )
        _done(wheels, requirements, mark=True)
    _run(["cp", "-a", str(wheels), str(ctx / "wheels")])
    (ctx / ".dockerignore").write_text("wheels/.complete\n")
    base = import_base(work, "python", (*STOCK, "python3-venv"))
    build_context("python", base, ctx, tag)


def build_node(work: Path, tag: str) -> None:
    app = work / "node" / "app"
    listing = HERE / "node" / "packages.txt"
    if not _done(app, listing):
        _fresh(app)
        (app / "package.json").write_text(
            json.dumps({"name": "app", "version": "1.0.0", "private": True, "main": "server.js"}, indent=2) + "\n"
        )
        _run(["npm", "install", "--no-audit", "--no-fund", "--loglevel=error", *_lines(listing)], cwd=app)
        _done(app, listing, mark=True)
    ctx = _fresh(work / "node" / "ctx")
    _run(["cp", "-a", str(app), str(ctx / "app")])
    (ctx / ".dockerignore").write_text("app/.complete\n")
    base = import_base(work, "node", (*STOCK, "nodejs"))
    build_context("node", base, ctx, tag)


def build_jvm(work: Path, tag: str) -> None:
    packages = (*STOCK, *JVM_PACKAGES)
    base = import_base(work, "jvm", packages)
    ctx = _fresh(work / "jvm" / "ctx")
    (ctx / "app.war").write_bytes(war(debian_rootfs(work, packages)))
    build_context("jvm", base, ctx, tag)


def war(rootfs: Path) -> bytes:
    """A web application archive: web.xml, application.properties and WEB-INF/lib/*.jar taken from
    the Debian jars in the base's /usr/share/java (regular files, not the version-less symlinks)."""
    files = {
        "META-INF/MANIFEST.MF": b"Manifest-Version: 1.0\r\nCreated-By: leakscan precision benchmark\r\n\r\n",
        "WEB-INF/web.xml": (HERE / "jvm" / "web.xml").read_bytes(),
        "WEB-INF/classes/application.properties": (HERE / "jvm" / "application.properties").read_bytes(),
    }
    with tarfile.open(rootfs) as tar:
        for member in tar:
            folder, _, leaf = member.name.removeprefix("./").rpartition("/")
            if member.isfile() and folder == "usr/share/java" and leaf.endswith(".jar") and leaf.startswith(WAR_JARS):
                data = tar.extractfile(member)
                assert data is not None
                files[f"WEB-INF/lib/{leaf}"] = data.read()
    return zip_of(files)


def build_tools(work: Path, tag: str) -> None:
    base = import_base(work, "tools", (*STOCK, *TOOLS_PACKAGES))
    build_context("tools", base, _fresh(work / "tools" / "ctx"), tag)


def build_leakscan(work: Path, tag: str) -> None:
    """The repository's Dockerfile, offline, as the README says: scripts/python-base and
    scripts/wheelhouse, then ``docker build --network none``."""
    env = {**os.environ, "DOCKER": "/usr/bin/docker"}
    base = _run([str(ROOT / "scripts" / "python-base")], env=env).strip().splitlines()[-1]
    _run([str(ROOT / "scripts" / "wheelhouse")], env=env)
    docker_cli("build", "--network", "none", "-q", "--build-arg", f"BASE={base}", "-t", tag, str(ROOT))


def _done(folder: Path, listing: Path, mark: bool = False) -> bool:
    """Whether folder holds the downloads of this package list (a stamp with the list's hash)."""
    stamp, digest = folder / ".complete", hashlib.sha256(listing.read_bytes()).hexdigest()
    if mark:
        stamp.write_text(digest)
    return stamp.exists() and stamp.read_text() == digest


def _fresh(path: Path) -> Path:
    _run(["rm", "-rf", str(path)])
    path.mkdir(parents=True)
    return path


@dataclass(frozen=True)
class Image:
    name: str
    build: Callable[[Path, str], None]

    @property
    def tag(self) -> str:
        return f"leakscan-precision-{self.name}:1"


IMAGES = {
    i.name: i
    for i in (
        Image("debian", build_debian),
        Image("python", build_python),
        Image("node", build_node),
        Image("jvm", build_jvm),
        Image("tools", build_tools),
        Image("leakscan", build_leakscan),
    )
}


def ensure_image(image: Image, work: Path, rebuild: bool = False) -> tuple[Path, float]:
    """The image's ``docker save`` tarball, built if missing, and the seconds its build took
    (downloads included, measured when it was built)."""
    archive = work / f"{image.name}.tar"
    meta = work / f"{image.name}.build.json"
    if archive.exists() and meta.exists() and not rebuild:
        return archive, json.loads(meta.read_text())["seconds"]
    print(f"building {image.name} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    image.build(work, image.tag)
    tmp = archive.with_suffix(".partial")
    docker_cli("save", "-o", str(tmp), image.tag)
    tmp.rename(archive)
    seconds = time.perf_counter() - start
    meta.write_text(json.dumps({"seconds": round(seconds, 1), "tag": image.tag, "built_at": time.time()}))
    print(f"built {image.name} in {seconds:.0f} s", file=sys.stderr, flush=True)
    return archive, seconds


# -- scanning ---------------------------------------------------------------------------------------


@dataclass
class Result:
    """One scan of one image, from the JSON report (in-process or the CLI's): the same figures
    either way."""

    image: str
    size: int = 0
    files: int = 0
    seconds: float = 0.0
    findings: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    error: str | None = None

    @classmethod
    def of(cls, image: str, doc: dict[str, Any], seconds: float) -> Result:
        findings = list(doc.get("metadata_findings", []))
        for img in doc.get("images", []):
            findings += img.get("metadata_findings", [])
            for layer in img.get("layers", []):
                findings += layer.get("findings", [])
        summary = doc.get("summary", {})
        return cls(
            image,
            size=summary.get("bytes_scanned", 0),
            files=summary.get("files_scanned", 0),
            seconds=seconds,
            findings=findings,
            problems=list(summary.get("problems", [])),
        )

    @property
    def by_severity(self) -> collections.Counter[str]:
        return collections.Counter(f["severity"] for f in self.findings)

    @property
    def by_rule(self) -> collections.Counter[tuple[str, str]]:
        return collections.Counter((f["rule_id"], f["severity"]) for f in self.findings)

    def of_severity(self, *severities: str) -> list[dict[str, Any]]:
        rank = {s: i for i, s in enumerate(SEVERITIES)}
        chosen = [f for f in self.findings if f["severity"] in severities]
        return sorted(chosen, key=lambda f: (rank[f["severity"]], f["rule_id"], _where(f), f.get("line") or 0))

    def to_json(self, build_seconds: float | None, archive: Path | None) -> dict[str, Any]:
        by_rule: dict[str, dict[str, int]] = collections.defaultdict(dict)
        for (rule, sev), n in sorted(self.by_rule.items()):
            by_rule[rule][sev] = n
        return {
            "image": self.image,
            "archive_bytes": archive.stat().st_size if archive else None,
            "bytes_scanned": self.size,
            "files_scanned": self.files,
            "build_seconds": build_seconds,
            "scan_seconds": round(self.seconds, 1),
            "error": self.error,
            "problems": self.problems,
            "by_severity": {s: self.by_severity[s] for s in SEVERITIES},
            "by_rule": by_rule,
            "findings": [
                {k: f.get(k) for k in _JSON_KEYS} | _extra(f) for f in self.of_severity("critical", "high", "medium")
            ],
        }


_JSON_KEYS = (
    "rule_id",
    "detector",
    "severity",
    "layer_index",
    "path",
    "field",
    "line",
    "status",
    "encoding",
    "preview",
    "secret_sha256",
    "confidence",
    "description",
)
_NOT_EXTRA = {*_JSON_KEYS, "fingerprint", "hidden_by_layer", "link_target", "secret_id"}


def _extra(f: dict[str, Any]) -> dict[str, Any]:
    """Whatever else a finding carries (fields the report gains later, such as an owning package)."""
    return {k: v for k, v in f.items() if k not in _NOT_EXTRA and v is not None}


def _where(f: dict[str, Any]) -> str:
    return f.get("path") or f.get("field") or ""


def scan_here(name: str, archive: Path, jobs: int) -> Result:
    """Scan with this tree's code, in this process, with no layer cache."""
    start = time.perf_counter()
    try:
        report = scan_image(open_source(str(archive)), ScanOptions(cache_dir=None, jobs=jobs))
    except Exception:  # a crash on a real image is a result: print it, go on with the others
        return Result(name, seconds=time.perf_counter() - start, error=traceback.format_exc())
    return Result.of(name, report_dict(report), time.perf_counter() - start)


def scan_at(tree: Path, name: str, archive: Path, out_dir: Path) -> Result:
    """Scan with the leakscan of another source tree, by its CLI (JSON report to a file)."""
    out = out_dir / f"{name}.json"
    out.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scanner", str(archive), "--no-cache", "--format", "json", "-o", str(out)],
        cwd=tree,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    seconds = time.perf_counter() - start
    if not out.exists() or not out.stat().st_size:
        return Result(name, seconds=seconds, error=f"exit {proc.returncode}: {proc.stderr[-3000:]}")
    return Result.of(name, json.loads(out.read_text()), seconds)


# -- printing ---------------------------------------------------------------------------------------


def _cell(text: object, limit: int = 120) -> str:
    s = " ".join(str(text if text is not None else "").split()).replace("|", "\\|")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def print_rules(counts: collections.Counter[tuple[str, str]], title: str) -> None:
    """Findings by rule and severity, the most frequent rule first."""
    rules = sorted({rule for rule, _ in counts}, key=lambda rule: (-sum(counts[rule, s] for s in SEVERITIES), rule))
    if rules:
        print(f"\n| {title} | " + " | ".join(SEVERITIES) + " |\n|---|" + "---|" * len(SEVERITIES))
        for rule in rules:
            print(f"| {rule} | " + " | ".join(str(counts[rule, s] or "") for s in SEVERITIES) + " |")


def print_image(r: Result, build_seconds: float, archive: Path) -> None:
    print(f"\n## {r.image}\n")
    print(
        f"archive {archive.stat().st_size / 1e6:.0f} MB, {r.size / 1e6:.0f} MB in layers, {r.files} files, "
        f"built in {build_seconds:.0f} s, scanned in {r.seconds:.0f} s"
    )
    if r.error:
        print(f"\nSCAN FAILED:\n```\n{r.error.rstrip()}\n```")
        return
    for problem in r.problems:
        print(f"incomplete: {problem}")
    sev = r.by_severity
    print("\n" + ", ".join(f"{s}: {sev[s]}" for s in SEVERITIES))
    print_rules(r.by_rule, "rule")
    serious = r.of_severity("critical", "high")
    if serious:
        print(f"\n### critical and high ({len(serious)})\n")
        print("| severity | rule | layer | path or field | line | preview | description |")
        print("|---|---|---|---|---|---|---|")
        for f in serious:
            print(
                f"| {f['severity']} | {f['rule_id']} | {_cell(f.get('layer_index'))} | {_cell(_where(f), 160)} | "
                f"{_cell(f.get('line'))} | `{_cell(f['preview'], 60)}` | {_cell(f['description'], 80)} |"
            )
    medium = r.of_severity("medium")
    if medium:
        step = max(1, len(medium) // MEDIUM_SAMPLE)
        sample = medium[::step][:MEDIUM_SAMPLE]
        spacing = "all" if step == 1 else f"one in {step}, by rule and path"
        print(f"\n### medium: {len(sample)} of {len(medium)} ({spacing})\n")
        for f in sample:
            line = f":{f['line']}" if f.get("line") else ""
            print(
                f"- `{_cell(_where(f), 160)}{line}` {f['rule_id']} `{_cell(f['preview'], 60)}` "
                f"({_cell(f['description'], 100)})"
            )


def print_totals(results: list[Result], builds: dict[str, float], archives: dict[str, Path]) -> None:
    print("\n## All images\n")
    print("| image | archive MB | layers MB | files | build s | scan s | " + " | ".join(SEVERITIES) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(SEVERITIES))
    total: collections.Counter[str] = collections.Counter()
    for r in results:
        sev = r.by_severity
        total.update(sev)
        counts = " | ".join("error" if r.error else str(sev[s]) for s in SEVERITIES)
        print(
            f"| {r.image} | {archives[r.image].stat().st_size / 1e6:.0f} | {r.size / 1e6:.0f} | {r.files} | "
            f"{builds[r.image]:.0f} | {r.seconds:.0f} | {counts} |"
        )
    print("| **total** | | | | | | " + " | ".join(str(total[s]) for s in SEVERITIES) + " |")
    scanned = [r for r in results if not r.error]
    if scanned:
        print(f"\naverage medium per image: {total['medium'] / len(scanned):.1f} ({len(scanned)} images)")
    rules: collections.Counter[tuple[str, str]] = collections.Counter()
    for r in results:
        rules.update(r.by_rule)
    print_rules(rules, "rule (all images)")


def print_compare(rev: str, now: list[Result], then: dict[str, Result]) -> None:
    print(f"\n## This tree vs {rev}\n")
    pairs = " | ".join(f"{s} (this) | {s} ({rev})" for s in SEVERITIES)
    print(f"| image | {pairs} | scan s (this) | scan s ({rev}) |")
    print("|---|" + "---|" * (2 * len(SEVERITIES) + 2))
    for r in now:
        old = then[r.image]
        a, b = r.by_severity, old.by_severity
        cells = " | ".join(f"{'error' if r.error else a[s]} | {'error' if old.error else b[s]}" for s in SEVERITIES)
        print(f"| {r.image} | {cells} | {r.seconds:.0f} | {old.seconds:.0f} |")
    for old in then.values():
        if old.error:
            print(f"\n{rev} failed on {old.image}:\n```\n{old.error.rstrip()}\n```")


def code_state() -> str:
    """This tree's commit and its uncommitted changes to scanner/: what the in-process scan ran."""
    head = _run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"]).strip()
    dirty = _run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "scanner"]).splitlines()
    if not dirty:
        return head
    return f"{head} + uncommitted changes to {', '.join(line[3:] for line in dirty)}"


# -- main -------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="/var/tmp/leakscan-precision", help="image cache and scratch (outside the repo)")
    ap.add_argument("--images", default=",".join(IMAGES), help=f"comma-separated, of {','.join(IMAGES)}")
    ap.add_argument("--json", help="write the figures as JSON here")
    ap.add_argument("--compare", metavar="GITREV", help="also scan with leakscan at this git revision")
    ap.add_argument("--jobs", type=int, default=1, help="detector processes for the in-process scan")
    ap.add_argument("--rebuild", action="store_true", help="rebuild the chosen images even if cached")
    args = ap.parse_args()
    names = [n for n in args.images.split(",") if n]
    unknown = [n for n in names if n not in IMAGES]
    if unknown:
        ap.error(f"unknown image(s) {', '.join(unknown)}; choose from {', '.join(IMAGES)}")
    ok, why = engine_available()
    if not ok:
        sys.exit(f"needs a Docker Engine (DOCKER_HOST): {why}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    code = code_state()  # now, near when scanner/ was imported: the builds can take minutes

    archives: dict[str, Path] = {}
    builds: dict[str, float] = {}
    failed: dict[str, str] = {}
    for name in names:
        try:
            archives[name], builds[name] = ensure_image(IMAGES[name], work, args.rebuild)
        except Exception as exc:  # one image that cannot be built here does not stop the others
            failed[name] = str(exc)
            print(f"could not build {name}: {exc}", file=sys.stderr)
    names = [n for n in names if n in archives]

    print(f"# leakscan precision on real images ({', '.join(names)})\n\ncode scanned in this process: {code}")
    for name, why in failed.items():
        print(f"\nnot built: {name}:\n```\n{why.rstrip()}\n```")
    results = []
    for name in names:
        print(f"scanning {name} ...", file=sys.stderr, flush=True)
        r = scan_here(name, archives[name], args.jobs)
        results.append(r)
        print_image(r, builds[name], archives[name])
        sys.stdout.flush()
    print_totals(results, builds, archives)

    then: dict[str, Result] = {}
    if args.compare:
        commit = _run(["git", "-C", str(ROOT), "rev-parse", "--short", f"{args.compare}^{{commit}}"]).strip()
        tree = _worktree(commit, work)  # by commit: a worktree kept for "HEAD" would go stale
        with tempfile.TemporaryDirectory(dir=work, prefix="compare-") as out_dir:
            for name in names:
                print(f"scanning {name} with {args.compare} ...", file=sys.stderr, flush=True)
                then[name] = scan_at(tree, name, archives[name], Path(out_dir))
        print_compare(args.compare, results, then)

    if args.json:
        doc: dict[str, Any] = {
            "code": code,
            "images": {r.image: r.to_json(builds[r.image], archives[r.image]) for r in results},
            "totals": {s: sum(r.by_severity[s] for r in results) for s in SEVERITIES},
        }
        if args.compare:
            doc["compare"] = {"rev": args.compare, "images": {n: r.to_json(None, None) for n, r in then.items()}}
        Path(args.json).write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        print(f"\nwrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
