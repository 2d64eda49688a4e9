"""Ways to get an image, and how an IMAGE argument picks one.

Explicit transports follow skopeo's names: ``docker://REF`` (a registry), ``docker-daemon:NAME``,
``docker-archive:PATH[:REF]``, ``oci-archive:PATH[:REF]``, ``oci:DIR[:REF]``.  A bare argument is a
path when one exists (a directory is an OCI layout, a file a tarball), ``-`` is standard input.
Anything else is an image: in the local engine when the engine has it (the CI gate scans what was
just built, before it is pushed), otherwise, when its name starts with a registry host
(``registry.example.com/team/app:1.2``, ``localhost:5000/app@sha256:...``), from that registry.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .interface import ImageSource, Member, SourceError
from .tarball import TarballSource

if TYPE_CHECKING:
    from .daemon import DaemonSource
    from .ocidir import OciLayoutSource
    from .reference import RegistryOptions
    from .registry import RegistrySource

__all__ = [
    "DaemonSource",
    "ImageSource",
    "Member",
    "OciLayoutSource",
    "RegistryOptions",
    "RegistrySource",
    "SourceError",
    "TarballSource",
    "open_source",
]

# imported on first use: a scan of a tarball does not load the engine's client, the layout reader
# or the registry's names and HTTP client (start-up time)
_LAZY = {
    "DaemonSource": "daemon",
    "OciLayoutSource": "ocidir",
    "RegistryOptions": "reference",
    "RegistrySource": "registry",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def _split_path_ref(rest: str) -> tuple[str, str | None]:
    """skopeo's PATH[:REF]: the longest prefix that exists is the path."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    cuts = [i for i, c in enumerate(rest) if c == ":"]
    for i in reversed(cuts):
        if os.path.exists(rest[:i]):
            return rest[:i], rest[i + 1 :] or None
    return rest[: cuts[0]], rest[cuts[0] + 1 :] or None


def _registry(image: str, options: RegistryOptions | Callable[[], RegistryOptions] | None) -> ImageSource:
    from .registry import RegistrySource

    return RegistrySource(image, options() if callable(options) else options)


def open_source(image: str, registry: RegistryOptions | Callable[[], RegistryOptions] | None = None) -> ImageSource:
    """The source an IMAGE argument names (see above); ``registry``: the options of a registry
    source, or what makes them (made only for one)."""
    transport, sep, rest = image.partition(":")
    if sep and transport in ("docker-archive", "oci-archive", "oci") and not os.path.exists(image):
        path, ref = _split_path_ref(rest)
        if not os.path.exists(path):
            raise SourceError(f"{transport}: no such file or directory: {path}")
        if transport == "oci":
            from .ocidir import OciLayoutSource

            return OciLayoutSource(path, select=ref)
        return TarballSource(path, select=ref)
    if image == "-":
        return TarballSource("-")
    if not (sep and transport == "docker-daemon") and not image.startswith("docker://"):
        if os.path.isdir(image):
            from .ocidir import OciLayoutSource

            return OciLayoutSource(image)
        if os.path.exists(image):
            return TarballSource(image)
    from .daemon import DaemonSource, engine_has
    from .reference import has_registry_host

    if sep and transport == "docker-daemon":
        return DaemonSource(rest)
    if image.startswith("docker://"):
        return _registry(image, registry)
    if "/" in image and (image.startswith((".", "/")) or image.endswith((".tar", ".tgz", ".tar.gz", ".tar.zst"))):
        raise SourceError(f"no such file: {image}")
    if has_registry_host(image) and not engine_has(image):
        return _registry(image, registry)
    return DaemonSource(image)
