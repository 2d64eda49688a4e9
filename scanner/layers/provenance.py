"""Where a file came from: the package managers' own records in the image.

The layer walk hands every record file it meets to a :class:`RecordCollector` (dpkg's
``var/lib/dpkg/status`` and ``info/*.list`` / ``info/*.md5sums``, pip's ``*.dist-info/RECORD``,
npm's ``node_modules/**/package.json``, apk's ``lib/apk/db/installed``), which keeps, per layer, the
packages and, for each file they installed, its package and recorded checksum.  After the walk,
:class:`Owners` answers for a file with findings: which package installed it, its version, and
whether the file's bytes still match the record (``unmodified``, ``modified``) or cannot be
checked (``unverified``: npm and Maven record no per-file checksum, pip none for ``.pyc`` files,
and only files read whole, up to 1 MiB, are hashed).  Maven coordinates inside jars come from the
walk of the jar itself (``META-INF/maven/**/pom.properties``, see nested.py).

What the records say is data from the image, like any other: a record can claim any file.  It is
used only to lower the severity of findings in files whose bytes match the record, and a file
whose bytes do not match is never downgraded (see policy.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import re
from collections.abc import Sequence
from typing import Any

from ..cache import LayerCache
from ..models import (
    FileHits,
    LayerScan,
    Package,
    PackageRecords,
    compiled,
    loaded,
    pack_record,
    record_index,
    sha256_hex,
)

MAX_RECORD = 64 << 20  # a record file larger than this is scanned, not parsed (reported by the walk)

_DPKG_INFO = compiled(r"^var/lib/dpkg/info/([^/:]+)(?::[\w\-]+)?\.(list|md5sums)$")
_DPKG_STATUS = compiled(r"^var/lib/dpkg/(?:status|status\.d/[^/]+)$")
_PIP_RECORD = compiled(r"^(.*/)?([^/]+)-([^/-]+)\.dist-info/RECORD$")
_NPM_PACKAGE = compiled(r"^(?:.*/)?node_modules/(?:@[^/]+/)?[^/@][^/]*/package\.json$")
_APK = "lib/apk/db/installed"
# the last character of every record's name (.list .md5sums RECORD .json installed status; status.d/ any)
RECORD_LAST = frozenset("tsDnd")
_ENDINGS = (".list", ".md5sums", "/RECORD", "/package.json", "/installed", "/status")


def is_record(path: str) -> bool:
    """Whether the walk should hand this file's bytes to a collector (most paths: one endswith)."""
    if not path.endswith(_ENDINGS) and not path.startswith("var/lib/dpkg/status.d/"):
        return False
    return bool(
        _DPKG_INFO().match(path)
        or _DPKG_STATUS().match(path)
        or _PIP_RECORD().match(path)
        or _NPM_PACKAGE().match(path)
        or path == _APK
    )


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _usr_aliases(path: str) -> tuple[str, ...]:
    """Debian's merged /usr: dpkg records bin/bash, the layer holds usr/bin/bash (or the reverse)."""
    head, _, rest = path.partition("/")
    if head == "usr":
        top = rest.partition("/")[0]
        if top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            return (path, rest)
    elif head in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        return (path, "usr/" + path)
    return (path,)


class RecordCollector:
    """The record files of one layer, parsed into :class:`PackageRecords` when the walk ends."""

    def __init__(self) -> None:
        self._packages: dict[tuple[str, str], int] = {}
        self._versions: dict[tuple[str, str], str] = {}
        self._files: dict[str, tuple[int, str]] = {}
        self._roots: dict[str, int] = {}
        self._dpkg_lists: list[tuple[str, bytes]] = []
        self._dpkg_sums: list[tuple[str, bytes]] = []
        self._pip_texts: list[tuple[str, int, str]] = []
        self._pip_index: list[tuple[tuple[str, ...], str]] = []

    def _package(self, manager: str, name: str, version: str = "") -> int:
        key = (manager, name)
        if version:
            self._versions[key] = version
        return self._packages.setdefault(key, len(self._packages))

    def add(self, path: str, data: bytes) -> None:
        """Parse one record file; damaged records are data too: what cannot be parsed is left out."""
        if m := _DPKG_INFO().match(path):
            (self._dpkg_lists if m.group(2) == "list" else self._dpkg_sums).append((m.group(1), data))
        elif _DPKG_STATUS().match(path):
            self._dpkg_status(data)
        elif m := _PIP_RECORD().match(path):
            self._pip(m.group(1) or "", m.group(2), m.group(3), data)
        elif _NPM_PACKAGE().match(path):
            self._npm(posixpath.dirname(path), data)
        elif path == _APK:
            self._apk(data)

    def _dpkg_status(self, data: bytes) -> None:
        for stanza in re.split(r"\n\s*\n", _text(data)):
            fields = dict(re.findall(r"(?m)^([A-Za-z\-]+):[ \t]*(.*)$", stanza))
            name, version = fields.get("Package"), fields.get("Version", "")
            if not name or "installed" not in fields.get("Status", "installed"):
                continue
            k = self._package("dpkg", name, version)
            # conffiles: their checksums are in the status, not in md5sums
            block = re.search(r"(?m)^Conffiles:\s*\n((?:[ \t]+\S.*\n?)+)", stanza)
            for line in block.group(1).splitlines() if block else ():
                parts = line.split()
                if len(parts) >= 2 and re.fullmatch(r"[0-9a-f]{32}", parts[1]):
                    self._files[parts[0].lstrip("/")] = (k, "md5:" + parts[1])

    def _pip(self, site: str, name: str, version: str, data: bytes) -> None:
        """Kept as written, compressed: PackageRecords reads it at a lookup."""
        text = _text(data)
        self._pip_texts.append((site, self._package("pip", name.replace("_", "-"), version), pack_record(text)))
        self._pip_index.append(record_index(text))

    def _npm(self, root: str, data: bytes) -> None:
        try:
            doc = json.loads(data)
        except (ValueError, RecursionError):
            return
        if isinstance(doc, dict) and isinstance(doc.get("name"), str):
            version = doc.get("version")
            self._roots[root] = self._package("npm", doc["name"], version if isinstance(version, str) else "")

    def _apk(self, data: bytes) -> None:
        k, folder, last = -1, "", ""
        name = version = ""
        for line in _text(data).splitlines():
            tag, _, value = line.partition(":")
            if tag == "P":
                name, version, k = value, "", -1
            elif tag == "V":
                version = value
            elif tag == "F":
                folder = value
            elif tag == "R" and name:
                k = self._package("apk", name, version) if k < 0 else k
                last = posixpath.join(folder, value)
                self._files[last] = (k, "")
            elif tag == "Z" and last and k >= 0 and value.startswith("Q1"):
                try:
                    raw = base64.b64decode(value[2:])
                except (binascii.Error, ValueError):
                    continue
                if len(raw) == 20:
                    self._files[last] = (k, "sha1:" + raw.hex())

    def records(self) -> PackageRecords | None:
        sums: dict[str, tuple[int, str]] = {}
        for name, data in self._dpkg_sums:
            k = self._package("dpkg", name)
            for line in _text(data).splitlines():
                digest, _, path = line.partition("  ")
                if path and re.fullmatch(r"[0-9a-f]{32}", digest):
                    sums[path.lstrip("/")] = (k, "md5:" + digest)
        for name, data in self._dpkg_lists:
            k = self._package("dpkg", name)
            for line in _text(data).splitlines():
                path = line.strip().lstrip("/")
                if path and path not in sums and path not in self._files:
                    self._files[path] = (k, "")
        self._files.update(sums)
        if not self._packages:
            return None
        order = sorted(self._packages.items(), key=lambda item: item[1])
        packages = tuple((m, n, self._versions.get((m, n), "")) for (m, n), _ in order)
        return PackageRecords(packages, self._files, self._roots, self._pip_texts, self._pip_index)


def _state(recorded: str, digests: tuple[str, str, str] | None) -> str:
    if recorded.startswith("sha256="):  # pip's RECORD, as written: URL-safe base64 without padding
        b64 = recorded[7:]
        try:
            recorded = "sha256:" + base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
        except (binascii.Error, ValueError):
            return "unverified"
    algo, _, expected = recorded.partition(":")
    if not expected:
        return "unverified"
    if digests is None:
        return "unhashed"  # a checksum is recorded, but the file was streamed, not hashed
    actual = {"md5": digests[0], "sha1": digests[1], "sha256": digests[2]}.get(algo)
    if actual is None:
        return "unverified"
    return "unmodified" if actual == expected else "modified"


def packages(scans: Sequence[LayerScan | None], cache: LayerCache | None) -> list[list[Package | None]]:
    """For each layer, the package of each of its files with findings (:meth:`Owners.package`).

    What the records of the same layers say does not change: it is cached under their digests (a
    layer's cached result is its diff_id's, under the same namespace), so that a rescan reads no
    record (a pip RECORD is up to a megabyte of text to search, per file with findings).  Only
    for layers read whole: a layer cut short is not cached under its digest either."""
    key = None
    if cache is not None and all(scan is None or scan.error is None for scan in scans):
        digests = [scan.diff_id if scan is not None else None for scan in scans]
        key = "owners:" + sha256_hex(json.dumps(digests).encode())
        if (kept := _kept(cache.get_doc(key), scans)) is not None:
            return kept
    owners = Owners(scans)
    found = [
        [owners.package(i, fh) if owners else None for fh in scan.files] if scan else [] for i, scan in enumerate(scans)
    ]
    if cache is not None and key is not None and any(p is not None for layer in found for p in layer):
        doc = [[None if p is None else [p.manager, p.name, p.version, p.state] for p in layer] for layer in found]
        cache.put_doc(key, doc)
    return found


def _kept(doc: Any, scans: Sequence[LayerScan | None]) -> list[list[Package | None]] | None:
    """The cached packages, if ``doc`` has one entry per file of each layer; otherwise None (looked up again)."""
    if not isinstance(doc, list) or len(doc) != len(scans):
        return None
    found: list[list[Package | None]] = []
    for layer, scan in zip(doc, scans, strict=True):
        if not isinstance(layer, list) or len(layer) != (len(scan.files) if scan is not None else 0):
            return None
        if not all(
            p is None or (isinstance(p, list) and len(p) == 4 and all(isinstance(x, str) for x in p)) for p in layer
        ):
            return None
        found.append([None if p is None else Package(*p) for p in layer])
    return found


class Owners:
    """Which package installed a file, as the records at or below its layer say."""

    def __init__(self, scans: Sequence[LayerScan | None]) -> None:
        self._records = [loaded(scan.records) if scan is not None else None for scan in scans]
        self._versions: list[dict[tuple[str, str], str]] = []
        known: dict[tuple[str, str], str] = {}
        for records in self._records:  # dpkg's status may sit in a lower layer than a package's files
            for m, n, v in records.packages if records else ():
                if v:
                    known[(m, n)] = v
            self._versions.append(dict(known))

    def __bool__(self) -> bool:
        return any(self._records)

    def package(self, layer: int, fh: FileHits) -> Package | None:
        """The package of the layer file ``fh.path`` (verified against its bytes where a checksum is
        recorded); for a member of an archive that no package owns, the Maven artifact around it."""
        found = self._file(layer, fh.path, fh.digests)
        if fh.member and fh.maven and (found is None or found.state != "unmodified"):
            group_artifact, _, version = fh.maven.rpartition(":")
            return Package("maven", group_artifact, version, "unverified")
        return found

    def _file(self, layer: int, path: str, digests: tuple[str, str, str] | None) -> Package | None:
        for i in range(min(layer, len(self._records) - 1), -1, -1):
            records = self._records[i]
            if not records:
                continue
            for candidate in _usr_aliases(path):
                if (entry := records.file(candidate)) is not None:
                    return self._make(i, records.packages[entry[0]], _state(entry[1], digests))
            if records.roots and (root := _root(records.roots, path)) is not None:
                return self._make(i, records.packages[root], "unverified")
        return None

    def _make(self, layer: int, package: tuple[str, str, str], state: str) -> Package:
        manager, name, version = package
        return Package(manager, name, version or self._versions[layer].get((manager, name), ""), state)


def _root(roots: dict[str, int], path: str) -> int | None:
    """The npm package whose directory holds ``path`` most closely (nested node_modules first)."""
    folder = posixpath.dirname(path)
    while folder and "node_modules" in folder:
        if folder in roots:
            return roots[folder]
        folder = posixpath.dirname(folder)
    return None
