"""What names a registry image and how to reach it: references, credentials, options.

Split from :mod:`.registry` so that a run that never talks to a registry (a tarball, the local
engine) does not import the HTTP client: the CLI and the service need these names on every run.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import field
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import SourceError, UsageError
from ..models import Value, value

DOCKER_HUB = "registry-1.docker.io"
DOCKER_HUB_CONFIG_KEY = "https://index.docker.io/v1/"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_NAME = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*\Z")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")


@value
class Reference(Value):
    """An image reference parsed: registry, repository, and a tag or a digest."""

    registry: str  # host[:port], as written (docker.io is mapped to its API host)
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        rest = text.removeprefix("docker://")
        digest = None
        if "@" in rest:
            rest, digest = rest.split("@", 1)
            if not DIGEST.match(digest):
                raise UsageError(f"{text}: {digest!r} is not a sha256 digest")
        tag = None
        slash, colon = rest.rfind("/"), rest.rfind(":")
        if colon > slash:
            rest, tag = rest[:colon], rest[colon + 1 :]
            if not _TAG.match(tag):
                raise UsageError(f"{text}: {tag!r} is not a valid tag")
        first, sep, remainder = rest.partition("/")
        if sep and has_registry_host(rest):
            registry, repository = first, remainder
        else:
            registry, repository = "docker.io", rest
        if registry in ("docker.io", "index.docker.io"):
            registry = "docker.io"
            if "/" not in repository:
                repository = f"library/{repository}"
        if not _NAME.match(repository):
            raise UsageError(f"{text}: {repository!r} is not a valid repository name")
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, repository, tag, digest)

    @property
    def api_host(self) -> str:
        return DOCKER_HUB if self.registry == "docker.io" else self.registry

    @property
    def reference(self) -> str:
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.registry}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out


def has_registry_host(name: str) -> bool:
    """Docker's rule: the first path component is a registry when it has a dot or a port, or is localhost."""
    first, sep, _ = name.removeprefix("docker://").partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def is_loopback(host: str) -> bool:
    name = urlsplit(f"//{host}").hostname or ""
    if name == "localhost":
        return True
    import ipaddress  # here: a scan of a file never asks (start-up time)

    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@value
class Credentials(Value):
    """A registry login given on the command line or by the service's config."""

    username: str
    password: str  # or an identity token with username "<token>"

    def __repr__(self) -> str:
        return f"Credentials({self.username!r}, <hidden>)"


_CONFIG_REMEDY = (
    "fix the Docker config (DOCKER_CONFIG or ~/.docker/config.json: docker login writes it), or give "
    "--registry-username with the password in LEAKSCAN_REGISTRY_PASSWORD"
)


def _helper(name: str, host: str) -> Credentials | None:
    import subprocess  # only for a credential helper

    try:
        proc = subprocess.run(
            [f"docker-credential-{name}", "get"], input=host.encode(), capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        raise SourceError(
            f"credential helper docker-credential-{name} could not be run", remedy=_CONFIG_REMEDY
        ) from None
    if proc.returncode != 0:
        return None  # "credentials not found in native keychain"
    try:
        doc = json.loads(proc.stdout)
        return Credentials(str(doc["Username"]), str(doc["Secret"]))
    except (ValueError, KeyError, TypeError):
        raise SourceError(
            f"credential helper docker-credential-{name} gave an unreadable answer", remedy=_CONFIG_REMEDY
        ) from None


def docker_config_credentials(registry: str, config_dir: str | None = None) -> Credentials | None:
    """Credentials for ``registry`` from the Docker config: credHelpers, then auths, then credsStore."""
    directory = Path(config_dir or os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")
    path = directory / "config.json"
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise SourceError(f"{path}: not readable as JSON", remedy=_CONFIG_REMEDY) from None
    if not isinstance(doc, dict):
        return None
    keys = [DOCKER_HUB_CONFIG_KEY, "docker.io", "index.docker.io"] if registry == "docker.io" else [registry]
    helpers = doc.get("credHelpers") or {}
    for key in keys:
        if isinstance(helpers, dict) and isinstance(helpers.get(key), str):
            return _helper(helpers[key], key)
    auths = doc.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            host = urlsplit(key if "//" in key else f"//{key}").netloc
            if (key in keys or host in keys) and isinstance(entry, dict):
                if entry.get("identitytoken"):
                    return Credentials("<token>", str(entry["identitytoken"]))
                if entry.get("auth"):
                    try:
                        user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        raise SourceError(
                            f"{path}: auths[{key!r}].auth is not base64 of user:password", remedy=_CONFIG_REMEDY
                        ) from None
                    return Credentials(user, password)
                if entry.get("username"):
                    return Credentials(str(entry["username"]), str(entry.get("password", "")))
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return _helper(store, keys[0])
    return None


@value
class RegistryOptions(Value):
    """How to pull from a registry: the platform, insecure hosts, credentials and TLS."""

    platform: str = "linux/amd64"
    all_platforms: bool = False
    insecure: tuple[str, ...] = ()  # hosts where plain HTTP and unverified TLS are allowed
    credentials: Credentials | None = None  # overrides the Docker config
    config_dir: str | None = None
    ca_bundle: str | None = None
    # a ready Authorization header for the registry ("Bearer <token>", as Harbor's scan requests
    # carry): sent from the first request, never to another host; a 401 with it is final
    authorization: str | None = field(default=None, repr=False)
