"""Values whose *name* says they are secrets, in image metadata.

Two places keep named values in an image for anyone to read:

- ``history[].created_by``: BuildKit records every build argument a RUN step uses as
  ``RUN |2 NPM_TOKEN=abc DEBUG=1 /bin/sh -c npm ci``, and every ENV step with its values
  (``ENV DB_PASSWORD=abc``; the classic builder's ``/bin/sh -c #(nop)  ENV DB_PASSWORD=abc``),
  which stay there when a later step clears the variable from the config's ``Env``;
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
_ENV = re.compile(rb"(?:/bin/sh -c #\(nop\) +)?ENV +")
# Where each NAME= of an ENV step starts: a value runs to the blank before the next one (a value
# may hold blanks: the legacy ``ENV NAME value`` form is recorded as ``ENV NAME=value``)
_ENV_NAME = re.compile(rb" ([A-Za-z_][A-Za-z0-9_.\-]*)=")
_SECRET_WORD = re.compile(
    rb"(?:^|[_\-.])(?:passw(?:or)?d|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|private[_\-]?key"
    rb"|credentials?|auth|pat)(?=$|[_\-.])"
)
# A name that ends in one of these names a setting about a secret (where it is, how it is checked,
# how long it lives), not the secret: TOKEN_URL, PASSWORD_FILE, POSTGRES_HOST_AUTH_METHOD, TOKEN_EXPIRY
_NOT_SECRET_SUFFIX = re.compile(
    rb"[_\-.](?:url|uri|file|path|dir|host|name|user|username|id|type|env|len|length"
    rb"|method|mode|enabled?|disabled?|expiry|expires|expiration|ttl|timeout|lifetime|algorithm|version|port)$"
)
# A switch's value under a secret-like name (MYSQL_ALLOW_EMPTY_PASSWORD=yes, AUTH_ENABLED=true,
# MYSQL_RANDOM_ROOT_PASSWORD=1): still reported, at low, as the placeholders are
_SWITCH = re.compile(rb"(?i)(?:true|false|yes|no|on|off|y|n|[01]|enabled?|disabled?|trust|none|null|nil)")
SWITCH_VALUE = "a yes/no switch, not a secret value"
_REFERENCE = re.compile(rb"^(?:\$\{?\w+\}?|<[^>]*>|\{\{.*\}\}|/[\w./\-]*)$")  # ${VAR}, <placeholder>, a path


def secret_like_name(name: bytes) -> bool:
    lowered = name.lower()
    return bool(_SECRET_WORD.search(lowered)) and not _NOT_SECRET_SUFFIX.search(lowered)


class BuildArgDetector(Detector):
    name = "build-arg"
    max_match_len = 4096

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        # metadata strings come as key=value (see scanner.layers.archive.iter_json_strings)
        at = len(_FIELD) if data.startswith(_FIELD) else 0
        m = _PREFIX.match(data, at)
        if not m:
            if env := _ENV.match(data, at):
                yield from _env_values(data, env.end())
            return
        pos = m.end()
        for _ in range(int(m.group(1))):
            end = data.find(b" ", pos)
            end = len(data) if end == -1 else end
            name, sep, value = data[pos:end].partition(b"=")
            if sep and value and secret_like_name(name):
                yield _named(
                    "build-arg-secret",
                    f"build argument {name.decode('ascii', 'replace')} recorded in the image history",
                    pos + len(name) + 1,
                    value,
                    value,
                )
            pos = end + 1


def _named(rule_id: str, description: str, start: int, secret: bytes, value: bytes) -> Match:
    """The match of a value under a secret-like name, ``secret`` from ``start`` (``value``: it
    without blanks around), at low where the value is a yes/no switch."""
    return Match(
        rule_id=rule_id,
        severity=Severity.HIGH,
        description=description,
        start=start,
        end=start + len(secret),
        secret=secret,
        confidence="medium",
        downgrade=SWITCH_VALUE if _SWITCH.fullmatch(value) else None,
    )


def _env_values(data: bytes, pos: int) -> Iterator[Match]:
    """The values under secret-like names that an ENV step in the history set (``pos``: just past
    the blank after ENV)."""
    names = list(_ENV_NAME.finditer(data, pos - 1))
    for k, m in enumerate(names):
        end = names[k + 1].start() if k + 1 < len(names) else len(data)
        name, value = m.group(1), data[m.end() : end].rstrip()
        if value and secret_like_name(name) and not _REFERENCE.match(value):
            where = "set by ENV, recorded in the image history"
            yield _named("metadata-secret-name", _name_said(name, where), m.end(), value, value)


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
        yield _named("metadata-secret-name", _name_said(m.group(1), "in metadata"), m.start(2), m.group(2), value)


def _name_said(name: bytes, where: str) -> str:
    return f"value of {name.decode('utf-8', 'replace')[:64]} (a secret-like name) {where}"
