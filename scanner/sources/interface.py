"""The source seam: a way to get an image yields the members of an image archive.

Every source, whether a ``docker save`` stream from the engine, a tarball on disk or an OCI layout
directory, is read as a sequence of :class:`Member` objects in whatever order the producer wrote
them; :mod:`scanner.archive` classifies and walks them.  A member's stream is only valid until the
iterator advances.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import SourceError
from ..models import Readable

__all__ = ["ImageSource", "Member", "SourceError"]


@dataclass(frozen=True, slots=True)
class Member:
    path: str
    size: int
    stream: Readable | None = None  # regular files only
    link: str | None = None  # symlink or hard link, already resolved to an archive path


class ImageSource(ABC):
    kind: str = ""

    def __init__(self, ref: str, select: str | None = None) -> None:
        self.ref = ref
        self.select = select  # an image name or tag inside a multi-image archive

    @abstractmethod
    def members(self) -> Iterator[Member]:
        """Yield the archive's members; raise SourceError if the image cannot be opened."""

    def describe(self) -> str:
        return f"{self.kind}:{self.ref}"
