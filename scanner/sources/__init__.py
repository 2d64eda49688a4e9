"""Ways to get an image, and how an IMAGE argument picks one.

Explicit transports follow skopeo's names: ``docker-daemon:NAME``, ``docker-archive:PATH[:REF]``,
``oci-archive:PATH[:REF]``, ``oci:DIR[:REF]``.  A bare argument is a path when one exists (a
directory is an OCI layout, a file a tarball), ``-`` is standard input, and anything else is an
image name or ID in the local engine.
"""

from __future__ import annotations

import os

from ..errors import UsageError
from .daemon import DaemonSource
from .interface import ImageSource, Member, SourceError
from .ocidir import OciLayoutSource
from .tarball import TarballSource

__all__ = ["DaemonSource", "ImageSource", "Member", "OciLayoutSource", "SourceError", "TarballSource", "open_source"]

_PATH_TRANSPORTS: dict[str, type[ImageSource]] = {
    "docker-archive": TarballSource,
    "oci-archive": TarballSource,
    "oci": OciLayoutSource,
}


def _split_path_ref(rest: str) -> tuple[str, str | None]:
    """skopeo's PATH[:REF]: the longest prefix that exists is the path."""
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    cuts = [i for i, c in enumerate(rest) if c == ":"]
    for i in reversed(cuts):
        if os.path.exists(rest[:i]):
            return rest[:i], rest[i + 1 :] or None
    return rest[: cuts[0]], rest[cuts[0] + 1 :] or None


def open_source(image: str) -> ImageSource:
    transport, sep, rest = image.partition(":")
    if sep and transport in _PATH_TRANSPORTS and not os.path.exists(image):
        path, ref = _split_path_ref(rest)
        if not os.path.exists(path):
            raise SourceError(f"{transport}: no such file or directory: {path}")
        return _PATH_TRANSPORTS[transport](path, select=ref)
    if sep and transport == "docker-daemon":
        return DaemonSource(rest)
    if image.startswith("docker://"):
        raise UsageError(
            "registry sources (docker://) are not supported yet",
            remedy="pull the image into an engine, or skopeo copy it to an oci-archive: first",
        )
    if image == "-":
        return TarballSource("-")
    if os.path.isdir(image):
        return OciLayoutSource(image)
    if os.path.exists(image):
        return TarballSource(image)
    if "/" in image and (image.startswith((".", "/")) or image.endswith((".tar", ".tgz", ".tar.gz", ".tar.zst"))):
        raise SourceError(f"no such file: {image}")
    return DaemonSource(image)
