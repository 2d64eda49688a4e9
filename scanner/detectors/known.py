"""Exact matching of the build secrets the user hands us, and of their encoded copies.

The user passes secrets with docker build's own syntax (``--secret id=NAME,src=PATH``, ``env=VAR``,
or a bare ``id=NAME`` for an environment variable of that name).  A secret file counts as a whole,
line by line, and value by value for ``KEY=value`` / ``key: value`` / JSON files.  Every value is
matched raw and in each encoding, all at once with one Hyperscan literal database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import hyperscan

from ..errors import SecretReadError, SecretSpecError
from ..models import Severity
from .interface import Detector, Match

DEFAULT_MIN_LENGTH = 8


@dataclass(frozen=True, slots=True)
class SecretSpec:
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


@dataclass(frozen=True, slots=True)
class KnownValue:
    """A value to look for, with where it came from (``part``), never printed."""

    secret_id: str
    part: str
    value: bytes

    def __repr__(self) -> str:
        return f"KnownValue(secret_id={self.secret_id!r}, part={self.part!r}, value=<redacted>)"


# KEY=value, key = value (INI, .env, .npmrc's //host/:_authToken=value) or key: value (YAML)
_ASSIGN = re.compile(rb"^\s*(?:export\s+)?([^\s=#;]+?)\s*=\s*(.*?)\s*$|^\s*([^\s:#;]+)\s*:\s+(.*?)\s*$")


_NOT_A_VALUE = re.compile(
    rb"^\s*(?:\[[^\]]*\]|[#;].*|-----(?:BEGIN|END) [A-Z0-9 ]+-----)\s*$"
)  # INI section, comment, PEM armour


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
        m = _ASSIGN.match(line)
        if m:  # the value is the secret; the line around it ("user = app") is not
            key, value = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
            add(f"value of {key.decode('ascii', 'replace')}", _unquote(value))
        elif not _NOT_A_VALUE.match(line):
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


# --- encodings ---------------------------------------------------------------------------------


def _b64_aligned(value: bytes, alphabet: Callable[[bytes], bytes]) -> Iterator[tuple[str, bytes]]:
    """The base64 text that ``value`` yields wherever it sits in a longer blob.

    At byte offset k (mod 3) the value's first whole sextet starts at character 0, 2 or 3;
    characters that mix in neighbouring bytes are cut off at both ends.
    """
    for k, start in ((0, 0), (1, 2), (2, 3)):
        encoded = alphabet(b"\0" * k + value)
        full = ((k + len(value)) * 8) // 6
        piece = encoded[start:full]
        yield f"@{k}", piece


def _std_b64(v: bytes) -> bytes:
    return base64.b64encode(v)


def _url_b64(v: bytes) -> bytes:
    return base64.urlsafe_b64encode(v)


def _shell_double(v: bytes) -> bytes:
    return re.sub(rb'([\\"$`])', rb"\\\1", v)


def _shell_single(v: bytes) -> bytes:
    return v.replace(b"'", b"'\\''")


def encodings_of(value: bytes) -> Iterator[tuple[str, bytes]]:
    """Every (encoding name, encoded bytes) to look for.  Raw first."""
    yield "raw", value
    for name, fn in (("base64", _std_b64), ("base64url", _url_b64)):
        for suffix, piece in _b64_aligned(value, fn):
            yield f"{name}{suffix}" if suffix != "@0" else name, piece
    hx = binascii.hexlify(value)
    yield "hex", hx
    yield "hex-upper", hx.upper()
    quoted = urllib.parse.quote_from_bytes(value, safe=b"").encode()
    yield "url", quoted
    yield "url-lower", re.sub(rb"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)
    yield "url-plus", urllib.parse.quote_plus(value, safe="").encode()
    yield "url-path", urllib.parse.quote_from_bytes(value, safe=b"/:@").encode()
    try:
        text = value.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None:
        yield "json", json.dumps(text)[1:-1].encode()
        yield "json-unicode", json.dumps(text, ensure_ascii=False)[1:-1].encode()
    yield "shell-double", _shell_double(value)
    yield "shell-single", _shell_single(value)


FRAGMENT = 8  # base64 wrapped over lines is found through fragments of this many characters
FRAGMENT_STEP = 4


def known_fingerprint(values: Iterable[KnownValue]) -> str:
    """The set of known secrets as a hash of their hashes: what a cached result depends on."""
    return hashlib.sha256(b"\0".join(sorted(hashlib.sha256(v.value).digest() for v in values))).hexdigest()


class KnownSecretsDetector(Detector):
    """One Hyperscan literal database over every value and every encoding of it: one pass over
    the bytes at a few GB/s, whatever the number of secrets.

    Base64 may be wrapped over lines (base64(1) at 76 columns, PEM at 64), which breaks the
    encoded text anywhere.  The database therefore also holds short fragments of every base64
    piece; a fragment hit is confirmed by joining the lines around it and looking for the whole
    piece there, so that only places that hold a fragment of a secret pay for the check.
    """

    name = "known-secret"

    def __init__(self, values: list[KnownValue], min_encoded_length: int = DEFAULT_MIN_LENGTH) -> None:
        # a literal's id -> what it stands for: a whole encoded value, or a fragment of a base64 piece
        self._full: dict[int, tuple[str, str, str, bytes]] = {}  # secret id, part, encoding, value
        self._frag: dict[int, tuple[int, bytes, str, str, str, bytes]] = {}  # offset, piece, + the same
        literals: list[bytes] = []
        seen: set[bytes] = set()
        longest = 0
        for kv in values:
            for encoding, encoded in encodings_of(kv.value):
                if len(encoded) < min_encoded_length or encoded in seen:
                    continue
                seen.add(encoded)
                self._full[len(literals)] = (kv.secret_id, kv.part, encoding, kv.value)
                literals.append(encoded)
                longest = max(longest, len(encoded) * 2)  # wrapped copies are longer than the piece
                if encoding.startswith("base64") and len(encoded) >= 2 * FRAGMENT:
                    for i in range(0, len(encoded) - FRAGMENT + 1, FRAGMENT_STEP):
                        self._frag[len(literals)] = (i, encoded, kv.secret_id, kv.part, encoding, kv.value)
                        literals.append(encoded[i : i + FRAGMENT])
        self._count = len(seen)
        self._db: hyperscan.Database | None = None
        if literals:
            import hyperscan  # here, not at the top: loading known values (a cached rescan) needs no matcher

            self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            self._db.compile(
                expressions=literals,
                ids=list(range(len(literals))),
                elements=len(literals),
                flags=hyperscan.HS_FLAG_SOM_LEFTMOST,
                literal=True,
            )
        self.max_match_len = max(longest, 1)
        self.fingerprint = known_fingerprint(values)

    @staticmethod
    def _confirm_wrapped(data: bytes, at: int, offset: int, piece: bytes) -> tuple[int, int] | None:
        """Where ``piece`` lies around ``data[at]`` once line breaks are removed, if it is wrapped."""
        margin = len(piece) // 4 + 8
        lo = max(0, at - offset - margin)
        hi = min(len(data), at + len(piece) - offset + margin)
        region = data[lo:hi]
        origin = [lo + i for i, c in enumerate(region) if c not in (10, 13)]
        joined = region.replace(b"\r", b"").replace(b"\n", b"")
        pos = joined.find(piece)
        if pos < 0:
            return None
        start, end = origin[pos], origin[pos + len(piece) - 1] + 1
        return (start, end) if b"\n" in data[start:end] else None

    def __len__(self) -> int:
        return self._count

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        if self._db is None or not data:
            return
        hits: list[tuple[int, int, int]] = []

        def on_match(entry: int, start: int, end: int, flags: int, context: object) -> None:
            hits.append((entry, start, end))

        self._db.scan(data, match_event_handler=on_match)
        found: list[tuple[int, int, str, str, str, bytes]] = []
        confirmed: set[tuple[bytes, int]] = set()
        for entry, start, end in hits:
            if entry in self._full:
                found.append((start, end, *self._full[entry]))
                continue
            offset, piece, secret_id, part, encoding, value = self._frag[entry]
            span = self._confirm_wrapped(data, start, offset, piece)
            if span is not None and (piece, span[0]) not in confirmed:
                confirmed.add((piece, span[0]))
                found.append((span[0], span[1], secret_id, part, f"{encoding}-wrapped", value))
        found.sort(key=lambda m: (m[0], -m[1]))
        covered: dict[tuple[str, str], int] = {}  # (secret id, encoding) -> end of the last kept match
        for start, end, secret_id, part, encoding, value in found:
            if covered.get((secret_id, encoding), -1) >= end:
                continue  # a line of a secret inside the whole secret: report the whole once
            covered[(secret_id, encoding)] = end
            yield Match(
                rule_id="known-secret",
                severity=Severity.CRITICAL,
                description=f"build secret {secret_id!r} ({part})",
                start=start,
                end=end,
                secret=value,
                secret_id=secret_id,
                encoding=encoding,
            )
