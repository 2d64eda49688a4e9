"""Package provenance and the severity policy (scanner/provenance.py, scanner/policy.py), on
images whose package records are written by hand: dpkg, pip, npm and apk, a file changed after its
package installed it, a file no package owns, a known secret and a checksum-proven token."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import random
import string
import zlib
from pathlib import Path

import pytest

from scanner import ScanOptions, scan_image
from scanner.detectors import KnownValue
from scanner.detectors.rules.model import base62
from scanner.models import Finding, Severity
from scanner.report import OutputFormat, renderer_for
from scanner.sources import open_source
from tests.support.tars import docker_archive, layer_tar, sha, zip_of

rng = random.Random(os.urandom(8))


def _token(n: int) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def _github_token(proven: bool) -> str:
    body = _token(30)
    check = base62(zlib.crc32(body.encode()) & 0xFFFFFFFF).decode() if proven else _token(6)
    return f"ghp_{body}{check}"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _scan(tmp_path: Path, layers: list[bytes], known: tuple[KnownValue, ...] = ()) -> list[Finding]:
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive(layers))
    report = scan_image(open_source(str(archive)), ScanOptions(known=known))
    assert report.complete, report.problems
    return list(report.findings)


def _by_path(findings: list[Finding]) -> dict[str, Finding]:
    out: dict[str, Finding] = {}
    for f in findings:
        assert f.path is not None
        assert f.path not in out, f"two findings in {f.path}: {[g.rule_id for g in findings if g.path == f.path]}"
        out[f.path] = f
    return out


def test_dpkg_files_verified_against_md5sums(tmp_path: Path) -> None:
    shipped = f'AUTH = "Authorization: Bearer {_token(32)}"\n'.encode()
    changed_before = b"# settings\n"
    changed_after = changed_before + f"API_TOKEN={_github_token(False)}\n".encode()
    proven = f"token = {_github_token(True)}\n".encode()
    base = layer_tar(
        [
            ("usr/lib/python3/dist-packages/acme/auth.py", shipped),
            ("usr/share/acme/settings.conf", changed_before),
            ("usr/share/acme/proven.txt", proven),
            ("usr/bin/acme-tool", shipped),  # dpkg records bin/acme-tool: Debian's merged /usr
            (
                "var/lib/dpkg/status",
                b"Package: python3-acme\nStatus: install ok installed\nVersion: 2.1-3\n\n"
                b"Package: unrelated\nStatus: install ok installed\nVersion: 1\n",
            ),
            (
                "var/lib/dpkg/info/python3-acme.md5sums",
                f"{_md5(shipped)}  usr/lib/python3/dist-packages/acme/auth.py\n"
                f"{_md5(changed_before)}  usr/share/acme/settings.conf\n"
                f"{_md5(proven)}  usr/share/acme/proven.txt\n"
                f"{_md5(shipped)}  bin/acme-tool\n".encode(),
            ),
            ("var/lib/dpkg/info/python3-acme.list", b"/usr/lib/python3/dist-packages/acme/auth.py\n/bin/acme-tool\n"),
        ]
    )
    app = f"GITHUB_TOKEN={_github_token(False)}\n".encode()
    top = layer_tar([("usr/share/acme/settings.conf", changed_after), ("srv/app/.env", app)])
    found = _by_path(_scan(tmp_path, [base, top]))

    unmodified = found["usr/lib/python3/dist-packages/acme/auth.py"]
    assert unmodified.severity is Severity.LOW and unmodified.downgraded_from is Severity.HIGH
    assert unmodified.package is not None
    assert unmodified.package.describe() == "Debian package python3-acme 2.1-3, unmodified"
    assert unmodified.downgrade_reason == "shipped unmodified by Debian package python3-acme 2.1-3"
    assert found["usr/bin/acme-tool"].package == unmodified.package

    modified = found["usr/share/acme/settings.conf"]
    assert modified.severity is Severity.HIGH and modified.downgraded_from is None
    assert modified.package is not None and modified.package.state == "modified"
    assert "changed after Debian package python3-acme 2.1-3 installed it" in modified.description

    assert found["usr/share/acme/proven.txt"].severity is Severity.CRITICAL  # a proven token: wherever it is
    assert found["usr/share/acme/proven.txt"].package is not None

    unowned = found["srv/app/.env"]
    assert unowned.severity is Severity.HIGH and unowned.package is None


def test_a_known_secret_in_a_package_file_is_never_downgraded(tmp_path: Path) -> None:
    secret = _token(24)
    shipped = f"password = {secret}\n".encode()
    layer = layer_tar(
        [
            ("etc/acme.conf", shipped),
            ("var/lib/dpkg/status", b"Package: acme\nStatus: install ok installed\nVersion: 1.0\n"),
            ("var/lib/dpkg/info/acme.md5sums", f"{_md5(shipped)}  etc/acme.conf\n".encode()),
        ]
    )
    (finding,) = _scan(tmp_path, [layer], known=(KnownValue("db", "whole", secret.encode()),))
    assert (finding.rule_id, finding.severity, finding.downgraded_from) == ("known-secret", Severity.CRITICAL, None)
    assert finding.package is not None and finding.package.state == "unmodified"


def test_pip_record_npm_package_and_maven_artifact(tmp_path: Path) -> None:
    module = f'EXAMPLE_HEADER = "Authorization: Bearer {_token(32)}"\n'.encode()
    digest = base64.urlsafe_b64encode(hashlib.sha256(module).digest()).rstrip(b"=").decode()
    site = "opt/venv/lib/python3.11/site-packages"
    bundle = f'const h = "Authorization: Bearer {_token(32)}";\n'.encode()
    jar = zip_of(
        {
            "META-INF/maven/org.acme/acme-client/pom.properties": b"groupId=org.acme\nartifactId=acme-client\n"
            b"version=4.2.0\n",
            "org/acme/defaults.properties": f"auth.header=Authorization: Bearer {_token(32)}\n".encode(),
        }
    )
    layer = layer_tar(
        [
            (f"{site}/acme/client.py", module),
            (f"{site}/acme/__pycache__/client.cpython-311.pyc", b"\xa7\r\r\n" + bytes(12) + module),
            (
                f"{site}/acme_client-1.4.0.dist-info/RECORD",
                f"acme/client.py,sha256={digest},{len(module)}\nacme/__pycache__/client.cpython-311.pyc,,\n".encode(),
            ),
            ("app/node_modules/acme-http/package.json", b'{"name": "acme-http", "version": "3.0.1"}'),
            ("app/node_modules/acme-http/lib/index.js", bundle),
            ("app/lib/acme-client.jar", jar),
        ]
    )
    found = _by_path(_scan(tmp_path, [layer]))

    py = found[f"{site}/acme/client.py"]
    assert py.package is not None and py.package.describe() == "Python package acme-client 1.4.0, unmodified"
    assert py.severity is Severity.LOW
    assert py.places == (f"{site}/acme/__pycache__/client.cpython-311.pyc",)  # one finding, both places

    js = found["app/node_modules/acme-http/lib/index.js"]  # npm records no checksum: capped at medium
    assert (
        js.package is not None
        and js.package.describe() == "npm package acme-http 3.0.1, not verified: no checksum to compare with"
    )
    assert js.severity is Severity.MEDIUM and js.downgraded_from is Severity.HIGH

    member = found["app/lib/acme-client.jar!/org/acme/defaults.properties"]
    assert member.package is not None and (member.package.manager, member.package.name) == (
        "maven",
        "org.acme:acme-client",
    )
    assert member.severity is Severity.MEDIUM


def test_every_format_shows_the_package(tmp_path: Path) -> None:
    shipped = f"Authorization: Bearer {_token(32)}\n".encode()
    layer = layer_tar(
        [
            ("usr/share/acme/headers.txt", shipped),
            ("var/lib/dpkg/status", b"Package: acme\nStatus: install ok installed\nVersion: 1.0\n"),
            ("var/lib/dpkg/info/acme.md5sums", f"{_md5(shipped)}  usr/share/acme/headers.txt\n".encode()),
        ]
    )
    archive = tmp_path / "image.tar"
    archive.write_bytes(docker_archive([layer]))
    report = scan_image(open_source(str(archive)))
    for fmt in OutputFormat:
        text = renderer_for(fmt).render(report)
        assert "Debian package acme 1.0, unmodified" in text, fmt
        assert shipped.split()[-1].decode() not in text, fmt  # never the value


def test_apk_database(tmp_path: Path) -> None:
    shipped = f"Authorization: Bearer {_token(32)}\n".encode()
    sha1 = base64.b64encode(hashlib.sha1(shipped).digest()).decode()
    layer = layer_tar(
        [
            ("usr/share/acme/headers.txt", shipped),
            ("lib/apk/db/installed", f"P:acme\nV:1.2-r0\nF:usr/share/acme\nR:headers.txt\nZ:Q1{sha1}\n\n".encode()),
        ]
    )
    (finding,) = _scan(tmp_path, [layer])
    assert finding.package is not None and finding.package.describe() == "Alpine package acme 1.2-r0, unmodified"
    assert finding.severity is Severity.LOW


def _libacme(content: bytes, recorded: bytes) -> bytes:
    """A layer: a library of dpkg's package libacme3, and the package's md5sum of ``recorded``."""
    return layer_tar(
        [
            ("usr/lib/libacme.so.3", content),
            ("var/lib/dpkg/status", b"Package: libacme3\nStatus: install ok installed\nVersion: 3.1\n"),
            ("var/lib/dpkg/info/libacme3:amd64.md5sums", f"{_md5(recorded)}  usr/lib/libacme.so.3\n".encode()),
        ]
    )


def test_a_package_file_over_a_window_is_still_verified(tmp_path: Path) -> None:
    """A 2 MB library of a package (scanned in windows) is held whole and hashed when it has
    findings: shipped unmodified, its findings are lowered like a small file's."""
    lib = os.urandom(2 << 20) + f"\nAuthorization: Bearer {_token(32)}\n".encode() + os.urandom(4096)
    found = [f for f in _scan(tmp_path, [_libacme(lib, lib)]) if f.rule_id == "bearer-token-header"]
    assert len(found) == 1 and found[0].package is not None and found[0].package.state == "unmodified"
    assert found[0].severity is Severity.LOW
    changed = lib[:-1] + b"!"  # the same path, other bytes: modified, never lowered
    found = [f for f in _scan(tmp_path, [_libacme(changed, lib)]) if f.rule_id == "bearer-token-header"]
    assert len(found) == 1 and found[0].package is not None and found[0].package.state == "modified"
    assert found[0].severity is Severity.HIGH


def test_a_package_file_too_large_to_hash_is_capped_not_lowered(tmp_path: Path) -> None:
    """Files are hashed when held whole (up to 8 MiB); a larger one with a recorded checksum is
    'unhashed': the package is a hint, not a proof, so its findings stop at medium."""
    big = os.urandom(8 << 20) + f"\nAuthorization: Bearer {_token(32)}\n".encode()
    found = [f for f in _scan(tmp_path, [_libacme(big, big)]) if f.rule_id == "bearer-token-header"]
    assert len(found) == 1 and found[0].package is not None
    assert found[0].package.state == "unhashed"
    assert found[0].package.describe().endswith("larger than leakscan hashes (8 MiB)")
    assert found[0].severity is Severity.MEDIUM and found[0].downgraded_from is Severity.HIGH


def test_pip_records_are_kept_compressed_and_searched_by_first_component() -> None:
    """A lookup opens only the RECORDs with a line for the path's first component in their site:
    the same answers as reading every RECORD in order (the first that names the path wins)."""
    from scanner.models import PackageRecords, pack_record

    site = "usr/lib/python3/site-packages/"
    texts = [
        (site, 0, "a/__init__.py,sha256=AAA,1\na-1.dist-info/RECORD,,\n"),
        (
            site,
            1,
            "b/x.py,sha256=BBB,2\nodd,name.py,sha256=CCC,3\na/__init__.py,sha256=LATER,1\n../../../bin/tool,sha256=DDD,4\n",
        ),
        ("", 2, "a/__init__.py,sha256=TOP,1\n"),
    ]
    packages = (("pip", "a", "1"), ("pip", "b", "2"), ("pip", "c", "3"))
    records = PackageRecords(packages, pip=[(s, k, pack_record(t)) for s, k, t in texts])
    assert all(
        len(packed) < 4 / 3 * (len(t) + 20) for (_, _, t), (_, _, packed) in zip(texts, records.pip, strict=True)
    )
    assert records.file(site + "a/__init__.py") == (0, "sha256=AAA")
    assert records.file(site + "b/x.py") == (1, "sha256=BBB")
    assert records.file(site + "odd,name.py") == (1, "sha256=CCC")
    assert records.file("a/__init__.py") == (2, "sha256=TOP")
    assert records.file("usr/bin/tool") == (1, "sha256=DDD")  # outside its site directory
    assert records.file(site + "b/y.py") is None and records.file(site + "c/x.py") is None
    again = PackageRecords.from_json(records.to_json())
    assert again == records and again.file(site + "odd,name.py") == (1, "sha256=CCC")
    assert again.file("usr/bin/tool") == (1, "sha256=DDD") and again.file(site + "b/y.py") is None


def test_a_damaged_pip_record_names_no_file_and_a_cached_lookup_reads_no_record(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A rescan looks a path up by the index kept with the records, without decompressing any
    RECORD that cannot name it; a damaged RECORD names nothing (its files' findings keep their
    severity) rather than failing the scan."""
    import scanner.models as models
    from scanner.models import PackageRecords, pack_record, record_index

    site = "usr/lib/python3/site-packages/"
    texts = ["a/__init__.py,sha256=AAA,1\n", "b/x.py,sha256=BBB,2\n"]
    packages = (("pip", "a", "1"), ("pip", "b", "2"))
    records = PackageRecords.from_json(
        PackageRecords(packages, pip=[(site, k, pack_record(t)) for k, t in enumerate(texts)]).to_json()
    )
    opened = []
    unpack = models.unpack_record
    monkeypatch.setattr(models, "unpack_record", lambda packed: opened.append(packed) or unpack(packed))
    assert records.file("etc/passwd") is None and records.file(site + "c/z.py") is None
    assert opened == []  # no RECORD names c/ or anything outside its site
    assert records.file(site + "b/x.py") == (1, "sha256=BBB") and len(opened) == 1
    damaged = PackageRecords(
        packages,
        pip=[(site, 0, "bm90IHpsaWI="), (site, 1, pack_record(texts[1]))],  # base64 of b"not zlib"
        pip_index=[record_index(t) for t in texts],
    )
    assert damaged.file(site + "a/__init__.py") is None and damaged.file(site + "b/x.py") == (1, "sha256=BBB")
    for packed in ("not base64!", pack_record(texts[0])[:-2]):  # a cached RECORD is decoded only when read
        kept = PackageRecords.from_json(
            {**records.to_json(), "pip": [[site, 0, packed], [site, 1, pack_record(texts[1])]]}
        )
        assert kept.file(site + "a/__init__.py") is None and kept.file(site + "b/x.py") == (1, "sha256=BBB")


def test_a_rescan_takes_the_packages_from_the_cache(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """What the records of the same layers say is cached under their digests: a rescan looks no
    file up in them, and its findings carry the same packages; a damaged cached answer is looked
    up again, and other layers (or a layer read in part) are never answered from it."""
    from scanner import engine
    from scanner.cache import DirBackend, LayerCache
    from scanner.layers import provenance

    shipped = f'AUTH = "Authorization: Bearer {_token(32)}"\n'.encode()
    site = "usr/lib/python3/dist-packages"
    digest = base64.urlsafe_b64encode(hashlib.sha256(shipped).digest()).rstrip(b"=").decode()
    record = f"acme/auth.py,sha256={digest},{len(shipped)}\n".encode()
    layer = layer_tar([(f"{site}/acme/auth.py", shipped), (f"{site}/acme-1.0.dist-info/RECORD", record)])
    archive, cache = tmp_path / "image.tar", tmp_path / "cache"
    archive.write_bytes(docker_archive([layer]))
    options = ScanOptions(cache_dir=cache, fingerprint_key=b"a test key of 16+ bytes")
    first = scan_image(open_source(str(archive)), options).findings
    assert [f.package.describe() if f.package else None for f in first] == ["Python package acme 1.0, unmodified"]
    kept = list(cache.rglob("owners-*.json"))
    assert len(kept) == 1
    lookups = []
    package = provenance.Owners.package
    monkeypatch.setattr(provenance.Owners, "package", lambda *a: lookups.append(a) or package(*a))
    assert scan_image(open_source(str(archive)), options).findings == first and lookups == []
    kept[0].write_text("[[]]")  # one layer, but no entry for its file with findings: looked up again
    assert scan_image(open_source(str(archive)), options).findings == first and len(lookups) == 1
    layer_cache = LayerCache(DirBackend(cache), engine.ruleset_fingerprint(options))
    scan = layer_cache.get(sha(layer))
    assert scan is not None and provenance.packages([scan], layer_cache) == [[first[0].package]]
    monkeypatch.setattr(provenance, "_kept", lambda *a: pytest.fail("a layer read in part is answered from the cache"))
    cut = dataclasses.replace(scan, error="cut short")
    assert provenance.packages([cut], layer_cache) == [[first[0].package]]
    assert provenance.packages([None], None) == [[]]
