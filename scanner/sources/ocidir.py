"""An OCI image layout directory (``oci-layout``, ``index.json``, ``blobs/``).

Its files are offered as members in sorted order, exactly like a tarball's; symbolic links are
recorded as links and never followed out of the directory.
"""

from __future__ import annotations

import functools
import os
import posixpath
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from .interface import ImageSource, Member, SourceError, file_identity


def _open_blob(path: str) -> BinaryIO:
    return open(path, "rb")


class OciLayoutSource(ImageSource):
    kind = "oci-layout"

    def identity(self) -> str | None:
        """Every file's path and stat (see :func:`file_identity`): a layout in which nothing
        changed; None if any file changed in the last few seconds, or is not a regular file."""
        root = os.path.realpath(self.ref)
        found = []
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            for name in sorted(filenames):
                full = os.path.join(dirpath, name)
                if (one := file_identity(full)) is None and not os.path.islink(full):
                    return None
                found.append(one or f"link\0{full}\0{os.readlink(full)}")
        return "oci-layout\0" + "\n".join(found)

    def members(self) -> Iterator[Member]:
        root = Path(self.ref)
        if not (root / "index.json").is_file():
            raise SourceError(f"{self.ref} is a directory but not an OCI image layout (no index.json)")
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
            dirnames.sort()
            rel_dir = os.path.relpath(dirpath, root)
            for name in sorted(filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]):
                full = os.path.join(dirpath, name)
                rel = posixpath.normpath(posixpath.join(rel_dir.replace(os.sep, "/"), name))
                if os.path.islink(full):
                    target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), os.readlink(full)))
                    yield Member(rel, 0, link=target)
                    continue
                if not os.path.isfile(full):
                    continue
                try:
                    fh = open(full, "rb")  # noqa: SIM115 - closed below, after the consumer is done
                except OSError as exc:
                    raise SourceError(f"cannot read {full}: {exc.strerror}") from None
                with fh:
                    detached = functools.partial(_open_blob, os.path.realpath(full))
                    yield Member(rel, os.fstat(fh.fileno()).st_size, stream=fh, detached=detached)
