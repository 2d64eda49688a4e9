"""Values whose *name* says they are secrets, in image metadata.

Two places keep named values in an image for anyone to read:

- ``history[].created_by``: BuildKit records every build argument a RUN step uses as
  ``RUN |2 NPM_TOKEN=abc DEBUG=1 /bin/sh -c npm ci``;
- config strings such as ``Env`` entries (``DB_PASSWORD=...``) and labels.

A value under a secret-like name is reported even when it is short or of low entropy: the name is
the evidence.  These detectors run on metadata only (see ContentScanner.scan_bytes).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..models import Severity
from .interface import Detector, Match

_FIELD = b"created_by="
_PREFIX = re.compile(rb"(?:RUN )?\|(\d+) ")
_SECRET_WORD = re.compile(
    rb"(?:^|[_\-.])(?:passw(?:or)?d|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key"
    rb"|credentials?|auth|pat)(?=$|[_\-.])"
)
_NOT_SECRET_SUFFIX = re.compile(rb"[_\-.](?:url|uri|file|path|dir|host|name|user|username|id|type|env|len|length)$")
_REFERENCE = re.compile(rb"^(?:\$\{?\w+\}?|<[^>]*>|\{\{.*\}\}|/[\w./\-]*)$")  # ${VAR}, <placeholder>, a path


def secret_like_name(name: bytes) -> bool:
    lowered = name.lower()
    return bool(_SECRET_WORD.search(lowered)) and not _NOT_SECRET_SUFFIX.search(lowered)


class BuildArgDetector(Detector):
    name = "build-arg"
    max_match_len = 4096

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        # metadata strings come as key=value (see scanner.layers.archive.iter_json_strings)
        m = _PREFIX.match(data, len(_FIELD) if data.startswith(_FIELD) else 0)
        if not m:
            return
        pos = m.end()
        for _ in range(int(m.group(1))):
            end = data.find(b" ", pos)
            end = len(data) if end == -1 else end
            name, sep, value = data[pos:end].partition(b"=")
            if sep and value and secret_like_name(name):
                yield Match(
                    rule_id="build-arg-secret",
                    severity=Severity.HIGH,
                    description=f"build argument {name.decode('ascii', 'replace')} recorded in the image history",
                    start=pos + len(name) + 1,
                    end=end,
                    secret=value,
                    confidence="medium",
                )
            pos = end + 1


_ASSIGNMENT = re.compile(rb"([^=\s]{1,128})=([^\n]+)")


class SecretNameDetector(Detector):
    """``NAME=value`` metadata strings (Env entries, labels) whose name is secret-like."""

    name = "build-arg"  # same strength as build args: weaker than an exact or vendor-format match
    max_match_len = 4096

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        m = _ASSIGNMENT.fullmatch(data)
        if not m or not secret_like_name(m.group(1)):
            return
        value = m.group(2).strip()
        if not value or _REFERENCE.match(value):
            return
        yield Match(
            rule_id="metadata-secret-name",
            severity=Severity.HIGH,
            description=f"value of {m.group(1).decode('utf-8', 'replace')[:64]} (a secret-like name) in metadata",
            start=m.start(2),
            end=m.start(2) + len(m.group(2)),
            secret=m.group(2),
            confidence="medium",
        )
