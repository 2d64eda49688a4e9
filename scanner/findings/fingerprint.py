"""The key that secret fingerprints in reports are made with (see :func:`scanner.models.keyed`).

A plain SHA-256 of a short password in a shared report (a CI artifact, an uploaded SARIF) lets
anyone test guesses offline; a fingerprint keyed with a key that stays with the user does not, and
is still stable for baselines and for correlating runs.  The key comes from, in this order:

1. ``LEAKSCAN_FINGERPRINT_KEY`` (at least 16 characters): CI runners, whose caches are fresh
   every run, and the service's workers on several machines share a key this way;
2. the config's ``[fingerprint] key_file = "PATH"``;
3. ``fingerprint.key`` in the cache directory (``--cache-dir``, default
   ``$XDG_CACHE_HOME/leakscan/layers``), made on first use with mode 600.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from pathlib import Path

from ..errors import UsageError
from ..models import Value, value

ENV = "LEAKSCAN_FINGERPRINT_KEY"
FILE_NAME = "fingerprint.key"
MIN_LENGTH = 16


def _new_key() -> str:
    """A new random key, as hex: imported only when a key is made (a run with one needs neither
    secrets nor, where load_key writes the key file, tempfile)."""
    import secrets

    return secrets.token_hex(32)


@functools.cache
def _process_key() -> bytes:
    """The key of a library call with no cache and no key: one per process."""
    return _new_key().encode()


@value
class FingerprintKey(Value):
    """The key of the findings' fingerprints, and where it came from."""

    key: bytes
    source: str  # where it came from, for `leakscan fingerprint` (never the key itself)

    def __repr__(self) -> str:
        return f"FingerprintKey(source={self.source!r}, key=<redacted>)"


def _read(path: Path, where: str) -> bytes:
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise UsageError(
            f"{where} {path}: cannot read the fingerprint key ({exc.strerror or type(exc).__name__})",
            remedy=f"make it readable, or set {ENV}",
        ) from None
    if len(key) < MIN_LENGTH:
        raise UsageError(f"{where} {path}: a fingerprint key needs at least {MIN_LENGTH} bytes")
    return key


def _config_key_file(config: Path | None) -> Path | None:
    if config is None:
        return None
    import tomllib

    try:
        doc = tomllib.loads(config.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config {config}: {type(exc).__name__}") from None
    table = doc.get("fingerprint", {})
    value = table.get("key_file") if isinstance(table, dict) else None
    if value is None:
        return None
    path = Path(str(value)).expanduser()
    return path if path.is_absolute() else config.parent / path


def load_key(
    cache_dir: Path | None, config: Path | None = None, environ: Mapping[str, str] | None = None
) -> FingerprintKey:
    """The user's key (see the module's docstring); ``cache_dir`` None and nothing else set: a key
    for this process only (fingerprints then hold within it)."""
    env = os.environ if environ is None else environ
    if env.get(ENV):
        value = env[ENV].encode()
        if len(value) < MIN_LENGTH:
            raise UsageError(f"{ENV} is shorter than {MIN_LENGTH} characters", remedy="use a long random value")
        return FingerprintKey(value, f"environment variable {ENV}")
    configured = _config_key_file(config)
    if configured is not None:
        return FingerprintKey(_read(configured, "[fingerprint] key_file"), f"key file {configured}")
    if cache_dir is None:
        return FingerprintKey(_process_key(), "a key for this process only")
    path = cache_dir / FILE_NAME
    if path.exists():
        return FingerprintKey(_read(path, "key file"), f"key file {path}")
    try:  # written whole, then linked into place: a concurrent first run reads one key, never half
        import tempfile

        cache_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".fingerprint-")  # mode 600
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(_new_key() + "\n")
            os.link(tmp, path)
            made = " (made now)"
        except FileExistsError:
            made = ""
        finally:
            os.unlink(tmp)
    except OSError as exc:
        raise UsageError(
            f"cannot create the fingerprint key {path} ({exc.strerror or type(exc).__name__})",
            remedy=f"give a writable --cache-dir, or set {ENV}",
        ) from None
    return FingerprintKey(_read(path, "key file"), f"key file {path}{made}")
