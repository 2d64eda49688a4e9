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


class SecretSpecError(UsageError):
    """A ``--secret`` flag could not be parsed or its value could not be loaded."""

    remedy = "use docker build's syntax: --secret id=NAME,src=PATH | id=NAME,env=VAR | id=NAME"


class SourceError(LeakscanError):
    """The image could not be located or opened."""

    remedy = "pass an image name known to the engine, a docker/podman save tarball, an OCI layout or an OCI archive"


class RegistryUnavailable(SourceError):
    """The registry could not be reached or answered 429/5xx: worth trying again later."""

    remedy = "the registry is down or overloaded; try again later"


class FormatError(LeakscanError):
    """The image archive is not in a format leakscan understands, or is malformed."""
