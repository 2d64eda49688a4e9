"""An image in a Docker Engine (or podman's Docker-compatible socket), through the docker SDK.

The engine's ``docker save`` stream (``GET /images/{name}/get``) is read as it arrives and walked
like a tarball: nothing is written to disk.  ``DOCKER_HOST`` and the other ``DOCKER_*`` variables
are honoured by ``docker.from_env``.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from typing import Any

from .interface import ImageSource, Member, SourceError
from .reference import DIGEST
from .tarball import tar_members

CHUNK = 1 << 20


class _IterStream(io.RawIOBase):
    """The HTTP body's chunks as a raw stream.  An offset into the current chunk, not a slice of it:
    slicing the rest of a 1 MiB chunk on every small read copied it again and again."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = memoryview(b"")
        self._pos = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while self._pos >= len(self._pending):
            try:
                self._pending, self._pos = memoryview(next(self._chunks)), 0
            except StopIteration:
                return 0
        n = min(len(buffer), len(self._pending) - self._pos)
        buffer[:n] = self._pending[self._pos : self._pos + n]
        self._pos += n
        return n


def engine_address() -> str:
    return os.environ.get("DOCKER_HOST", "the default socket")


def connect() -> Any:
    import docker  # the SDK takes a tenth of a second to import: only when the engine is used

    try:
        client = docker.from_env(timeout=600)
        client.ping()
    except docker.errors.DockerException as exc:
        raise SourceError(
            f"cannot reach the Docker engine at {engine_address()}: {str(exc)[:160]}",
            remedy="start the engine or set DOCKER_HOST (podman: unix://$XDG_RUNTIME_DIR/podman/podman.sock)",
        ) from None
    return client


def engine_has(name: str) -> bool:
    """Whether a reachable engine holds this image; False when there is no engine at all."""
    try:
        import docker
        import docker.errors
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=10)
    except docker.errors.DockerException:
        return False
    try:
        client.api.inspect_image(name)
        return True
    except Exception:  # no engine, no such image, a refused connection: not in an engine we can use
        return False
    finally:
        client.close()


class DaemonSource(ImageSource):
    kind = "docker-daemon"

    def __init__(self, ref: str, select: str | None = None) -> None:
        super().__init__(ref, select)
        self._client: Any = None
        self._info: dict[str, Any] | None = None

    def _inspect(self) -> tuple[Any, dict[str, Any]]:
        import docker.errors

        if self._client is None or self._info is None:
            client = connect()
            try:
                info = client.api.inspect_image(self.ref)
            except docker.errors.ImageNotFound:
                client.close()
                raise SourceError(f"image {self.ref!r} not found in the engine at {engine_address()}") from None
            except docker.errors.DockerException as exc:
                client.close()
                raise SourceError(f"cannot inspect image {self.ref!r}: {str(exc)[:160]}") from None
            self._client, self._info = client, info
        return self._client, self._info

    def vouched_image(self) -> tuple[str, list[str]] | None:
        """The engine's own image id (its config's digest) and diff_ids: it computed them when it
        built, pulled or loaded each layer, and keeps layers by them."""
        info = self._inspect()[1]
        image_id, layers = info.get("Id"), (info.get("RootFS") or {}).get("Layers")
        if not isinstance(layers, list):
            return None
        digests = [image_id, *layers]
        if not all(isinstance(d, str) and DIGEST.fullmatch(d) for d in digests):
            return None
        return str(image_id), [str(d) for d in layers]

    def size_hint(self) -> int | None:
        """The engine's own figure: the image's uncompressed size, its layers' contents."""
        size = self._inspect()[1].get("Size")
        return size if isinstance(size, int) and size > 0 else None

    def members(self) -> Iterator[Member]:
        import docker.errors

        client, _ = self._inspect()
        try:
            chunks = client.api.get_image(self.ref, chunk_size=CHUNK)
            yield from tar_members(_IterStream(iter(chunks)))
        except docker.errors.DockerException as exc:
            raise SourceError(f"the engine failed to export {self.ref!r}: {str(exc)[:160]}") from None
        finally:
            client.close()
            self._client = self._info = None
