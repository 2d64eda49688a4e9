"""The source seam: a way to get an image yields the members of an image archive.

Every source, whether a ``docker save`` stream from the engine, a tarball on disk or an OCI layout
directory, is read as a sequence of :class:`Member` objects in whatever order the producer wrote
them; :mod:`scanner.layers.collect` classifies and walks them.  A member's stream is only valid until the
iterator advances.
"""

from __future__ import annotations

import os
import stat
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..errors import SourceError
from ..models import Readable, Value, value

__all__ = ["BODY_SHAPE", "DESC_SHAPE", "ImageSource", "Member", "SourceError", "bad_shape"]


@value(slots=True)
class Member(Value):
    """A member of an image archive: a file to read, a link, or a blob a source holds."""

    path: str
    size: int
    stream: Readable | None = None  # regular files only
    link: str | None = None  # symlink or hard link, already resolved to an archive path
    # A digest this member's bytes are known to have without reading them: a registry fetches a
    # blob by its digest and fails the scan if the bytes do not hash to it.  A cached result for it
    # then stands for the member, unread.  Never a digest a name merely claims: an archive member's
    # name is proven by its bytes (or by an earlier scan of the same unchanged file: see scanner.cache).
    digest: str | None = None
    # The member's data again from its first byte (a tarball on disk), for a source that can: a
    # member hashed to look it up in the cache is then walked after a miss.
    reopen: Callable[[], Readable] | None = None
    # The member's data opened anew on a file handle of its own (a tarball on disk, a file of an
    # OCI layout): valid after the iteration moved on and in a forked process, so that several
    # layers can be walked at once (scanner.layers.fanout).  A picklable callable; the reader it
    # returns has a close().
    detached: Callable[[], Readable] | None = None


class ImageSource(ABC):
    kind: str = ""

    def __init__(self, ref: str, select: str | None = None) -> None:
        self.ref = ref
        self.select = select  # an image name or tag inside a multi-image archive

    @abstractmethod
    def members(self) -> Iterator[Member]:
        """Yield the archive's members; raise SourceError if the image cannot be opened."""

    def vouched_image(self) -> tuple[str, list[str]] | None:
        """The image's config digest and its layers' diff_ids as a trusted store computed them (a
        Docker Engine), known before any member is read; None if the source cannot vouch for them."""
        return None

    def size_hint(self) -> int | None:
        """The bytes of layer content a scan will read, when the source knows them before reading
        (the progress bar's total and ETA); None when it does not."""
        return None

    def rereadable(self) -> bool:
        """Whether :meth:`members` can be asked again for the same image (standard input cannot)."""
        return True

    def identity(self) -> str | None:
        """Something that changes whenever the bytes this source yields may have changed (a file's
        stat), or None: results proven on those bytes then hold for the same identity later."""
        return None

    def describe(self) -> str:
        return f"{self.kind}:{self.ref}"


RECENT_NS = 3_000_000_000  # a file changed this recently gets no identity


def file_identity(path: str) -> str | None:
    """A regular file's path and stat, as git trusts them: any write changes its ctime, which no
    call can set back.  None for anything else, or for a file changed in the last few seconds (a
    write in the same clock tick as the scan could go unseen)."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_ctime_ns > time.time_ns() - RECENT_NS:
        return None
    return f"file\0{path}\0{st.st_dev}\0{st.st_ino}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}"


# The media types of the indexes and manifests every source and the resolver understand.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)


# The JSON types the OCI specs give the fields of descriptors and of manifests and indexes: checked
# wherever those documents are read (the archive resolver, the registry source), so that a field of
# another type is an error, never a crash or a document read as empty.
DESC_SHAPE = {"annotations": dict, "platform": dict, "mediaType": str}
BODY_SHAPE = {"layers": list, "manifests": list, "annotations": dict, "config": dict, "subject": dict, "mediaType": str}


_TYPE_NAMES: dict[type, str] = {list: "list", dict: "JSON object", str: "string"}


def bad_shape(doc: dict[str, Any], shape: Mapping[str, type]) -> str | None:
    """Why ``doc`` does not have the JSON types the spec gives its fields (None if it does)."""
    for key, kind in shape.items():
        value = doc.get(key)
        if value is not None and not isinstance(value, kind):
            expected = _TYPE_NAMES.get(kind, kind.__name__)
            return f"{key!r} is a {type(value).__name__}, not a {expected}"
    return None
