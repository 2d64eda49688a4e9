"""The core: source -> archive walk -> resolution -> visibility -> report data.

No printing, no click, no globals; the CLI and the service call :func:`scan_image` alike.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import prune
from .cache import (
    CacheBackend,
    DirBackend,
    LayerCache,
    Proofs,
    default_dir,
    hit_from_row,
    hit_row,
    namespace,
    shell_key,
)
from .detectors.known_values import KnownValue, known_fingerprint
from .entries import hard_links
from .errors import CacheDamaged
from .findings import policy, suppress
from .findings.dockerfile import Dockerfile, ImageMap, from_provenance, history_keyword, masked_text
from .findings.fingerprint import load_key
from .findings.suppress import Suppressions
from .layers.archive import MetaDoc, ResolvedArchive, ResolvedImage, iter_json_strings, resolve
from .layers.collect import Archive, archive_from_shell, attach_vouched, collect, export_shell, file_shell, replay_shell
from .layers.limits import NestedLimits, WalkLimits
from .layers.provenance import packages
from .layers.visibility import Visibility
from .models import (
    Finding,
    Hit,
    ImageReport,
    Instruction,
    LayerReport,
    LayerScan,
    Readable,
    ScanReport,
    Skip,
    Status,
    Value,
    sha256_hex,
    value,
)
from .sources import ImageSource

if TYPE_CHECKING:  # made when a layer or the metadata must be scanned: a rescan from the cache imports none of them
    from .detectors.content import ContentScanner
    from .detectors.rules import RuleSet
    from .layers.fanout import Fanout
    from .layers.walk import LayerWalker


@value
class ScanOptions(Value):
    """How to scan: the known secrets, the rules, the limits, the cache and the key of the fingerprints."""

    known: tuple[KnownValue, ...] = ()
    rules: RuleSet | None = None  # None: the built-in rules, loaded when a detector first runs
    entropy: bool = True
    max_file_size: int | None = None
    archive_depth: int = NestedLimits().max_depth
    suppressions: Suppressions = field(default_factory=Suppressions)
    cache_dir: Path | None = None  # None: no layer cache (unless cache_backend is given)
    cache_backend: CacheBackend | None = field(default=None, compare=False)  # e.g. shared by service workers
    cache_max_bytes: int = field(default=prune.MAX_BYTES, compare=False)  # scanner.prune's limit; 0: none
    timeout: float | None = 3600.0  # seconds for the whole image; a layer cut short makes the scan incomplete
    max_layer_bytes: int = WalkLimits().max_layer_bytes
    max_ratio: int = WalkLimits().max_ratio
    jobs: int = 1  # >1: the detectors run in this many forked processes (scanner.layers.parallel)
    progress: Callable[[int], None] | None = field(default=None, compare=False)
    dockerfile: Dockerfile | None = None  # None: the one a BuildKit provenance attestation carries, if any
    fingerprint_key: bytes | None = field(default=None, repr=False)  # None: fingerprint.load_key(cache_dir)


class _Lazy:
    """The detectors, the worker pool and the walker, made when first needed: a rescan whose layers
    and metadata all come from the cache needs none of them (nor detect-secrets' import, nor a fork)."""

    def __init__(self, options: ScanOptions, limits: WalkLimits, stack: contextlib.ExitStack) -> None:
        self.options, self.limits, self.stack = options, limits, stack

    @functools.cached_property
    def scanner(self) -> ContentScanner:
        from .detectors.content import ContentScanner, build_detectors

        o, rules = self.options, _rules(self.options)
        detectors = build_detectors(
            list(o.known), entropy=o.entropy, detect_secrets=rules.detect_secrets, rules=rules.rules
        )
        return ContentScanner(detectors)

    @functools.cached_property
    def walker(self) -> LayerWalker:
        from .layers.nested import FileScanner
        from .layers.parallel import FilePool
        from .layers.walk import LayerWalker

        pool = None
        if self.options.jobs > 1:
            try:
                files = FileScanner(self.scanner, self.limits.nested)
                pool = self.stack.enter_context(FilePool(files, self.options.jobs))
            except (OSError, ValueError, AssertionError):  # no fork, no /dev/shm, or a daemonic process
                pool = None  # the same scan, in this process
        return LayerWalker(self.scanner, self.limits, on_bytes=self.options.progress, pool=pool)

    def walk(self, blob: Readable, head: bytes = b"") -> LayerScan:
        return self.walker.walk(blob, head)

    def fanout(self) -> Fanout | None:
        """With --jobs, the walkers that take several layers of a seekable source at once (made
        when a layer must be walked: collect asks for them then)."""
        return self._fanout

    @functools.cached_property
    def _fanout(self) -> Fanout | None:
        if self.options.jobs < 2:
            return None
        from .layers.fanout import Fanout

        fanout = Fanout(lambda: self.scanner, self.limits, self.options.jobs, self.options.progress)
        return self.stack.enter_context(fanout)


def scan_image(source: ImageSource, options: ScanOptions | None = None) -> ScanReport:
    options = options or ScanOptions()
    started = time.monotonic()
    started_at = time.time()
    backend = options.cache_backend or (DirBackend(options.cache_dir) if options.cache_dir else None)
    for attempt in range(_RETRIES + 1):
        cache = LayerCache(backend, _cache_namespace(options)) if backend is not None else None
        try:
            return _scan(source, options, cache, started, started_at)
        except CacheDamaged as damaged:  # a cached section, checked when first read (scanner.cache)
            if cache is None:
                raise
            cache.forget(damaged)  # a miss from now on: the scan again walks that layer
            if not source.rereadable() or attempt == _RETRIES:
                raise
    raise AssertionError("unreachable")


_RETRIES = 3  # scans again after a damaged cached document: each finds at most one more


def _scan(
    source: ImageSource, options: ScanOptions, cache: LayerCache | None, started: float, started_at: float
) -> ScanReport:
    limits = WalkLimits(
        max_file_size=options.max_file_size,
        nested=NestedLimits(max_depth=options.archive_depth),
        max_layer_bytes=options.max_layer_bytes,
        max_ratio=options.max_ratio,
        deadline=started + options.timeout if options.timeout else None,
    )
    with contextlib.ExitStack() as stack:
        lazy = _Lazy(options, limits, stack)
        identity = source.identity() if cache is not None else None
        proofs = cache.proofs(identity) if cache is not None and identity is not None else {}
        vouched = _vouched_scans(source, cache)
        shell = cache.get_doc(f"export:{vouched[0]}") if cache is not None and vouched is not None else None
        archive = archive_from_shell(shell, *vouched) if shell is not None and vouched is not None else None
        if archive is None and cache is not None and identity is not None and proofs:  # a file read before, unchanged
            archive = replay_shell(cache.get_doc(shell_key(identity)), cache)
        if archive is None:
            archive = collect(
                source.members(), lazy, cache=cache, proofs=proofs, defer=vouched is not None, fanout=lazy.fanout
            )
            if cache is not None and vouched is not None:
                archive.attached = attach_vouched(archive, *vouched)
            _keep_export(source, cache, archive)
            if cache is not None and identity is not None and source.identity() == identity:
                _keep_file(cache, identity, archive, proofs)  # the file did not change while it was read
        if cache is not None:
            cache.hits += archive.attached
    resolved = resolve(archive, source.select)
    key = options.fingerprint_key or load_key(options.cache_dir).key
    dockerfiles = [options.dockerfile or from_provenance([d.doc for d in image.metadata]) for image in resolved.images]
    instructions = sorted({masked_text(i) for d in dockerfiles if d is not None for i in d.final_chain()})
    meta = _MetadataResults.of(resolved, lazy, cache, instructions)
    report = ScanReport(
        source_kind=source.kind,
        source_ref=source.ref,
        archive_format=resolved.format if archive.exported else f"{resolved.format}, from cache, not exported",
        images=tuple(
            _image_report(image, meta, key, dockerfile, cache)
            for image, dockerfile in zip(resolved.images, dockerfiles, strict=True)
        ),
        metadata_findings=tuple(meta.findings(resolved.metadata, key, ImageMap(None, None))),
        warnings=tuple(resolved.warnings),
        errors=tuple(resolved.errors),
        duration_s=time.monotonic() - started,
        cached_layers=cache.hits if cache is not None else 0,
        started_at=started_at,
    )
    if cache is not None and options.cache_backend is None and options.cache_dir is not None:
        prune.maybe_prune(options.cache_dir, options.cache_max_bytes, default_dir().parent)  # a stat a run
    return suppress.apply(report, options.suppressions)


def _keep_file(cache: LayerCache, identity: str, archive: Archive, proofs: Proofs) -> None:
    """After a read of an image file (its identity the same before and after): the digests its
    layers' bytes were proven to have (the proofs), and what it holds besides (file_shell), for a
    rescan of the same unchanged file that opens it no more (replay_shell).  See the trust model in
    docs/how-it-works.md: the file's stat stands for its bytes, as the proofs have."""
    if archive.proven != proofs:
        cache.put_proofs(identity, archive.proven)
    if (shell := file_shell(archive)) is not None:
        cache.put_doc(shell_key(identity), shell)


def _keep_export(source: ImageSource, cache: LayerCache | None, archive: Archive) -> None:
    """After an export by a source that vouches for its image (the local engine: see
    docs/how-it-works.md, the trust model), its documents, for a rescan with no export."""
    vouched = source.vouched_image() if cache is not None else None
    shell = export_shell(archive, vouched[0]) if vouched is not None else None
    if cache is not None and vouched is not None and shell is not None:
        cache.put_doc(f"export:{vouched[0]}", shell)


def _vouched_scans(source: ImageSource, cache: LayerCache | None) -> tuple[str, dict[str, LayerScan]] | None:
    """The image's config digest and a cached result for every layer, by the diff_ids the source
    vouches for (a Docker Engine's own); None unless every layer is in the cache.  docker save from
    Engines before 25 names layers <id>/layer.tar, without a digest, and the stream cannot be read
    twice: only a full hit lets such a rescan leave the layers unread."""
    vouched = source.vouched_image() if cache is not None else None
    if cache is None or vouched is None:
        return None
    config_digest, diff_ids = vouched
    scans = {}
    for diff_id in diff_ids:
        if (scan := cache.get(diff_id, count=False)) is None:
            return None
        scans[diff_id] = scan
    return config_digest, scans


def ruleset_fingerprint(options: ScanOptions) -> str:
    """What a report depends on besides the image: leakscan's version and code, the rules, the
    known values (as hashes of hashes) and the limits.  A report made under another is stale."""
    return _cache_namespace(options)


def _rules(options: ScanOptions) -> RuleSet:
    if options.rules is not None:
        return options.rules
    from .detectors.rules import RuleSet
    from .detectors.rules.loader import builtin_rules

    return RuleSet(builtin_rules())


def _cache_namespace(options: ScanOptions) -> str:
    """Everything a layer's result depends on; secrets only as hashes of hashes.  The built-in
    rules are named, not loaded: they are data files of leakscan's package, hashed into the code
    fingerprint with the loader that reads them (cache.code_fingerprint)."""
    rules = options.rules
    return namespace(
        {
            "rules": "builtin"
            if rules is None
            else [
                (r.id, r.regex, r.flags, r.severity.value, r.group, r.confidence, r.paths, r.prefilter, r.max_len)
                for r in rules.rules
            ],
            "detect_secrets": rules is None or rules.detect_secrets,
            "entropy": options.entropy,
            "max_file_size": options.max_file_size,
            "archive_depth": options.archive_depth,
            "known": known_fingerprint(options.known),
        }
    )


class _MetadataResults:
    """What the detectors make of an archive's metadata: the hits in each JSON string (config,
    history, manifests, annotations) and each created_by as displayed (build-arg values and
    anything a detector matches masked).  Cached as one document under a hash of those strings, so
    that a rescan of an unchanged image needs no detector at all."""

    def __init__(self, hits: dict[str, tuple[Hit, ...]], shown: dict[str, str]) -> None:
        self.hits, self.shown = hits, shown

    @classmethod
    def of(cls, resolved: ResolvedArchive, lazy: _Lazy, cache: LayerCache | None, extra: list[str]) -> _MetadataResults:
        """``extra``: more texts to display masked (the Dockerfile's instructions)."""
        docs = resolved.metadata + [d for image in resolved.images for d in image.metadata]
        texts = sorted({text for d in docs for _, text in iter_json_strings(d.doc, d.prefix)})
        made = {mask_build_args(s) for image in resolved.images for s in _created_by(image)[0] if s}
        steps = sorted(made | {mask_build_args(s) for s in extra})
        key = "meta:" + sha256_hex(json.dumps([texts, steps]).encode("utf-8", "surrogateescape"))
        doc = cache.get_doc(key) if cache is not None else None
        if doc is not None:
            try:
                return cls(
                    {t: tuple(hit_from_row(h) for h in hits) for t, hits in zip(texts, doc["hits"], strict=True)},
                    dict(zip(steps, doc["shown"], strict=True)),
                )
            except (KeyError, TypeError, ValueError):
                pass  # not this format: scanned again
        scanner = lazy.scanner
        found = cls(
            {t: tuple(scanner.scan_bytes(t.encode("utf-8", "surrogateescape"), metadata=True)) for t in texts},
            {s: scanner.mask(s) for s in steps},
        )
        if cache is not None:
            cache.put_doc(
                key,
                {
                    "hits": [[hit_row(h) for h in found.hits[t]] for t in texts],
                    "shown": [found.shown[s] for s in steps],
                },
            )
        return found

    def findings(self, docs: list[MetaDoc], key: bytes, image: ImageMap) -> Iterator[Finding]:
        for doc in docs:
            for field_name, text in iter_json_strings(doc.doc, doc.prefix):
                for hit in self.hits[text]:
                    instruction, base = image.for_field(field_name)
                    where = {
                        "field": field_name,
                        "line": None,
                        "description": image.describe(field_name, hit.rule_id, hit.description),
                        "instruction": self.instruction(instruction),
                        "base_image": base,
                    }
                    yield Finding.from_hit(hit, key, where)

    def display(self, created_by: str | None) -> str | None:
        return None if created_by is None else self.shown[mask_build_args(created_by)]

    def instruction(self, instruction: Instruction | None) -> Instruction | None:
        """The instruction with its text as reports may show it."""
        if instruction is None:
            return None
        return replace(instruction, text=self.shown[mask_build_args(masked_text(instruction))])


_BUILD_ARGS = re.compile(r"^(RUN )?\|(\d+) ")


def mask_build_args(created_by: str) -> str:
    """``RUN |2 A=x B=y cmd`` -> ``RUN |2 A=<redacted> B=<redacted> cmd``: build-arg values are
    often secrets, and this text is printed in every report."""
    m = _BUILD_ARGS.match(created_by)
    if not m:
        return created_by
    rest = created_by[m.end() :].split(" ")
    count = min(int(m.group(2)), len(rest))
    for k in range(count):
        name, sep, _ = rest[k].partition("=")
        if sep:
            rest[k] = f"{name}=<redacted>"
    return created_by[: m.end()] + " ".join(rest)


def _created_by(image: ResolvedImage) -> tuple[list[str | None], list[str]]:
    """The history entry behind each layer: non-empty history entries line up with layers."""
    history = (image.config or {}).get("history") or []
    steps = [
        h.get("created_by") or (f"({h['comment']})" if h.get("comment") else None)
        for h in history
        if isinstance(h, dict) and not h.get("empty_layer")
    ]
    if len(steps) != len(image.layers):
        warning = f"history has {len(steps)} layer entries for {len(image.layers)} layers; created_by not attributed"
        return [None] * len(image.layers), ([warning] if image.config is not None and history else [])
    return [str(s) if s is not None else None for s in steps], []


def _hard_link_findings(
    image: ResolvedImage, vis: Visibility, i: int, key: bytes, common: dict[str, Any]
) -> Iterator[Finding]:
    """A hard link shows its target's content under its own path (same or lower layer)."""
    scan = image.layers[i].scan
    for entry in hard_links(scan.entries) if scan else ():
        if entry.link_target is None:
            continue
        source_layer = vis.link_source(i, entry.link_target)
        source = image.layers[source_layer].scan if source_layer is not None else None
        if source is None:
            continue
        status, by = vis.hider(i, entry.path)
        for fh in source.files:
            if fh.path != entry.link_target:
                continue
            path = f"{entry.path}!/{fh.member}" if fh.member else entry.path
            where = {
                "layer_index": i,
                "path": path,
                "status": status,
                "hidden_by_layer": by,
                "link_target": entry.link_target,
                **common,
            }
            for hit in fh.hits:
                yield Finding.from_hit(hit, key, where)


_HISTORY_FIELD = re.compile(r"^history\[(\d+)\]\.created_by$")
_ENV_FIELD = re.compile(r"^config\.Env\[\d+\]$")


def _fold_env_history(findings: list[Finding], image: ResolvedImage) -> list[Finding]:
    """A value an ENV step set that the image's config still holds is one finding, the config's
    (``config.Env[i]``, with the ENV remedy), naming the history entry of that step among its
    places: the same instruction put it in both, and removing it removes both.  A value a later
    ENV cleared from the config, or one a RUN step's build arguments hold, stays a finding of the
    history entry."""
    history = (image.config or {}).get("history")
    env = {f.secret_fingerprint: k for k, f in enumerate(findings) if f.field and _ENV_FIELD.match(f.field)}
    if not env or not isinstance(history, list):
        return findings
    places: dict[int, list[str]] = {}
    folded = set()
    for k, f in enumerate(findings):
        m = _HISTORY_FIELD.match(f.field or "")
        target = env.get(f.secret_fingerprint) if m else None
        step = history[int(m.group(1))] if m and int(m.group(1)) < len(history) else None
        created_by = step.get("created_by") if isinstance(step, dict) else None
        if target is not None and isinstance(created_by, str) and history_keyword(created_by) == "ENV":
            places.setdefault(target, []).append(f.field or "")
            folded.add(k)
    return _folded(findings, places, folded)


def _folded(findings: list[Finding], places: dict[int, list[str]], folded: set[int]) -> list[Finding]:
    """``findings`` without the ``folded`` ones, and each finding ``k`` of ``places`` naming those
    places (the folded findings' own) among its own."""
    return [
        dataclasses.replace(f, places=tuple(sorted({*f.places, *places[k]}))) if k in places else f
        for k, f in enumerate(findings)
        if k not in folded
    ]


_COMPILED = re.compile(r"^(?:(.*/)__pycache__/)?([^/]+?)(?:\.cpython-\d+|\.pypy\d*-\d+)?(?:\.opt-\d)?\.py[co]$")


def _fold_compiled(findings: list[Finding]) -> list[Finding]:
    """A value in a ``.py`` and in the ``.pyc`` compiled from it (``__pycache__/x.cpython-311.pyc``
    or ``x.pyc``) is one finding: the source's, naming the compiled file among its places.  A
    compiled file holds the source's literals and nothing else, so a finding of the same rule in
    the source is the same value as written there (a quoted literal's match can end elsewhere)."""
    compiled: dict[int, str] = {}
    for k, f in enumerate(findings):
        if f.path is not None and (m := _COMPILED.match(f.path)) and "!/" not in f.path:
            compiled[k] = f"{m.group(1) or (f.path.rpartition('/')[0] + '/' if '/' in f.path else '')}{m.group(2)}.py"
    if not compiled:
        return findings
    sources: dict[tuple[str | None, str], int] = {}
    for k, f in enumerate(findings):
        if k not in compiled:
            sources.setdefault((f.path, f.secret_fingerprint), k)
            sources.setdefault((f.path, f.rule_id), k)  # the literal as written: quoting can change a match's ends
    places: dict[int, list[str]] = {}
    folded = set()
    for k, source in compiled.items():
        target = sources.get((source, findings[k].secret_fingerprint), sources.get((source, findings[k].rule_id)))
        if target is not None:
            places.setdefault(target, []).append(findings[k].path or "")
            folded.add(k)
    return _folded(findings, places, folded)


def _image_report(
    image: ResolvedImage, meta: _MetadataResults, key: bytes, dockerfile: Dockerfile | None, cache: LayerCache | None
) -> ImageReport:
    vis = Visibility([ref.scan for ref in image.layers])
    owners = packages([ref.scan for ref in image.layers], cache)
    steps, warnings = _created_by(image)
    mapped = ImageMap(image.config, dockerfile)
    warnings += mapped.warnings
    made_by = [mapped.for_layer(i, len(image.layers)) for i in range(len(image.layers))]
    created_by = [meta.display(step) for step in steps]
    diff_ids = (image.config or {}).get("rootfs", {}).get("diff_ids") or []
    errors: list[str] = []
    layers = []
    for i, ref in enumerate(image.layers):
        scan = ref.scan
        if scan is None:
            layers.append(
                LayerReport(
                    index=i,
                    diff_id=diff_ids[i] if i < len(diff_ids) else None,
                    digest=ref.digest,
                    media_type=ref.media_type,
                    compression=None,
                    created_by=created_by[i],
                    size=None,
                    compressed_size=None,
                    files_scanned=0,
                    skips=(Skip(ref.path or "?", ref.missing or "not scanned"),),
                    findings=(),
                    scanned=False,
                    instruction=meta.instruction(made_by[i][0]),
                    base_image=made_by[i][1],
                )
            )
            continue
        if i < len(diff_ids) and diff_ids[i] != scan.diff_id:
            errors.append(f"layer {i}: diff_id in the config does not match the layer content")
        findings: list[Finding] = []
        common: dict[str, Any] = {"instruction": meta.instruction(made_by[i][0]), "base_image": made_by[i][1]}
        for fh, package in zip(scan.files, owners[i], strict=True):
            status, by = (Status.OVERWRITTEN, i) if fh.replaced else vis.hider(i, fh.path)
            where = {"layer_index": i, "path": fh.display_path, "status": status, "hidden_by_layer": by, **common}
            findings.extend(
                # its package, and what that package's word changes
                Finding.from_hit(h, key, where, policy.changes(h, package))
                for h in fh.hits
            )
        findings.extend(_hard_link_findings(image, vis, i, key, common))
        findings = _fold_compiled(findings)
        layers.append(
            LayerReport(
                index=i,
                diff_id=scan.diff_id,
                digest=ref.digest or scan.blob_digest,
                media_type=ref.media_type,
                compression=scan.compression,
                created_by=created_by[i],
                size=scan.size,
                compressed_size=scan.compressed_size,
                files_scanned=scan.files_scanned,
                skips=scan.skips,
                findings=tuple(findings),
                scanned=scan.error is None,
                error=scan.error,
                instruction=common["instruction"],
                base_image=made_by[i][1],
            )
        )
    return ImageReport(
        name=image.name,
        repo_tags=tuple(image.repo_tags),
        config_digest=image.config_digest,
        manifest_digest=image.manifest_digest,
        platform=image.platform,
        layers=tuple(layers),
        metadata_findings=tuple(_fold_env_history(list(meta.findings(image.metadata, key, mapped)), image)),
        warnings=tuple(image.warnings + warnings),
        errors=tuple(errors),
        dockerfile=dockerfile.path if dockerfile is not None else None,
    )
