"""The layer cache: hits are verified, a change of rules or secrets is a miss, no value on disk."""

from __future__ import annotations

import io
import re
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner import ScanOptions, ScanReport, scan_image
from scanner.detectors import BUILTIN_RULES, RuleSet, SecretSpec, load_known_values
from scanner.sources import open_source
from tests.conftest import SAMPLE, SAMPLE_DEPLOY_TOKEN, SAMPLE_SECRET
from tests.support.tars import docker_archive, layer_tar, sha


def _opts(cache: Path, **kw: object) -> ScanOptions:
    specs = [SecretSpec.parse(f"id=demo,src={SAMPLE / 'demo-secret.txt'}"), SecretSpec.parse("id=DEPLOY_TOKEN")]
    known = tuple(load_known_values(specs, environ={"DEPLOY_TOKEN": SAMPLE_DEPLOY_TOKEN}))
    return ScanOptions(known=known, cache_dir=cache, fingerprint_key=b"a test key of 16+ bytes", **kw)  # type: ignore[arg-type]


def _key(report):  # type: ignore[no-untyped-def]
    return sorted(
        ((f.layer_index or -1), f.path or "", f.field or "", f.rule_id, f.secret_fingerprint) for f in report.findings
    )


def test_rescan_hits_every_layer_and_gives_the_same_report(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    image = str(sample_archives["docker25"])
    first = scan_image(open_source(image), _opts(tmp_path))
    second = scan_image(open_source(image), _opts(tmp_path))
    assert first.cached_layers == 0
    assert second.cached_layers == len(second.images[0].layers) == 4
    assert _key(first) == _key(second) and second.complete
    # the same layers in another layout share the cache (podman names layers by diff_id)
    podman = scan_image(open_source(str(sample_archives["podman-docker-archive"])), _opts(tmp_path))
    assert podman.cached_layers == 4 and _key(podman) == _key(first)


def test_a_change_of_rules_or_secrets_is_a_miss(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    image = str(sample_archives["oci-zstd"])
    scan_image(open_source(image), _opts(tmp_path))
    fewer = RuleSet(tuple(r for r in BUILTIN_RULES if r.id != "aws-access-key-id"))
    assert scan_image(open_source(image), _opts(tmp_path, rules=fewer)).cached_layers == 0
    no_secrets = ScanOptions(cache_dir=tmp_path)
    assert scan_image(open_source(image), no_secrets).cached_layers == 0
    assert scan_image(open_source(image), _opts(tmp_path, archive_depth=1)).cached_layers == 0
    assert scan_image(open_source(image), _opts(tmp_path)).cached_layers == 4


def test_no_secret_value_reaches_the_cache(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    scan_image(open_source(str(sample_archives["oci-zstd"])), _opts(tmp_path))
    files = list(tmp_path.rglob("*.json"))
    assert files
    for f in files:
        text = f.read_text()
        assert SAMPLE_SECRET not in text and SAMPLE_DEPLOY_TOKEN not in text


def test_a_member_that_lies_about_its_digest_is_never_a_hit(tmp_path: Path) -> None:
    clean = layer_tar([("etc/motd", b"hello\n")])
    leaky = layer_tar([("etc/motd", b"ghp_" + b"Zq8w" * 9 + b"\n")])
    cache = tmp_path / "cache"
    archive = tmp_path / "clean.tar"
    archive.write_bytes(docker_archive([clean]))
    assert scan_image(open_source(str(archive)), ScanOptions(cache_dir=cache)).complete
    # same name (the clean layer's digest), other content
    data = io.BytesIO(docker_archive([clean]))
    out = io.BytesIO()
    with tarfile.open(fileobj=data) as src, tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            body = src.extractfile(m).read()  # type: ignore[union-attr]
            if m.name == f"blobs/sha256/{sha(clean)[7:]}":
                body = leaky
            m.size = len(body)
            dst.addfile(m, io.BytesIO(body))
    forged = tmp_path / "forged.tar"
    forged.write_bytes(out.getvalue())
    report = scan_image(open_source(str(forged)), ScanOptions(cache_dir=cache))
    assert not report.complete
    assert any("does not match the digest" in p for p in report.problems)


def test_a_change_to_leakscan_s_code_is_a_cache_miss(monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner import cache

    before = cache.namespace({"rules": []})
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "another build of the detectors")
    assert cache.namespace({"rules": []}) != before


def test_leakscan_s_data_files_are_part_of_its_code(tmp_path: Path) -> None:
    """The vendor names of the vendor-context detector, and the rule files, shape results as code
    does: they are hashed into the code fingerprint (a rule file's fields also go into the
    namespace, but vendors.txt has no other way in)."""
    from scanner import cache

    data = tmp_path / "detectors" / "rules" / "data"
    data.mkdir(parents=True)
    (tmp_path / "engine.py").write_text("x = 1\n")
    (data / "vendors.txt").write_text("mixpanel = Mixpanel\n")
    (data / "saas.toml").write_text('family = "saas"\n')
    before = cache.tree_digest([(tmp_path, cache.CODE_FILES)])
    for changed in (data / "vendors.txt", data / "saas.toml", tmp_path / "engine.py"):
        original = changed.read_text()
        changed.write_text(original + "\n")
        assert cache.tree_digest([(tmp_path, cache.CODE_FILES)]) != before, changed.name
        changed.write_text(original)
    assert cache.tree_digest([(tmp_path, cache.CODE_FILES)]) == before
    package = Path(cache.__file__).resolve().parent
    assert (package / "detectors" / "rules" / "data" / "vendors.txt").exists()  # what this guards


def test_a_legacy_docker_save_on_disk_is_a_cache_hit(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    """docker save before Engine 25 names layers <v1 id>/layer.tar, a name without a digest: a
    layer of a file on disk is hashed first, found in the cache, and walked only after a miss."""
    image = str(sample_archives["docker-legacy"])
    first = scan_image(open_source(image), _opts(tmp_path))
    second = scan_image(open_source(image), _opts(tmp_path))
    assert first.cached_layers == 0 and second.cached_layers == 4
    assert _key(first) == _key(second) and second.complete
    # the same layers under their digests (Docker 25+) hit as well, and the other way round
    assert scan_image(open_source(str(sample_archives["docker25"])), _opts(tmp_path)).cached_layers == 4


class _Counted:
    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from scanner.detectors import content
        from scanner.layers import streams
        from scanner.layers.walk import LayerWalker

        self.walks = self.hashes = self.builds = 0
        real_walk, real_drain, real_build = LayerWalker.walk, streams.HashingReader.drain, content.build_detectors

        def walk(w, *a, **kw):  # type: ignore[no-untyped-def]
            self.walks += 1
            return real_walk(w, *a, **kw)

        def drain(r):  # type: ignore[no-untyped-def]
            self.hashes += 1
            return real_drain(r)

        def build(*a, **kw):  # type: ignore[no-untyped-def]
            self.builds += 1
            return real_build(*a, **kw)

        monkeypatch.setattr(LayerWalker, "walk", walk)
        monkeypatch.setattr(streams.HashingReader, "drain", drain)
        monkeypatch.setattr(content, "build_detectors", build)  # the engine imports it when it makes one


@pytest.mark.parametrize("name", ["docker-legacy", "docker25", "oci-zstd", "oci-layout"])
def test_an_unchanged_file_is_not_read_again(
    name: str, sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a scan proved about a file's layers holds while the file is unchanged (its stat, ctime
    included): a rescan neither hashes nor walks them, and makes no detector."""
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))  # the copy below was just written
    image = tmp_path / "image.tar"
    if name == "oci-layout":  # a directory: every file's stat
        with tarfile.open(sample_archives["oci-zstd"]) as tar:
            tar.extractall(image, filter="data")
    else:
        shutil.copyfile(sample_archives[name], image)
    first = scan_image(open_source(str(image)), _opts(tmp_path / "cache"))
    counted = _Counted(monkeypatch)
    second = scan_image(open_source(str(image)), _opts(tmp_path / "cache"))
    assert (counted.walks, counted.hashes, counted.builds) == (0, 0, 0)
    assert second.cached_layers == 4 and _key(first) == _key(second) and second.complete
    assert [lr.created_by for lr in first.images[0].layers] == [lr.created_by for lr in second.images[0].layers]


def test_a_file_changed_after_its_scan_is_read_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Proofs are keyed by the file's stat: a write of the same size changes its ctime, so the
    forged layer is hashed (and refused), not trusted."""
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))
    clean = layer_tar([("etc/motd", b"hello\n")])
    leaky = layer_tar([("etc/motd", b"ghp_" + b"Zq8w" * 9 + b"\n")])
    assert len(clean) == len(leaky)
    image = tmp_path / "image.tar"
    image.write_bytes(docker_archive([clean]))
    cache = tmp_path / "cache"
    assert scan_image(open_source(str(image)), ScanOptions(cache_dir=cache)).complete
    data = image.read_bytes()
    with image.open("r+b") as fh:  # the same file, the same size, other bytes
        fh.seek(data.index(clean))
        fh.write(leaky)
    report = scan_image(open_source(str(image)), ScanOptions(cache_dir=cache))
    assert not report.complete
    assert any("does not match the digest" in p for p in report.problems)


def test_a_layout_changed_after_its_scan_is_read_again(
    sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An OCI layout's identity is every file's stat: a blob rewritten in place is hashed again,
    and a forged one refused."""
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))
    layout = tmp_path / "layout"
    with tarfile.open(sample_archives["oci-zstd"]) as tar:
        tar.extractall(layout, filter="data")
    assert scan_image(open_source(str(layout)), _opts(tmp_path / "cache")).complete
    blob = max((layout / "blobs" / "sha256").iterdir(), key=lambda p: p.stat().st_size)  # a layer
    data = bytearray(blob.read_bytes())
    data[-1] ^= 1
    blob.write_bytes(bytes(data))
    report = scan_image(open_source(str(layout)), _opts(tmp_path / "cache"))
    assert not report.complete
    assert any("does not match" in p for p in report.problems)


def test_metadata_results_follow_the_rules(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    """The metadata's results are cached under the namespace: other rules are a miss."""
    image = str(sample_archives["docker25"])
    first = scan_image(open_source(image), _opts(tmp_path))
    assert any(f.field for f in first.findings)
    assert "dotenv-secret" in {f.rule_id for f in first.findings if f.field}
    fewer = RuleSet(tuple(r for r in BUILTIN_RULES if r.id != "dotenv-secret"))
    other = scan_image(open_source(image), _opts(tmp_path, rules=fewer))
    assert "dotenv-secret" not in {f.rule_id for f in other.findings if f.field}
    again = scan_image(open_source(image), _opts(tmp_path))
    assert _key(again) == _key(first)


def test_another_detect_secrets_is_a_cache_miss(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The detect-secrets plugins leakscan runs are part of the code fingerprint: an upgrade that
    changes a plugin changes the namespace, without a leakscan version bump."""
    import importlib.machinery
    import importlib.util

    from scanner import cache

    plugins = tmp_path / "detect_secrets" / "plugins"
    plugins.mkdir(parents=True)
    (tmp_path / "detect_secrets" / "__init__.py").write_text("")
    spec = importlib.machinery.ModuleSpec(
        "detect_secrets", None, origin=str(tmp_path / "detect_secrets" / "__init__.py")
    )
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: spec)
    fingerprints = []
    for denylist in ("{43}", "{44}"):
        (plugins / "square_oauth.py").write_text(f"DENYLIST = 'sq0csp-[0-9A-Za-z]{denylist}'\n")
        cache.code_fingerprint.cache_clear()
        fingerprints.append(cache.code_fingerprint())
    cache.code_fingerprint.cache_clear()
    assert fingerprints[0] != fingerprints[1]


def _sections(doc_path: Path) -> tuple[str, str, str]:
    """A layer's document: its results' line, its package records' JSON, its entries' JSON."""
    head, sep, rest = doc_path.read_text().partition("\n")
    records, sep2, entries = rest.partition("\n")
    assert sep and sep2 and entries.startswith('["')
    return head, records, entries


def _seen(report: ScanReport) -> list[tuple[object, ...]]:
    """The findings with where each is and whether a later layer hides it (the entries' work)."""
    return sorted(
        (
            f.layer_index or -1,
            f.path or "",
            f.field or "",
            f.rule_id,
            f.secret_fingerprint,
            str(f.status),
            str(f.hidden_by_layer),
        )
        for f in report.findings
    )


def _same_length_edit(text: str) -> str:
    return re.sub(r"\d", lambda d: str(9 - int(d[0])), text, count=1)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda h, r, e: (h, r, _same_length_edit(e)), id="same-length-edit"),
        pytest.param(lambda h, r, e: (h, r, e[: len(e) // 2]), id="entries-cut"),
        pytest.param(lambda h, r, e: (h, r, ""), id="entries-gone"),
        pytest.param(lambda h, r, e: (h[:-5], r, e), id="results-cut"),
        pytest.param(lambda h, r, e: (h.replace('"hard_links": [', '"hard_links": [[1], '), r, e), id="hard-links"),
        pytest.param(lambda h, r, e: (h, r, e[:2] + "é" + e[3:]), id="not-ascii"),
        pytest.param(lambda h, r, e: (h, r + "x", e), id="records-grown"),
    ],
)
def test_a_damaged_cache_document_is_a_miss_not_a_crash(
    sample_archives: dict[str, Path],
    tmp_path: Path,
    damage: Callable[[str, str, str], tuple[str, str, str]],
) -> None:
    """A layer's document is its results' line, then its package records and its entries, each
    after a newline.  The sections' lengths are checked when the document is loaded (a document
    cut or grown is a miss there); a section's CRC-32 when it is first read (CacheDamaged: the
    engine makes every loaded document with a damaged section a miss and scans again).  Either way
    the report is the first scan's, with the same places and statuses, and the damage is gone the
    next time."""
    image = str(sample_archives["docker25"])
    first = scan_image(open_source(image), _opts(tmp_path))
    layers = sum(len(i.layers) for i in first.images)
    assert any(f.status.value != "present" for f in first.findings)  # the upper layers' entries are read
    docs = [d for d in tmp_path.glob("*/sha256-*.json") if d.parent.name != "proofs"]
    assert docs
    for doc_path in docs:
        head, records, entries = damage(*_sections(doc_path))
        doc_path.write_text(head + "\n" + records + "\n" + entries)
    again = scan_image(open_source(image), _opts(tmp_path))
    assert _seen(again) == _seen(first) and again.complete and again.cached_layers == 0
    third = scan_image(open_source(image), _opts(tmp_path))
    assert _seen(third) == _seen(first) and third.cached_layers == layers


def test_a_hit_one_value_short_is_a_miss(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    """A hit in a layer's results is a list of Hit's fields: one cut short (its last value gone)
    makes that document a miss, as any damage does, rather than a hit with a default in place of
    the value it lost."""
    image = str(sample_archives["docker25"])
    first = scan_image(open_source(image), _opts(tmp_path))
    cut = 0
    for doc_path in [d for d in tmp_path.glob("*/sha256-*.json") if d.parent.name != "proofs"]:
        head, records, entries = _sections(doc_path)
        if ", null]]]" in head:  # a file's last hit, its downgrade reason null
            doc_path.write_text(head.replace(", null]]]", "]]]", 1) + "\n" + records + "\n" + entries)
            cut += 1
    assert cut
    again = scan_image(open_source(image), _opts(tmp_path))
    assert _seen(again) == _seen(first) and again.complete
    assert again.cached_layers == sum(len(i.layers) for i in first.images) - cut


def test_a_section_never_read_is_never_checked(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    """A layer's entries are read only to ask whether it hides a lower layer's finding: in the
    sample, layer 0 has none, so no one reads layer 1's entries, and a damage there costs a rescan
    nothing and changes nothing.  The same damage in the top layer (above findings) is found."""
    image = str(sample_archives["docker25"])
    first = scan_image(open_source(image), _opts(tmp_path))
    (only,) = first.images
    layers = len(only.layers)
    assert layers == 4 and not only.layers[0].findings and only.layers[1].findings and only.layers[2].findings

    def damage(layer: int) -> None:
        (doc_path,) = list(tmp_path.glob(f"*/{only.layers[layer].diff_id.replace(':', '-')}.json"))
        head, records, entries = _sections(doc_path)
        doc_path.write_text(head + "\n" + records + "\n" + _same_length_edit(entries))

    damage(1)
    again = scan_image(open_source(image), _opts(tmp_path))
    assert _seen(again) == _seen(first) and again.cached_layers == layers
    damage(3)
    again = scan_image(open_source(image), _opts(tmp_path))
    assert _seen(again) == _seen(first) and again.cached_layers == layers - 2  # layer 1's damage, found at last


def test_a_damaged_section_on_standard_input_is_an_error_once(
    sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard input cannot be read twice: a damaged section found when read ends that scan with
    CacheDamaged (exit 3, never a report without it); the documents are misses from then on."""
    import sys

    from scanner.errors import CacheDamaged, ExitCode

    data = sample_archives["docker25"].read_bytes()

    def stdin_scan() -> ScanReport:
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        return scan_image(open_source("-"), _opts(tmp_path))

    first = stdin_scan()
    for doc_path in [d for d in tmp_path.glob("*/sha256-*.json") if d.parent.name != "proofs"]:
        head, records, entries = _sections(doc_path)
        doc_path.write_text(head + "\n" + records + "\n" + _same_length_edit(entries))
    with pytest.raises(CacheDamaged) as damaged:
        stdin_scan()
    assert damaged.value.exit_code is ExitCode.SCAN_ERROR and "damaged" in damaged.value.message
    again = stdin_scan()  # every damaged document it had loaded is a miss now, not only the first found
    assert _seen(again) == _seen(first) and again.complete and again.cached_layers == 0
    assert stdin_scan().cached_layers == sum(len(i.layers) for i in first.images)


def test_package_records_are_checked_and_parsed_when_read() -> None:
    """A layer's package records are a section of its document: loaded as a Stored section, the same
    records as written once read; a same-length edit of that section is CacheDamaged at the read."""
    from scanner.cache import _decode, _encode
    from scanner.errors import CacheDamaged
    from scanner.models import LayerScan, PackageRecords, Stored, loaded, pack_record, record_index

    text = "pkg/__init__.py,sha256=abc,10\npkg/x.py,,\n"
    records = PackageRecords(
        (("pip", "pkg", "1.0"), ("dpkg", "bash", "5.2")),
        {"usr/bin/bash": (1, "md5:00")},
        {},
        [("usr/lib/python3/site-packages/", 0, pack_record(text))],
        [record_index(text)],
    )
    scan = LayerScan("sha256:" + "a" * 64, "sha256:" + "b" * 64, "none", 1, 1, (), (), 0, (), records=records)
    stored = "".join(_encode(scan))
    back = _decode(stored, "ns/k")
    assert isinstance(back.records, Stored) and loaded(back.records) == records and back == scan
    head, rest = stored.split("\n", 1)
    section, entries = rest.split("\n", 1)
    edited = section.replace("bash", "bosh")
    assert len(edited) == len(section) and edited != section
    damaged = _decode(head + "\n" + edited + "\n" + entries, "ns/k")
    with pytest.raises(CacheDamaged, match="ns/k"):
        loaded(damaged.records)
    assert (
        _decode("".join(_encode(LayerScan("sha256:" + "a" * 64, "d", "none", 1, 1, (), (), 0, ()))), "k").records
        is None
    )


def test_a_vouched_config_that_does_not_parse_leaves_its_layers_not_scanned() -> None:
    """attach_vouched reads the config the engine vouched for (its digest is the image id): one too
    deeply nested to parse, or without diff_ids, fills in nothing and its layers are reported as not
    scanned, never a crash."""
    import json

    from scanner.layers.collect import Archive, BlobRecord, attach_vouched
    from scanner.models import sha256_hex

    for config in (b"[" * 100_000 + b"]" * 100_000, b'{"rootfs": {}}'):
        archive = Archive()
        archive.records["c.json"] = BlobRecord("c.json", len(config), data=config)
        manifest = json.dumps([{"Config": "c.json", "Layers": ["l/layer.tar"]}]).encode()
        archive.records["manifest.json"] = BlobRecord("manifest.json", len(manifest), data=manifest)
        archive.records["l/layer.tar"] = BlobRecord("l/layer.tar", 1, deferred=True)
        assert attach_vouched(archive, f"sha256:{sha256_hex(config)}", {}) == 0
        layer = archive.records["l/layer.tar"]
        assert layer.deferred and layer.note is not None and "not the image the engine vouched for" in layer.note


@pytest.mark.parametrize(
    ("path", "claim"),
    [
        ("blobs/sha256/" + "ab" * 32, "sha256:" + "ab" * 32),
        ("x/blobs/sha256/" + "ab" * 32, "sha256:" + "ab" * 32),
        ("ab" * 32 + ".tar", "sha256:" + "ab" * 32),
        ("blobs/sha256/" + "ab" * 32 + "\n", None),  # not the name of the blob whose digest it spells
        ("ab" * 32 + ".tar\n", None),
        ("blobs/sha256/" + "ab" * 32 + ".x", None),
        ("xblobs/sha256/" + "ab" * 32, None),
    ],
)
def test_the_digest_a_path_claims(path: str, claim: str | None) -> None:
    from scanner.cache import claimed_digest

    assert claimed_digest(path) == claim


def test_a_cached_document_nested_too_deep_is_a_miss_not_a_crash(tmp_path: Path) -> None:
    # json.loads raises RecursionError, not ValueError, on deep nesting: each reader of the cache
    # takes it as the damage it is
    from scanner.cache import DirBackend, LayerCache, proof_key
    from scanner.entries import LayerEntries

    deep = "[" * 200_000 + "]" * 200_000
    backend = DirBackend(tmp_path)
    cache = LayerCache(backend, "ns")
    backend.write("ns/sha256:" + "a" * 64, deep)
    backend.write("ns/meta:x", deep)
    backend.write(proof_key("file"), deep)
    assert cache.get("sha256:" + "a" * 64) is None and cache.misses == 1
    assert cache.get_doc("meta:x") is None
    assert cache.proofs("file") == {}
    with pytest.raises(ValueError, match="damaged"):
        LayerEntries.from_json(deep)


def test_the_built_in_rules_are_named_by_the_code_fingerprint(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the built-in rules (ScanOptions.rules None) the namespace names them without loading
    them: their files and the loader that reads them are leakscan's code, hashed into the code
    fingerprint, so that a changed rule file is a miss.  Every rule file must be in that hash."""
    from scanner import cache, engine
    from scanner.detectors.rules import loader

    package = Path(cache.__file__).resolve().parent
    rule_files = set(loader.DATA.resolve().glob("*.toml"))
    hashed = {p.resolve() for pattern in cache.CODE_FILES for p in package.rglob(pattern)}
    assert len(rule_files) > 5 and rule_files <= hashed and Path(loader.__file__).resolve() in hashed
    builtin = engine.ruleset_fingerprint(ScanOptions())
    assert builtin != engine.ruleset_fingerprint(ScanOptions(rules=RuleSet(BUILTIN_RULES[1:])))
    assert builtin != engine.ruleset_fingerprint(ScanOptions(rules=RuleSet(BUILTIN_RULES, detect_secrets=False)))
    monkeypatch.setattr(cache, "code_fingerprint", lambda: "a rule file changed")
    assert engine.ruleset_fingerprint(ScanOptions()) != builtin


_RESCAN = """
import sys
from scanner.cli import main
from scanner.sources import interface
interface.RECENT_NS = 0  # the archive, just written, is trusted as unchanged: no layer is read again
try:
    main(["scan", sys.argv[1], "--cache-dir", sys.argv[2], "--format", "json", "-o", sys.argv[3]])
except SystemExit as exc:
    print(exc.code)
print(" ".join(sorted(m for m in sys.modules if m.startswith(tuple(sys.argv[4:])))))
"""


def test_a_rescan_from_the_cache_loads_no_detector(sample_archives: dict[str, Path], tmp_path: Path) -> None:
    """A rescan whose layers and metadata all come from the cache neither loads the rules nor
    imports a detector or the layer walk (start-up time, docs/performance.md), and reports what
    the first scan did."""
    import os
    import subprocess
    import sys

    image, cache_dir = str(sample_archives["docker25"]), tmp_path / "cache"
    heavy = ("scanner.detectors.content", "scanner.detectors.patterns", "scanner.detectors.rules")
    heavy += ("hyperscan", "detect_secrets", "tomllib", "multiprocessing")
    heavy += ("scanner.layers.walk", "scanner.layers.fanout", "scanner.layers.parallel", "scanner.layers.nested")
    heavy += ("zstandard", "isal", "scanner.service")  # the decoders, the service's commands
    heavy += ("scanner.detectors.interface",)  # the known values' detector (scanner.detectors.known) imports it
    runs = []
    for n in (1, 2):
        proc = subprocess.run(
            [sys.executable, "-c", _RESCAN, image, str(cache_dir), str(tmp_path / f"{n}.json"), *heavy],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
            timeout=300,
        )
        runs.append(proc.stdout.split("\n"))
    assert runs[0][0] == runs[1][0] == "1"  # findings
    assert "scanner.detectors.content" in runs[0][1].split()  # what this test looks for is there to see
    assert runs[1][1] == ""
    first, again = ((tmp_path / f"{n}.json").read_text().splitlines() for n in (1, 2))
    assert any('"cached_layers": 4' in line for line in again)
    skip = ('"duration_s"', '"cached_layers"')
    assert [x for x in first if not x.strip().startswith(skip)] == [x for x in again if not x.strip().startswith(skip)]


def test_a_kept_code_digest_stands_until_a_file_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The code fingerprint is kept under the stat of every file hashed (ctime included, which
    every write changes): a run whose files are all as they were takes it without reading them; a
    changed, added or just written file is read again."""
    from scanner import cache

    tree, memo = tmp_path / "tree", tmp_path / "memo"
    (tree / "rules").mkdir(parents=True)
    (tree / "engine.py").write_text("x = 1\n")
    (tree / "rules" / "a.toml").write_text('id = "a"\n')
    roots = [(tree, cache.CODE_FILES)]
    plain = cache.tree_digest(roots)
    assert cache.tree_digest(roots, memo=memo) == plain and not memo.exists()  # just written: not kept
    monkeypatch.setattr(cache, "RECENT_NS", 0)
    assert cache.tree_digest(roots, memo=memo) == plain
    (kept,) = memo.iterdir()
    kept.write_text("f" * 64)  # what a run takes, without reading the files
    assert cache.tree_digest(roots, memo=memo) == "f" * 64
    (tree / "rules" / "a.toml").write_text('id = "ab"\n')
    changed = cache.tree_digest(roots)
    assert changed != plain and cache.tree_digest(roots, memo=memo) == changed
    (tree / "rules" / "b.toml").write_text('id = "b"\n')
    assert cache.tree_digest(roots, memo=memo) == cache.tree_digest(roots) not in (plain, changed)


def _report_json(report) -> dict:  # type: ignore[no-untyped-def, type-arg]
    import json

    from scanner.report import OutputFormat, renderer_for

    doc = json.loads(renderer_for(OutputFormat.JSON).render(report))
    doc["summary"].pop("duration_s")
    doc["summary"].pop("cached_layers")  # the first scan's 0, a rescan's every layer
    return doc  # type: ignore[no-any-return]


def _copy_image(name: str, sample_archives: dict[str, Path], image: Path) -> None:
    if name == "oci-layout":  # a directory: every file's stat
        with tarfile.open(sample_archives["oci-zstd"]) as tar:
            tar.extractall(image, filter="data")
    else:
        shutil.copyfile(sample_archives[name], image)


def _no_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    from scanner.sources import OciLayoutSource, TarballSource

    def refused(self: object) -> None:
        raise AssertionError("the image file was opened")

    monkeypatch.setattr(TarballSource, "members", refused)
    monkeypatch.setattr(OciLayoutSource, "members", refused)


@pytest.mark.parametrize("name", ["docker-legacy", "docker25", "oci-zstd", "oci-layout"])
def test_an_unchanged_file_is_not_even_opened_and_the_report_is_the_same(
    name: str, sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rescan of a file read before and unchanged since (its identity, as for the proofs) is
    answered from what the first read kept (replay_shell) and the layer cache: the same report."""
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))
    image = tmp_path / "image.tar"
    _copy_image(name, sample_archives, image)
    first = scan_image(open_source(str(image)), _opts(tmp_path / "cache"))
    with monkeypatch.context() as m:
        _no_reading(m)
        again = scan_image(open_source(str(image)), _opts(tmp_path / "cache"))
    assert again.cached_layers == 4 and again.complete
    assert _report_json(again) == _report_json(first)


def _kept_shell(
    sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, Path, ScanReport]:
    """A copy of the docker25 sample scanned once with a cache, old enough that its shell is kept."""
    from scanner.sources import interface

    monkeypatch.setattr(interface, "RECENT_NS", -(10**12))
    image = tmp_path / "image.tar"
    shutil.copyfile(sample_archives["docker25"], image)
    cache = tmp_path / "cache"
    return image, cache, scan_image(open_source(str(image)), _opts(cache))


def test_a_kept_file_shell_whose_layers_left_the_cache_is_read_again(
    sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, cache, first = _kept_shell(sample_archives, tmp_path, monkeypatch)
    (space,) = [p for p in cache.iterdir() if re.fullmatch(r"[0-9a-f]{32}", p.name)]
    assert len(list(space.glob("shell-sha256-*.json"))) == 1
    gone = sorted(space.glob("sha256-*.json"))[0]
    gone.unlink()  # pruned, say: that layer is walked again, the others are cached
    again = scan_image(open_source(str(image)), _opts(cache))
    assert again.complete and 0 < again.cached_layers < 4
    assert _report_json(again)["images"] == _report_json(first)["images"]


@pytest.mark.parametrize(
    "shell",
    ["[]", "{}", '{"members": [["manifest.json", "doc", "not base64!"]]}', '{"members": [["x", "what"]]}', "nul"],
)
def test_a_damaged_file_shell_is_ignored_and_the_file_read(
    shell: str, sample_archives: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image, cache, first = _kept_shell(sample_archives, tmp_path, monkeypatch)
    (kept,) = cache.glob("*/shell-sha256-*.json")
    kept.write_text(shell)
    again = scan_image(open_source(str(image)), _opts(cache))
    assert again.complete and again.cached_layers == 4
    assert _report_json(again) == _report_json(first)


def test_no_file_shell_for_an_archive_read_with_errors_or_an_unproven_layer() -> None:
    from scanner.layers.collect import Archive, BlobRecord, file_shell
    from scanner.models import LayerScan

    digest = "sha256:" + "a" * 64
    scan = LayerScan(digest, digest, "none", 3, 3, entries=(), files=(), files_scanned=0, skips=())
    good = Archive(records={"l.tar": BlobRecord("l.tar", 3, layer=scan), "m.json": BlobRecord("m.json", 2, data=b"[]")})
    good.proven["l.tar"] = (scan.diff_id, 3)
    assert file_shell(good) == {
        "members": [["l.tar", "layer", scan.diff_id, 3], ["m.json", "doc", "W10="]],
    }
    unproven = Archive(records=dict(good.records))  # a layer whose bytes lied, or were cut short
    assert file_shell(unproven) is None
    broken = Archive(records=dict(good.records), proven=dict(good.proven), errors=["cut short"])
    assert file_shell(broken) is None
    left = Archive(records={**good.records, "x.tar": BlobRecord("x.tar", 9, deferred=True)}, proven=dict(good.proven))
    assert file_shell(left) is None
