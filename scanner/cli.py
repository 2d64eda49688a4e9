"""The ``leakscan`` command: parse -> options -> engine -> render -> exit code."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import __version__
from .detectors import DEFAULT_MIN_LENGTH, SecretSpec, load_known_values
from .engine import ScanOptions, scan_image
from .errors import ExitCode, LeakscanError
from .models import ScanReport
from .report import OutputFormat, renderer_for
from .sources import open_source


def exit_code_for(report: ScanReport, allow_incomplete: bool) -> ExitCode:
    if not report.complete and not allow_incomplete:
        return ExitCode.SCAN_ERROR
    return ExitCode.FINDINGS if report.findings else ExitCode.CLEAN


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.argument("image")
@click.option(
    "--secret",
    "secrets",
    multiple=True,
    metavar="id=NAME[,src=PATH|,env=VAR]",
    help="A build secret to look for, in docker build's --secret syntax. Repeatable. "
    "A file counts whole, line by line and value by value (KEY=value, key: value, JSON).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in OutputFormat]),
    default="table",
    show_default=True,
    help="Report format.",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report to this file instead of standard output.",
)
@click.option(
    "--min-secret-length",
    type=click.IntRange(1),
    default=DEFAULT_MIN_LENGTH,
    show_default=True,
    help="Ignore values of a secret file shorter than this many bytes.",
)
@click.option(
    "--max-file-size",
    type=click.IntRange(1),
    default=None,
    help="Skip (and report) files larger than this many bytes. Default: scan every file whole.",
)
@click.option("--no-entropy", is_flag=True, help="Turn the entropy detector off.")
@click.option(
    "--allow-incomplete",
    is_flag=True,
    help="Exit 0/1 on findings even when part of the image could not be read (it is still reported).",
)
@click.version_option(__version__, prog_name="leakscan")
def main(
    image: str,
    secrets: tuple[str, ...],
    fmt: str,
    output: Path | None,
    min_secret_length: int,
    max_file_size: int | None,
    no_entropy: bool,
    allow_incomplete: bool,
) -> None:
    """Scan a container IMAGE for leaked build secrets and credentials, layer by layer.

    IMAGE is a name or ID in the local engine (DOCKER_HOST is honoured), a docker/podman save
    tarball, an OCI archive, an OCI layout directory, or '-' for a tarball on standard input.
    skopeo-style transports are accepted: docker-daemon:NAME, docker-archive:PATH,
    oci-archive:PATH, oci:DIR.

    Exit codes: 0 no findings, 1 findings, 2 usage error, 3 the image could not be read or
    scanned in full.
    """
    try:
        specs = [SecretSpec.parse(s) for s in secrets]
        known = tuple(load_known_values(specs, min_secret_length))
        source = open_source(image)
        options = ScanOptions(
            known=known, entropy=not no_entropy, max_file_size=max_file_size, min_secret_length=min_secret_length
        )
        report = scan_image(source, options)
        text = renderer_for(OutputFormat(fmt)).render(report)
        if output is not None:
            output.write_text(text, encoding="utf-8")
        else:
            sys.stdout.write(text)
    except LeakscanError as exc:
        click.echo(exc.diagnostics(), err=True)
        sys.exit(int(exc.exit_code))
    except OSError as exc:
        click.echo(f"error: {type(exc).__name__}: {exc.strerror or 'I/O error'}", err=True)
        sys.exit(int(ExitCode.SCAN_ERROR))
    except Exception as exc:  # a bug: say so without a traceback, whose values could hold a secret
        where = exc.__traceback__
        while where is not None and where.tb_next is not None:
            where = where.tb_next
        place = f" at {where.tb_frame.f_code.co_filename}:{where.tb_lineno}" if where is not None else ""
        click.echo(
            f"error: internal error ({type(exc).__name__}{place}); the scan did not complete. Please report it.",
            err=True,
        )
        sys.exit(int(ExitCode.SCAN_ERROR))
    if output is not None:
        s = f"{len(report.findings)} finding(s); report written to {output}"
        click.echo(s if report.complete else s + f"; INCOMPLETE: {'; '.join(report.problems)[:400]}", err=True)
    sys.exit(int(exit_code_for(report, allow_incomplete)))
