"""The content scanner: every detector over a file (in overlapping windows) or a metadata string.

The plaintext of a match never leaves the detectors: :class:`ContentScanner` turns every
:class:`~.interface.Match` into a redacted :class:`~scanner.models.Hit` (hash + preview), merges
the rules that matched one value, and applies the downgrades the value or its path alone justify.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from ..models import Hit, Readable, Severity, redact, sha256_hex
from .interface import IN_DOCS_OR_TESTS, Detector, Match
from .known import KnownSecretsDetector, KnownValue
from .rules import BUILTIN_RULES, Rule

CHUNK_SIZE = 1 << 20
LINES_PENDING = 8 << 20  # see ContentScanner.scan_stream


def build_detectors(
    known: list[KnownValue], *, entropy: bool = True, detect_secrets: bool = True, rules: Iterable[Rule] = BUILTIN_RULES
) -> list[Detector]:
    from .detect_secrets_plugins import DetectSecretsDetector
    from .entropy import EntropyDetector
    from .keystore import KeystoreDetector
    from .patterns import PatternDetector
    from .vendor_context import VendorContextDetector

    detectors: list[Detector] = [KnownSecretsDetector(known), PatternDetector(rules), KeystoreDetector()]
    if detect_secrets:
        detectors.append(DetectSecretsDetector())
    # the vendor-context detector names the vendor of what the entropy detector finds (one pass of
    # the work for both); it runs with --no-entropy too: a named vendor credential is not a guess
    found = EntropyDetector()
    detectors.append(VendorContextDetector(found))
    if entropy:
        detectors.append(found)
    return detectors


def downgrade(hit: Hit, reason: str) -> Hit:
    """``hit`` at low severity and confidence, with what it was and why it is no longer: a
    downgrade is always visible.  Never for a known secret (what the user named) or a token whose
    checksum proves it (a leak wherever it is)."""
    if hit.detector == "known-secret" or hit.proven or hit.severity is Severity.LOW:
        return hit
    return dataclasses.replace(
        hit,
        severity=Severity.LOW,
        confidence="low",
        description=f"{hit.description} ({reason}: downgraded)",
        downgraded_from=hit.severity,
        downgrade_reason=reason,
    )


def _to_hit(detector: Detector, match: Match, line: int | None, path: str | None = None) -> Hit:
    hit = Hit(
        rule_id=match.rule_id,
        detector=detector.name,
        severity=match.severity,
        description=match.description,
        secret_sha256=sha256_hex(match.secret),
        preview=redact(match.secret),
        line=line,
        secret_id=match.secret_id,
        encoding=match.encoding,
        confidence=match.confidence,
        proven=match.proven,
    )
    if detector.name == "known-secret" or match.proven or match.severity is Severity.LOW:
        return hit
    from .examples import in_docs_or_tests, is_example

    if match.downgrade:
        return downgrade(hit, match.downgrade)
    if is_example(match.secret):
        return downgrade(hit, "an example or placeholder value")
    if path is not None and in_docs_or_tests(path):
        return downgrade(hit, IN_DOCS_OR_TESTS)
    return hit


@dataclass(frozen=True, slots=True)
class _Seen:
    rule_id: str
    start: int
    encoding: str | None


class ContentScanner:
    """Runs every detector over a stream in chunks that overlap by the longest possible match.

    A match is reported once, with its 1-based line number, even when it spans a chunk boundary
    or lies in the overlap that two windows share.
    """

    def __init__(
        self,
        detectors: Iterable[Detector],
        chunk_size: int = CHUNK_SIZE,
        metadata_detectors: Iterable[Detector] | None = None,  # None: build arguments and secret-like names
    ) -> None:
        from .buildargs import BuildArgDetector, SecretNameDetector
        from .decoded import Base64Decoded
        from .prefilter import pass_for

        if metadata_detectors is None:
            metadata_detectors = (BuildArgDetector(), SecretNameDetector())
        self.detectors = list(detectors)
        self.metadata_detectors = self.detectors + list(metadata_detectors)
        self.decoded = Base64Decoded(self.detectors)
        self.overlap = max((d.max_match_len for d in self.detectors), default=1)
        self.chunk_size = max(chunk_size, self.overlap)
        # One Hyperscan pass per window for every detector that has expressions (rule prefilters,
        # detect-secrets' and the entropy gates), instead of one pass each.  The known-secret
        # literals keep a database of their own: this one is kept on disk (prefilter), and the
        # literals are the secrets.  Base64 runs have their own gated pass (decoded.GATE).
        shared = [d for d in self.detectors if d.expressions()]
        self._group = {id(d): k for k, d in enumerate(shared)}
        self._pass = pass_for([d.expressions() for d in shared])
        # each detector with its group in the pass (-1: none), for the window loop; a known-secret
        # detector with no secret to look for (a scan without --secret) finds nothing: not called
        plan = [(d, self._group.get(id(d), -1)) for d in self.detectors if not _idle(d)]
        decoded_plan = [(d, self._group.get(id(d), -1)) for d in self.decoded.detectors]
        # ... and those outside the pass alone: all that is called where the pass has no event
        self._plans = (plan, [d for d, k in plan if k < 0])
        self._decoded_plans = (decoded_plan, [d for d, k in decoded_plan if k < 0])

    def _found(
        self, plans: tuple[list[tuple[Detector, int]], list[Detector]], data: bytes, path: str | None
    ) -> list[tuple[Detector, Match]]:
        """The matches of the detectors of ``plans`` (each with its group in the shared pass, and
        those outside the pass alone) in ``data``: where the pass has no event (most windows), only
        those outside it are called (a gated detector finds nothing without one: PassDetector)."""
        found: list[tuple[Detector, Match]] = []
        events = self._pass.events(data)
        if events is None:
            for d in plans[1]:
                found.extend((d, m) for m in d.find(data, path))
            return found
        for d, k in plans[0]:
            if k < 0:
                found.extend((d, m) for m in d.find(data, path))
            elif events[k]:
                found.extend((d, m) for m in d.find_events(data, path, events[k]))
        return found

    def _decoded_text(self, text: bytes, path: str | None) -> list[tuple[Detector, Match]]:
        return self._found(self._decoded_plans, text, path)

    def _matches(self, data: bytes, metadata: bool = False, path: str | None = None) -> list[tuple[Detector, Match]]:
        """Every detector's matches; a weak match (a secret-like name, entropy) inside a stronger match's
        span is dropped: it is a part of what that match reports."""
        if metadata:
            found = [(d, m) for d in self.metadata_detectors for m in d.find(data, path)]
            found.extend(self.decoded.find(data, path))
        else:
            found = self._found(self._plans, data, path)
            found.extend(self.decoded.find(data, path, matcher=self._decoded_text))
        if not found or not any(d.name in _WEAK for d, _ in found):
            return found
        spans = [(m.start, m.end, d.name, _weight(d.name, m.rule_id)) for d, m in found]
        return [
            (d, m)
            for d, m in found
            if not any(
                s <= m.start and m.end <= e and _drops(outer, k, d.name, _weight(d.name, m.rule_id))
                for s, e, outer, k in spans
            )
        ]

    def scan_bytes(self, data: bytes, metadata: bool = False, path: str | None = None) -> list[Hit]:
        """Scan one string; ``metadata`` adds the detectors of named values (build args, Env)."""
        hits = [_to_hit(d, m, data.count(b"\n", 0, m.start) + 1, path) for d, m in self._matches(data, metadata, path)]
        return _dedupe(hits)

    def mask(self, text: str) -> str:
        """``text`` with every span a detector matches replaced, for display (e.g. created_by)."""
        data = text.encode("utf-8", "surrogateescape")
        spans = sorted((m.start, m.end) for _, m in self._matches(data, metadata=True))
        out, pos = bytearray(), 0
        for start, end in spans:
            if end <= pos:
                continue
            out += data[pos : max(start, pos)] + b"<redacted>"
            pos = end
        out += data[pos:]
        return out.decode("utf-8", "replace")

    def scan_stream(self, stream: Readable, limit: int | None = None, path: str | None = None) -> list[Hit]:
        """Scan ``stream`` to its end (or ``limit`` bytes)."""
        hits: list[Hit] = []
        seen: set[_Seen] = set()
        carry = b""
        window_start = 0  # absolute offset of window[0]
        remaining = limit
        # The newlines before a window are counted only when a hit needs its line (most streams
        # have none): the parts of earlier windows not yet counted are kept, up to LINES_PENDING
        # bytes, then counted (a venv's 60 files over 1 MiB, 232 MB: 0.17 -> 0.145 s of CPU with
        # the detectors stubbed out).
        lines_before = 0  # newlines before the parts in pending
        pending: list[tuple[bytes, int]] = []  # (window, cut): window[:cut] not yet counted
        pending_bytes = 0

        def lines() -> int:
            nonlocal lines_before, pending_bytes
            for part, cut in pending:
                lines_before += part.count(b"\n", 0, cut)
            pending.clear()
            pending_bytes = 0
            return lines_before

        def next_chunk() -> bytes:
            nonlocal remaining
            size = self.chunk_size if remaining is None else min(self.chunk_size, remaining)
            chunk = _read_full(stream, size)
            if remaining is not None:
                remaining -= len(chunk)
            return chunk

        chunk = next_chunk()
        while chunk:
            window = carry + chunk if carry else chunk
            self._window_hits(
                window, self._matches(window, path=path), len(carry), window_start, lines, seen, path, hits
            )
            chunk = next_chunk()
            if not chunk:
                break  # the last window: its lines are never needed by a next one
            keep = min(self.overlap, len(window))
            cut = len(window) - keep
            pending.append((window, cut))
            pending_bytes += cut
            if pending_bytes > LINES_PENDING:
                lines()
            window_start += cut
            carry = window[cut:]
            if len(seen) > 4096:
                seen = {s for s in seen if s.start >= window_start}
        return _dedupe(hits)

    def scan_held(self, data: bytes, path: str | None = None) -> list[Hit]:
        """What :meth:`scan_stream` finds in a stream of ``data``'s bytes, without the stream: each
        window is one slice of ``data`` (in a stream a read and a join, two copies), the same
        windows at the same places (chunk_size bytes, then each from ``overlap`` bytes before the
        end of the one before), and the lines before a window counted only when a hit needs them.
        For a file held whole (up to 8 MiB: nested.HASHED_WHOLE)."""
        size, overlap = self.chunk_size, self.overlap
        if len(data) <= size:
            return self.scan_window(data, path)
        hits: list[Hit] = []
        seen: set[_Seen] = set()
        counted = newlines = 0  # the newlines in data[:counted]
        window_start = 0

        def lines() -> int:
            nonlocal counted, newlines
            newlines += data.count(b"\n", counted, window_start)
            counted = window_start
            return newlines

        end, fresh_from = size, 0  # the first window has no overlap with one before
        while True:
            window = data[window_start:end]
            self._window_hits(
                window, self._matches(window, path=path), fresh_from, window_start, lines, seen, path, hits
            )
            if end >= len(data):
                break
            window_start, end, fresh_from = end - overlap, end + size, overlap
            if len(seen) > 4096:
                seen = {s for s in seen if s.start >= window_start}
        return _dedupe(hits)

    def scan_window(self, data: bytes, path: str | None = None) -> list[Hit]:
        """What :meth:`scan_stream` finds in ``data`` when it is one window (at most chunk_size
        bytes: a small file, read whole), without the stream."""
        found = self._matches(data, path=path) if data else []
        if not found:
            return []  # most small files
        hits: list[Hit] = []
        self._window_hits(data, found, 0, 0, _no_lines, set(), path, hits)
        return _dedupe(hits)

    def _window_hits(
        self,
        window: bytes,
        found: list[tuple[Detector, Match]],
        fresh_from: int,
        window_start: int,
        lines_before: Callable[[], int],
        seen: set[_Seen],
        path: str | None,
        hits: list[Hit],
    ) -> None:
        for detector, match in found:  # the window's matches
            if match.end <= fresh_from:
                continue  # wholly inside the overlap: the previous window had it
            key = _Seen(match.rule_id, window_start + match.start, match.encoding)
            if key in seen:
                continue
            seen.add(key)
            line = lines_before() + window.count(b"\n", 0, match.start) + 1
            hits.append(_to_hit(detector, match, line, path))


def _idle(detector: Detector) -> bool:
    return isinstance(detector, KnownSecretsDetector) and not len(detector)


def _no_lines() -> int:
    return 0


def _read_full(stream: Readable, size: int) -> bytes:
    """``size`` bytes, or fewer at the end: a short read (a put-back file head, a pipe) would
    otherwise make a window of its own, and every window costs a pass of every detector."""
    if size <= 0:
        return b""
    chunk = stream.read(size)
    if not chunk or len(chunk) == size:
        return chunk
    parts = [chunk]
    have = len(chunk)
    while have < size and (more := stream.read(size - have)):
        parts.append(more)
        have += len(more)
    return b"".join(parts)


# Weaker evidence (a secret-like name, entropy) about a value that stronger evidence (an exact
# known-secret match, a vendor format) already reports adds nothing of its own: one finding.
# The order: an exact known secret, a vendor's format (a pattern rule), a vendor named by the name
# a value is assigned to (vendor-context), a generic key=value rule that names no vendor, a build
# argument's secret-like name, entropy.
_STRENGTH = {"known-secret": 5, "pattern": 4, "vendor-context": 3, "build-arg": 1, "entropy": 0}
_GENERIC_STRENGTH = 2
# pattern rules that say "a secret under a secret-like key" and name no vendor: vendor-context says more
# (from the rules' own data: a standard format with a free-form value, such as .env, JSON and INI
# secrets, a password in a URL, a YAML token: line; not a structured one such as a PEM key)
GENERIC_RULES = frozenset(r.id for r in BUILTIN_RULES if r.vendor == "generic" and not r.structure)
# inside a stronger match's span, a weak match is part of it: dropped.  Entropy inside a
# vendor-context match (the same value: the same span) is kept, to be merged into it as ``also``.
_WEAK = {"build-arg": 1, "vendor-context": 1, "entropy": 0}
_CONFIDENCE = {"high": 2, "medium": 1, "low": 0}


def _weight(detector: str, rule_id: str) -> int:
    if detector == "pattern" and rule_id in GENERIC_RULES:
        return 1
    return _WEAK.get(detector, 2)


def _drops(outer: str, outer_weight: int, inner: str, inner_weight: int) -> bool:
    return outer_weight > inner_weight and not (outer == "vendor-context" and inner == "entropy")


def _strength(detector: str, rule_id: str = "") -> int:
    if detector == "pattern" and rule_id in GENERIC_RULES:
        return _GENERIC_STRENGTH
    return _STRENGTH.get(detector, 4)


def _rank(hit: Hit) -> tuple[int, int, int, int]:
    """What makes one hit the finding when several rules match one value: its severity, then the
    detector's evidence, then its confidence, then a rule's (detect-secrets' plugins are a second
    source of rules)."""
    own = not hit.rule_id.startswith("ds-")
    return (hit.severity.rank, _strength(hit.detector, hit.rule_id), _CONFIDENCE.get(hit.confidence, 0), own)


def _dedupe(hits: list[Hit]) -> list[Hit]:
    """One hit per value at one place (line and encoding): the strongest, listing every other rule
    that matched it in ``also`` (an .npmrc token is a known secret, an npm token and an .npmrc
    auth token: one finding)."""
    if len(hits) < 2:
        return hits  # most windows: nothing to merge
    groups: dict[tuple[object, ...], list[Hit]] = {}
    for hit in hits:
        groups.setdefault((hit.line, hit.secret_sha256, hit.encoding or "raw"), []).append(hit)
    out = []
    for group in groups.values():
        best = max(group, key=_rank)
        others = {r for h in group for r in (h.rule_id, *h.also)} - {best.rule_id}
        out.append(dataclasses.replace(best, also=tuple(sorted(others))) if others != set(best.also) else best)
    return out
