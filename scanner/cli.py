"""The ``leakscan`` command: parse -> options -> engine -> render -> exit code.

``leakscan IMAGE`` is ``leakscan scan IMAGE``; ``leakscan baseline IMAGE`` writes a baseline;
``leakscan rules`` lists the rules.
"""

from __future__ import annotations

import gc
import inspect
import os
import sys
from pathlib import Path
from typing import Any

import click

from . import __version__
from .cli_options import image_source, scan_options, scan_settings, split_options
from .engine import scan_image
from .errors import ExitCode, LeakscanError, UsageError, exit_code_lines
from .findings.suppress import Suppressions, load_baseline, load_ignore_file
from .models import Finding, ScanReport, Severity, Status, Value, value
from .report import OutputFormat, renderer_for, summary_line
from .report.files import check_writable, write_atomically


@value
class Policy(Value):
    """Which findings fail the run, and with which exit code.  Errors exit 2 (usage) or 3 (scan)."""

    fail_on: Severity = Severity.LOW
    fail_on_hidden: bool = True  # a deleted or overwritten file still ships in its layer
    findings_exit_code: int = int(ExitCode.FINDINGS)
    allow_incomplete: bool = False

    def gating(self, report: ScanReport) -> list[Finding]:
        return [
            f
            for f in report.findings
            if f.severity.rank >= self.fail_on.rank and (self.fail_on_hidden or f.status in (None, Status.PRESENT))
        ]

    def exit_code(self, report: ScanReport) -> int:
        if not report.complete and not self.allow_incomplete:
            return int(ExitCode.SCAN_ERROR)
        return self.findings_exit_code if self.gating(report) else int(ExitCode.CLEAN)


# the commands besides scan and help, by the module that defines them (relative to this package)
_LAZY_COMMANDS = {
    "baseline": ".commands",
    "fingerprint": ".commands",
    "rules": ".commands",
    "serve": ".service.commands",
    "worker": ".service.commands",
}


class _DefaultToScan(click.Group):
    """``leakscan IMAGE ...`` runs ``scan``: the common case needs no sub-command.  The other
    commands are imported when named or listed (a scan does not load them: start-up time)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        known = (*self.commands, *_LAZY_COMMANDS, "-h", "--help", "--version")
        if args and args[0] not in known:
            # an image called like a sub-command is still reachable: leakscan scan NAME
            args = ["scan", *args]
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *_LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _LAZY_COMMANDS and cmd_name not in self.commands:
            import importlib

            module = importlib.import_module(_LAZY_COMMANDS[cmd_name], __package__)
            self.add_command(getattr(module, f"{cmd_name}_cmd"))
        return super().get_command(ctx, cmd_name)


def _log_report(report: ScanReport) -> None:
    """--verbose: every skip, warning and problem, with where; nothing from inside a file."""
    for image in report.images:
        for layer in image.layers:
            click.echo(
                f"leakscan: {image.name} layer {layer.index} {layer.diff_id or '-'}: "
                f"{layer.files_scanned} files, {len(layer.findings)} findings"
                f"{'' if layer.scanned else ' NOT FULLY SCANNED: ' + (layer.error or '')}",
                err=True,
            )
            for skip in layer.skips:
                click.echo(f"leakscan:   skipped {skip.where}: {skip.reason}", err=True)
        for warning in image.warnings:
            click.echo(f"leakscan: {image.name}: warning: {warning}", err=True)
    for warning in report.warnings:
        click.echo(f"leakscan: warning: {warning}", err=True)
    for problem in report.problems:
        click.echo(f"leakscan: problem: {problem}", err=True)


def _fail(exc: BaseException) -> None:
    """The one place errors are printed: a remedy, never a traceback (whose values could hold a secret)."""
    if isinstance(exc, LeakscanError):
        click.echo(exc.diagnostics(), err=True)
        sys.exit(int(exc.exit_code))
    if isinstance(exc, OSError):
        from .layers.streams import safe_reason

        click.echo(f"error: {safe_reason(exc)}", err=True)
        sys.exit(int(ExitCode.SCAN_ERROR))
    where = exc.__traceback__
    while where is not None and where.tb_next is not None:
        where = where.tb_next
    place = f" at {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where is not None else ""
    click.echo(
        f"error: internal error ({type(exc).__name__}{place}); the scan did not complete. Please report it.", err=True
    )
    sys.exit(int(ExitCode.SCAN_ERROR))


_EXIT_CODES = "\b\nExit codes:\n" + "\n".join(exit_code_lines())

_MAIN_HELP = f"""Find leaked build secrets and credentials in container images, layer by layer.

\b
  leakscan IMAGE [OPTIONS]            scan (the same as: leakscan scan IMAGE)
  leakscan baseline IMAGE > FILE      record today's findings, to pass to --baseline
  leakscan fingerprint [FILE]         is this my secret? its fingerprint, to look for in a report
  leakscan rules                      list the detection rules
  leakscan serve --example-config     the scanning service (serve, worker)
  leakscan help [COMMAND]             this help, or a command's

{_EXIT_CODES}
"""


@click.group(
    cls=_DefaultToScan,
    help=_MAIN_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="leakscan")
def main() -> None:
    pass


def run() -> None:
    """The ``leakscan`` program (and ``python -m scanner``): :func:`main`, then the process ends,
    without taking its objects apart one by one: with :func:`main` done, the exit handlers run
    (atexit's: logging, temporary files, multiprocessing) and the output is flushed, as at any
    exit, then the process ends (``os._exit``) before the interpreter would free every module and
    object (2.3 ms of a 100 ms rescan from the cache).  Only here, where nothing runs after: a
    process that calls :func:`main` and goes on (a test's CliRunner) ends as usual; and only with
    no other thread left (a thread is waited for at an ordinary exit).  Where the process ends as
    usual, its objects are left to the system (gc.freeze), not traversed again by the cyclic
    collector's passes at interpreter exit."""
    try:
        main()
    except SystemExit as done:
        _exit_now(done.code)
        gc.freeze()
        raise


def _exit_now(code: object) -> None:
    """End the process with ``code`` as sys.exit would, after atexit's handlers and a flush of the
    standard streams; returns (the caller exits as usual) where that cannot be done the same way."""
    import atexit
    import threading

    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_handlers is None or threading.active_count() != 1 or not (code is None or isinstance(code, int)):
        return  # no way to run the handlers first, a thread to wait for, or a message to print
    run_handlers()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed pipe: sys.exit's own flush would fail as well
        return
    os._exit(code or 0)


@main.command("help")
@click.argument("command", required=False)
@click.pass_context
def help_cmd(ctx: click.Context, command: str | None) -> None:
    """Show leakscan's help, or a command's (leakscan help scan)."""
    parent = ctx.parent or ctx
    if command is None:
        click.echo(parent.get_help())
        return
    cmd = main.get_command(parent, command)
    if cmd is None:
        _fail(UsageError(f"help: no command {command!r}; commands: {', '.join(sorted(main.list_commands(parent)))}"))
        return
    click.echo(cmd.get_help(click.Context(cmd, info_name=command, parent=parent)))


@main.command(context_settings={"max_content_width": 100})
@scan_options
@click.option(
    "--format",
    "formats",
    multiple=True,
    metavar="FORMAT[=FILE]",
    help=f"Report format: {', '.join(f.value for f in OutputFormat)} (table: per layer, for people; json: "
    "everything; sarif: GitHub code scanning; gitlab: GitLab's secret-detection report; junit: for CI systems "
    "that read test results). Repeatable; FORMAT=FILE writes that format to FILE (e.g. --format "
    "sarif=leakscan.sarif --format json=report.json). Default: table on standard output.",
)
@click.option(
    "--fail-on",
    type=click.Choice([s.value for s in Severity]),
    default=Severity.LOW.value,
    show_default=True,
    help="Findings of this severity or higher make the exit code non-zero.",
)
@click.option(
    "--fail-on-hidden/--no-fail-on-hidden",
    default=True,
    show_default=True,
    help="Whether findings only in deleted or overwritten files (still shipped in a lower layer) fail the run.",
)
@click.option(
    "--exit-code",
    type=click.IntRange(0, 255),
    default=int(ExitCode.FINDINGS),
    show_default=True,
    help="The exit code when findings fail the run (0: report only). Errors keep theirs: 2 usage, 3 scan.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--baseline",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Suppress the findings recorded in this baseline file (they are still counted).",
)
@click.option(
    "--ignore-file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="TOML file of [[ignore]] entries by fingerprint, rule, path glob or field glob.",
)
@click.option(
    "--exclude-path",
    multiple=True,
    metavar="GLOB",
    help="Suppress findings in files matching this glob (e.g. 'usr/share/doc/*'). Repeatable. "
    "The files are still scanned and the findings counted.",
)
@click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Exit 0/1 on findings even when part of the image could not be read (it is still reported).",
)
def scan(
    image: str,
    formats: tuple[str, ...],
    fail_on: str,
    fail_on_hidden: bool,
    exit_code: int,
    output: Path | None,
    baseline: Path | None,
    ignore_file: Path | None,
    exclude_path: tuple[str, ...],
    allow_incomplete: bool,
    **kw: Any,
) -> None:
    """Scan IMAGE for leaked secrets: every layer (deleted and overwritten files too), the config,
    the history, manifests and attestations.

    IMAGE is a name or ID in the local engine (DOCKER_HOST is honoured, podman's socket too), a
    docker/podman save tarball, an OCI archive, an OCI layout directory, or '-' for a tarball on
    standard input. skopeo-style transports are accepted: docker-daemon:NAME,
    docker-archive:PATH[:REF], oci-archive:PATH[:REF], oci:DIR[:REF].

    Give the build's own --secret flags to find those exact values, raw or encoded (base64, hex,
    URL, JSON or shell escaping). Findings never show a secret: a keyed fingerprint (leakscan
    fingerprint) and a redacted preview.

    \b
    Examples:
      leakscan app:1.2 --secret id=npmrc,src=$HOME/.npmrc --secret id=token,env=GH_TOKEN
      leakscan image.tar --fail-on high --format table --format sarif=leakscan.sarif
      docker save app:1.2 | leakscan - --format gitlab=gl-secret-detection-report.json
      leakscan app:1.2 --baseline leakscan-baseline.json --exclude-path 'usr/share/doc/*'
    """
    try:
        ignores = load_ignore_file(ignore_file, "--ignore-file") if ignore_file else ()
        config = kw.get("config")
        config_ignores = load_ignore_file(config, "--config") if config else ()
        suppressions = Suppressions(
            baseline=load_baseline(baseline) if baseline else (),
            baseline_file=f"--baseline {baseline}",
            ignores=config_ignores + ignores,
            exclude_paths=exclude_path,
        )
        targets = _targets(formats, output)
        for _, path in targets:
            if path is not None:
                check_writable(path)  # before any scan work
        source_kw, scan_kw = split_options(kw)
        source = image_source(image, **source_kw)
        report = scan_image(source, scan_settings(suppressions=suppressions, size_hint=source.size_hint, **scan_kw))
        if kw.get("verbose"):
            _log_report(report)
        texts = [(path, renderer_for(fmt).pieces(report)) for fmt, path in targets]
        for path, text in texts:  # the files first: a file that fails is an error before any output
            if path is not None:
                write_atomically(path, text)
        for path, text in texts:
            if path is None:
                sys.stdout.write("".join(text))
    except Exception as exc:
        _fail(exc)
    policy = Policy(Severity(fail_on), fail_on_hidden, exit_code, allow_incomplete)
    gating = policy.gating(report)
    written = [str(p) for _, p in targets if p is not None]
    if not any(fmt is OutputFormat.TABLE and path is None for fmt, path in targets):
        for warning in report.warnings:  # the table lists them (a stale ignore entry, say); others get them here
            click.echo(f"leakscan: warning: {warning}", err=True)
        click.echo(summary_line(report), err=True)  # the table ends with it; other formats get it on stderr
    if written:
        line = f"{len(gating)} finding(s) failing the policy; written to {', '.join(written)}"
        click.echo(line if report.complete else line + f"; INCOMPLETE: {'; '.join(report.problems)[:400]}", err=True)
    sys.exit(policy.exit_code(report))


scan.help = f"{inspect.cleandoc(scan.help or '')}\n\n{_EXIT_CODES}"


def _targets(formats: tuple[str, ...], output: Path | None) -> list[tuple[OutputFormat, Path | None]]:
    """--format NAME[=FILE] ...; --output FILE applies to a single bare --format."""
    targets: list[tuple[OutputFormat, Path | None]] = []
    for spec in formats or ("table",):
        name, sep, file = spec.partition("=")
        try:
            fmt = OutputFormat(name.strip().lower())
        except ValueError:
            raise UsageError(
                f"--format {spec}: unknown format; use one of {', '.join(f.value for f in OutputFormat)}"
            ) from None
        targets.append((fmt, Path(file) if sep else None))
    bare = [i for i, (_, path) in enumerate(targets) if path is None]
    if len(bare) > 1:
        raise UsageError("--format: only one format can go to standard output; give the others =FILE")
    if output is not None:
        if not bare:
            raise UsageError("--output needs a --format without =FILE")
        targets[bare[0]] = (targets[bare[0]][0], output)
    return targets
