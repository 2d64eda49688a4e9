"""The build secrets the user hands us, as values to look for.

The user passes secrets with docker build's own syntax (``--secret id=NAME,src=PATH``, ``env=VAR``,
or a bare ``id=NAME`` for an environment variable of that name).  A secret file counts as a whole,
line by line, and value by value for ``KEY=value`` / ``key: value`` / JSON files.  The detector
that looks for them (and their encodings) is :mod:`scanner.detectors.known`; this module is what
a rescan from the cache needs of them (their fingerprint), without the detectors' imports.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from ..errors import SecretReadError, SecretSpecError
from ..models import Value, small_sha256, value

DEFAULT_MIN_LENGTH = 8


@value(slots=True)
class SecretSpec(Value):
    """One ``--secret`` flag, parsed.  Holds where the value is, not the value."""

    id: str
    src: str | None = None
    env: str | None = None

    @classmethod
    def parse(cls, text: str) -> SecretSpec:
        fields: dict[str, str] = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            key = key.strip().lower()
            if not sep:
                raise SecretSpecError(f"--secret: field {key!r} has no value")
            if key in fields:
                raise SecretSpecError(f"--secret: field {key!r} given twice")
            fields[key] = value.strip()
        unknown = set(fields) - {"id", "src", "source", "env", "type", "required"}
        if unknown:
            raise SecretSpecError(f"--secret: unknown field(s) {', '.join(sorted(unknown))}")
        src = fields.get("src", fields.get("source"))
        env = fields.get("env")
        kind = fields.get("type")
        sid = fields.get("id") or (Path(src).name if src else None) or env
        if not sid:
            raise SecretSpecError("--secret: id is required")
        if src and env:
            raise SecretSpecError(f"--secret {sid}: give src or env, not both")
        if kind not in (None, "file", "env"):
            raise SecretSpecError(f"--secret {sid}: type must be file or env")
        if kind == "env" and src:  # docker accepts type=env,src=VAR
            src, env = None, src
        if kind == "file" and env:
            raise SecretSpecError(f"--secret {sid}: type=file takes src, not env")
        if not src and not env:
            if kind == "file":
                raise SecretSpecError(f"--secret {sid}: type=file needs src=PATH")
            env = sid
        return cls(id=sid, src=src, env=env)

    def read(self, environ: Mapping[str, str] | None = None) -> bytes:
        if self.src is not None:
            try:
                return Path(self.src).expanduser().read_bytes()
            except OSError as exc:
                raise SecretReadError(
                    f"--secret {self.id}: cannot read {self.src}: {exc.strerror or exc.__class__.__name__}"
                ) from None
        env = os.environ if environ is None else environ
        assert self.env is not None
        if self.env not in env:
            raise SecretReadError(
                f"--secret {self.id}: environment variable {self.env} is not set",
                remedy=f"export {self.env} before running leakscan (in CI: map the secret into the job's environment)",
            )
        return os.fsencode(env[self.env])


@value(slots=True)
class KnownValue(Value):
    """A value to look for, with where it came from (``part``), never printed."""

    secret_id: str
    part: str
    value: bytes

    def __repr__(self) -> str:
        return f"KnownValue(secret_id={self.secret_id!r}, part={self.part!r}, value=<redacted>)"


# The patterns of a secret file's lines, as text: compiled when a secret file is first read (re
# keeps them), not at import (a rescan with no --secret file reads none).
# KEY=value, key = value (INI, .env, .npmrc's //host/:_authToken=value) or key: value (YAML)
_ASSIGN = rb"^\s*(?:export\s+)?([^\s=#;]+?)\s*=\s*(.*?)\s*$|^\s*([^\s:#;]+)\s*:\s+(.*?)\s*$"
_NOT_A_VALUE = rb"^\s*(?:\[[^\]]*\]|[#;].*|-----(?:BEGIN|END) [A-Z0-9 ]+-----)\s*$"  # INI section, comment, PEM armour


def _unquote(value: bytes) -> bytes:
    if len(value) >= 2 and value[:1] == value[-1:] and value[:1] in (b'"', b"'"):
        return value[1:-1]
    return value


def _json_leaves(node: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_leaves(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def split_values(secret_id: str, raw: bytes, min_length: int = DEFAULT_MIN_LENGTH) -> list[KnownValue]:
    """The values a secret file stands for: the whole, each line, each assigned or JSON value."""
    out: dict[bytes, KnownValue] = {}

    def add(part: str, value: bytes) -> None:
        if len(value) >= min_length and value not in out:
            out[value] = KnownValue(secret_id, part, value)

    add("whole", raw.strip())  # a copy made with cat keeps the newline; its base64 still holds this
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        doc = None
    if isinstance(doc, (dict, list)):
        for path, leaf in _json_leaves(doc, ""):
            add(f"json {path}", leaf.encode())
            if path.endswith(".auth"):  # docker config.json: base64 of user:password
                try:
                    decoded = base64.b64decode(leaf, validate=True)
                except (binascii.Error, ValueError):
                    continue
                add(f"json {path} password", decoded.partition(b":")[2])
    for number, line in enumerate(raw.splitlines(), 1):
        m = re.match(_ASSIGN, line)
        if m:  # the value is the secret; the line around it ("user = app") is not
            key, value = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
            add(f"value of {key.decode('ascii', 'replace')}", _unquote(value))
        elif not re.match(_NOT_A_VALUE, line):
            add(f"line {number}", line.strip())
    return list(out.values())


def load_known_values(
    specs: list[SecretSpec],
    min_length: int = DEFAULT_MIN_LENGTH,
    environ: Mapping[str, str] | None = None,
) -> list[KnownValue]:
    values: list[KnownValue] = []
    for spec in specs:
        raw = spec.read(environ)
        found = split_values(spec.id, raw, min_length)
        if not found:
            raise SecretSpecError(
                f"--secret {spec.id}: no value of at least {min_length} bytes in it",
                remedy="lower --min-secret-length if the secret really is that short",
            )
        values.extend(found)
    return values


def known_fingerprint(values: Iterable[KnownValue]) -> str:
    """The set of known secrets as a hash of their hashes: what a cached result depends on."""
    return small_sha256(b"\0".join(sorted(small_sha256(v.value).digest() for v in values))).hexdigest()
