"""Error types, one per pipeline stage, and the process exit codes.

Every error carries a remedy through :meth:`LeakscanError.diagnostics`; the CLI catches
``LeakscanError`` in exactly one place.  Messages never contain secret material: callers pass
paths, digests and reasons only.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    CLEAN = 0
    FINDINGS = 1
    USAGE = 2
    SCAN_ERROR = 3


# The one table of exit codes: ``leakscan --help``, ``leakscan scan --help`` and the README's
# table are made from (or checked against) it.
EXIT_CODES: dict[ExitCode, str] = {
    ExitCode.CLEAN: "no finding fails the policy, and the whole image was read",
    ExitCode.FINDINGS: "findings fail the policy (--fail-on, --fail-on-hidden; --exit-code N changes this code)",
    ExitCode.USAGE: "usage error: flags, config, a --secret or report file that cannot be read or written",
    ExitCode.SCAN_ERROR: "the image, or part of it, could not be read or scanned: never a silent 0 "
    "(--allow-incomplete: 0/1)",
}


def exit_code_lines(indent: str = "  ") -> list[str]:
    """The table as text, one line per code (for --help)."""
    return [f"{indent}{int(code)}  {meaning}" for code, meaning in EXIT_CODES.items()]


class LeakscanError(Exception):
    """Base class of every error leakscan raises on purpose."""

    exit_code: ExitCode = ExitCode.SCAN_ERROR
    remedy: str = ""

    def __init__(self, message: str, *, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if remedy is not None:
            self.remedy = remedy

    def diagnostics(self) -> str:
        text = f"error: {self.message}"
        if self.remedy:
            text += f"\nhint: {self.remedy}"
        return text


class UsageError(LeakscanError):
    """The command line or options are wrong."""

    exit_code = ExitCode.USAGE


class RuleError(UsageError):
    """A rule file (built in, or a user's --config) that cannot load: refused, never skipped."""

    remedy = "fix the rule named above: docs/detection.md lists the keys of a rule"


class SecretSpecError(UsageError):
    """A ``--secret`` flag could not be parsed or its value could not be loaded."""

    remedy = "use docker build's syntax: --secret id=NAME,src=PATH | id=NAME,env=VAR | id=NAME"


class SecretReadError(SecretSpecError):
    """A ``--secret`` was well formed, but its file or environment variable could not be read."""

    remedy = (
        "make the file readable by the user leakscan runs as (leakscan's container image runs as uid 10001: "
        "a mounted file of mode 600 owned by another user is unreadable to it; make it readable, e.g. mode 644 "
        "in a private directory, or run the container with --user $(id -u))"
    )


class ReportWriteError(UsageError):
    """A report (or baseline) file cannot be written where the command line asks."""

    remedy = "give a path in an existing, writable directory (--format FORMAT=FILE, --output FILE)"


class SourceError(LeakscanError):
    """The image could not be located or opened."""

    remedy = "pass an image name known to the engine, a docker/podman save tarball, an OCI layout or an OCI archive"


class RegistryError(SourceError):
    """The registry answered, but not with the image: not found, refused, malformed."""

    remedy = (
        "check that the repository and the tag or digest exist in that registry (skopeo inspect docker://REF), "
        "and that the credentials can read them (--registry-username with LEAKSCAN_REGISTRY_PASSWORD, or docker "
        "login)"
    )


class RegistryUnavailable(RegistryError):
    """The registry could not be reached or answered 429/5xx: worth trying again later."""

    remedy = "the registry is down or overloaded; try again later"


class FormatError(LeakscanError):
    """The image archive is not in a format leakscan understands, or is malformed."""


class CacheDamaged(LeakscanError):
    """A section of a layer's document in the layer cache (its entries, its package records) is not
    what was written: found when the section was first read, which a rescan may never do.  The
    engine marks the document a miss and scans again; only standard input, which cannot be read
    twice, ends with this error."""

    remedy = "scan again: the damaged document is now a miss, and the layer is read from the image (or --no-cache)"

    def __init__(self, key: str) -> None:
        super().__init__(f"the layer cache's document {key} is damaged (a section's length or CRC-32)")
        self.key = key
