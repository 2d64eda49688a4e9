"""Secrets inside base64 blobs: a kubeconfig's ``client-key-data``, a Kubernetes Secret's
``data:`` values, a ``.dockerconfigjson``, an env var holding a base64 PEM.

Runs of base64 in a window are decoded when the result is mostly text, and the text is scanned by
the other detectors (not the known-secret one: it already looks for every base64 alignment of
every known value).  A match is reported at the run's place with ``encoding`` ``base64``.
"""

from __future__ import annotations

import binascii
import bisect
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace

import hyperscan

from .interface import Detector, Match
from .prefilter import OneExpression

MIN_RUN = 24  # 18 bytes decoded: shorter blobs cannot hold most formats anyway
MAX_RUN = 1 << 20
_HEX = re.compile(rb"[0-9a-fA-F]+")  # fullmatch (a run holds no newline), also in place: (data, start, end)


_TEXT = bytes([9, 10, 13, *range(32, 127)])
_SEP = b"\n\x00\n"  # between decoded texts: a line break and a byte no text (<= 15 % binary) token holds


# Base64 of text has upper and lower case letters and digits; paths and words do not.  Checked
# in place (match with pos and endpos): most runs in an image are words and paths, and fail here.
_MIXED = re.compile(rb"(?=[^0-9]*[0-9])(?=[^a-z]*[a-z])(?=[^A-Z]*[A-Z])")


def _mixed(run: bytes) -> bool:
    return _MIXED.match(run) is not None


def _decode(run: bytes, mixed: bool = False) -> bytes | None:
    """The text a run of base64 (its characters, then at most two "=") decodes to, if mostly text.
    ``mixed``: the caller found it holds a digit and both cases (see _runs).  The scan does these
    same checks inline in Base64Decoded._texts (a call per run cost /usr/bin/node's 184,000 runs
    a fifth more time); the tests hold the two to each other and this to b64decode."""
    if len(run) > MAX_RUN or _HEX.fullmatch(run) or not (mixed or _mixed(run)) or not _shaped(run):
        return None  # hex digests and words decode to noise, and so does a run not shaped as text's
    text = run.rstrip(b"=")
    try:
        # the run holds only base64 characters: b64decode's validate (a regex per call) adds nothing
        decoded = binascii.a2b_base64(text + b"=" * (-len(text) % 4), strict_mode=True)
    except (binascii.Error, ValueError):
        return None
    if not decoded:
        return None
    binary = len(decoded.translate(None, _TEXT))  # bytes that are not printable text
    return decoded if binary <= 0.15 * len(decoded) else None


# A run is at least MIN_RUN base64 characters, up to two "=", then a byte outside the alphabet (or
# the end).  Only runs with a digit can decode (see _MIXED); the digit is checked on each run the
# pass reports (Base64Decoded._texts).  What the expression asks for is the shape of base64 of text,
# which most runs in an image lack: text's bytes are below 0x80, so in each group of four
# characters (three bytes) the first stands for a value below 32 (A-Z, a-f), the second for one
# with bit 3 clear and the third for one with bit 1 clear.  A run is reported when at least two of
# its first three groups have that shape (_shaped): one byte at or above 0x80 in its first nine
# (a UTF-8 BOM, an accented letter) does not hide it.  A run that decodes to text has that shape
# unless two of its first three groups hold such a byte; a binary's symbol names (mangled C++
# names mix cases and digits) have it about one time in twenty: on the six large binaries of
# benchmarks/peers.py, 8,933 runs are reported where asking for a digit reported 404,830, each a
# step of Python, and the pass reads them in 0.30 s where it took 0.48.  A run's start is the byte
# after one outside the alphabet ("=" included), or the start of what the pass reads (a run's start:
# see events and _blocks); no start of match is asked for (SOM makes expressions large), so the
# start is found going back from the end.
_R = b"[A-Za-z0-9+/]"
_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def _class(values: Callable[[int], bool]) -> bytes:
    return b"[" + re.escape(bytes(c for value, c in enumerate(_ALPHABET) if values(value))) + b"]"


_SHAPED = _class(lambda v: v < 32) + _class(lambda v: not v & 8) + _class(lambda v: not v & 2) + _R
_ANY = _R + b"{4}"
_HEAD = b"(?:" + b"|".join((_SHAPED + _SHAPED + _ANY, _SHAPED + _ANY + _SHAPED, _ANY + _SHAPED + _SHAPED)) + b")"
RUN = b"(?:^|[^A-Za-z0-9+/])" + _HEAD + _R + b"{%d,}={0,2}(?:[^A-Za-z0-9+/=]|\\z)" % (MIN_RUN - 12)


def _shaped(run: bytes) -> bool:
    """What RUN asks of a run's first twelve characters, in plain words: of the three bytes each
    group of four stands for, all three below 0x80 in at least two of the first three groups."""
    head = binascii.a2b_base64(run[:12])
    return sum(max(head[k : k + 3]) < 0x80 for k in (0, 3, 6)) >= 2


# Most of the cost of RUN is its repeats of a class that most bytes of text belong to: in the content
# scanner's shared pass it tripled the time of every other expression together.  It has a pass of its
# own, run only on a window that holds MIN_RUN base64 characters in a row, which every run has: a
# pass of one expression that stops at its first match (about a sixth of RUN's time) and passes
# over the 40 % of an image's bytes (words, code) that have no such window.
GATE = _R + b"{%d}" % MIN_RUN
# A window's bytes mapped to their class: "u" upper case, "l" lower case, "d" digit, "s" + or /, " "
# anything else ("=" included).  The start of a run is then one rfind of " " in C, from its end
# back, and whether it mixes cases two finds (a run Hyperscan reports always holds a digit).
_CLASS_OF = {b"u": b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"l": b"abcdefghijklmnopqrstuvwxyz", b"d": b"0123456789", b"s": b"+/"}
_CLASSES = bytes(next((k[0] for k, chars in _CLASS_OF.items() if c in chars), 32) for c in range(256))
_LOOK_BACK = 256
_PAD = (b"", b"===", b"==", b"=")  # by a run's length mod 4: b"=" * (-length % 4)
_IN_RUN = [k != 32 or c == 61 for c, k in enumerate(_CLASSES)]  # base64 characters and "="


# A window of SPLIT_FROM bytes or more is gated BLOCK bytes at a time (Base64Decoded._blocks): on
# the venv image's windows of 64 KiB or more (834 MB), the search for runs 0.86 -> 0.72 s of CPU.
BLOCK, SPLIT_FROM = 1 << 15, 1 << 16
_RUN_OR_PAD = bytes(32 if k == 32 and c != 61 else 114 for c, k in enumerate(_CLASSES))  # "r": a run's byte or "="


def _past_run(data: bytes, at: int) -> int:
    """Just past the first byte from ``at`` on that is neither a run's nor "=": the byte that ends
    the run (and padding) ``data[at]`` may be in, or the end of ``data``."""
    step = _LOOK_BACK
    while at < len(data):
        gap = data[at : at + step].translate(_RUN_OR_PAD).find(b" ")
        if gap >= 0:
            return at + gap + 1
        at, step = at + step, step * 16
    return len(data)


Matcher = Callable[[bytes, "str | None"], list[tuple[Detector, Match]]]


class Base64Decoded:
    """Runs the given detectors over the decoded text of base64 runs in a window."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors = [d for d in detectors if d.name != "known-secret"]
        self._run = OneExpression(RUN, 0)
        self._gate = OneExpression(GATE, hyperscan.HS_FLAG_SINGLEMATCH)

    def events(self, data: bytes) -> list[int]:
        """The end of every run in ``data`` shaped as text's base64 (where RUN's matches end),
        after the gate.  The gate's first match ends MIN_RUN characters into the first run of
        MIN_RUN or more (no earlier one has as many in a row), so RUN reads the window from there,
        where its "^" stands for the byte before a run.  A large window is gated a block at a time (:meth:`_blocks`)."""
        if len(data) >= SPLIT_FROM:
            return self._blocks(data)
        first = self._gate.first_end(data)
        if first < 0:
            return []
        skip = first - MIN_RUN
        if skip <= 0:
            return self._run.ends(data)
        return [skip + end for end in self._run.ends(memoryview(data)[skip:])]

    def _blocks(self, data: bytes) -> list[int]:
        """:meth:`events` for a large window, gated BLOCK bytes at a time: RUN (about three times
        the gate's cost a byte on text) reads only from the start of the run where a block's gate
        fires to just past the end of the run the block ends in, and the gate alone reads the blocks
        between (a shared library's windows hold runs of MIN_RUN in a fifth of their 64 KiB blocks,
        where RUN had read all of a window from its first run on).  Each piece RUN reads starts at
        a run's start and ends past a byte that ends a run (a run's "=" padding included), so it
        finds what it would find in the whole window.  A gate's slice starts MIN_RUN - 1 bytes into
        the block before (or where RUN's last piece ended), so that no run of MIN_RUN falls between
        two, and a run that reaches back past a slice's start would have fired the block before."""
        n = len(data)
        view = memoryview(data)
        found: list[int] = []
        first_end, ends = self._gate.first_end, self._run.ends
        done = at = 0  # RUN has read up to done (a run's boundary); the next block starts at at
        while at < n:
            lo, hi = max(done, at - (MIN_RUN - 1)), min(n, at + BLOCK)
            first = first_end(view[lo:hi])
            if first < 0:
                at = hi
                continue
            start = lo + first - MIN_RUN  # a run's start: no run of MIN_RUN reaches back past lo
            end = _past_run(data, hi) if hi < n else n
            found.extend(start + e for e in ends(view[start:end]))
            done = at = end
        return found

    def _runs(self, data: bytes, events: list[int] | None = None, mixed_only: bool = False) -> list[tuple[int, int]]:
        """Every run shaped as text's base64 (RUN) with a digit (``mixed_only``: and with both
        cases, which text's base64 has).
        The scan uses :meth:`_texts`, which decodes them as it goes; the tests hold these runs to a
        regex's, :func:`_decode` to b64decode, and _texts to the two together."""
        return [(start, end) for start, _, end in self._spans(data, events, mixed_only)]

    def _spans(self, data: bytes, events: list[int] | None, mixed_only: bool) -> Iterator[tuple[int, int, int]]:
        """Each run's start, the end of its characters (before any "=") and its end."""
        if events is None:
            events = self.events(data)
        if not events:
            return
        # The classes of the bytes before each run's end, LOOK_BACK at a time; of the whole window
        # (once) when runs are dense or one is longer: most windows hold a few runs, and mapping
        # all of a window's bytes was most of the cost of finding them.
        whole = data.translate(_CLASSES) if len(events) * _LOOK_BACK >= len(data) else None
        in_run = _IN_RUN
        for end in events:
            if not in_run[data[end - 1]]:
                end -= 1  # the byte that ended the run
            chars = end
            if chars and data[chars - 1] == 61:  # "=" padding, at most two (RUN)
                chars -= 1
                if chars and data[chars - 1] == 61:
                    chars -= 1
            classes, base = whole, 0
            if classes is None:
                base = max(0, chars - _LOOK_BACK)
                classes = data[base:chars].translate(_CLASSES)
                if base and classes.find(b" ") < 0:  # the run goes back further
                    whole = classes = data.translate(_CLASSES)
                    base = 0
            start = classes.rfind(b" ", 0, chars - base) + 1
            if classes.find(b"d", start, chars - base) < 0:
                continue  # no digit: words
            if mixed_only and (
                classes.find(b"u", start, chars - base) < 0 or classes.find(b"l", start, chars - base) < 0
            ):
                continue  # not both cases: words, paths, hex
            yield base + start, chars, end

    def _texts(self, data: bytes, events: list[int] | None) -> tuple[list[tuple[int, int]], list[bytes]]:
        """Every run that decodes to text, and its text: what ``_runs(mixed_only=True)`` then
        ``_decode`` give, in one loop.  A binary's symbol tables (mangled names mix cases and
        digits) hold thousands of runs a window, nearly none of them text: the six large binaries
        of benchmarks/peers.py hold 405,000 with a digit, of which 182 decode to text, and RUN
        reports 8,933 of them (see RUN), so each step a run takes counts.  This is :meth:`_spans`
        written out (a generator's resumption per run cost a quarter of the loop), and a run of
        4k + 1 characters is passed over without the decoder's exception: no padding makes it
        base64."""
        spans: list[tuple[int, int]] = []
        texts: list[bytes] = []
        if events is None:
            events = self.events(data)
        if not events:
            return spans, texts
        a2b, text_bytes, pad, in_run, is_hex = binascii.a2b_base64, _TEXT, _PAD, _IN_RUN, _HEX.fullmatch
        whole = data.translate(_CLASSES) if len(events) * _LOOK_BACK >= len(data) else None
        for end in events:
            if not in_run[data[end - 1]]:
                end -= 1  # the byte that ended the run
            chars = end  # a run has MIN_RUN characters before its "=" padding, at most two
            if data[chars - 1] == 61:
                chars -= 1
                if data[chars - 1] == 61:
                    chars -= 1
            if whole is not None:
                start = whole.rfind(b" ", 0, chars) + 1
                if (
                    whole.find(b"d", start, chars) < 0
                    or whole.find(b"u", start, chars) < 0
                    or whole.find(b"l", start, chars) < 0
                ):
                    continue  # not a digit and both cases: words, paths, hex
            else:
                base = max(0, chars - _LOOK_BACK)
                classes = data[base:chars].translate(_CLASSES)
                if base and classes.find(b" ") < 0:  # the run goes back further
                    whole = classes = data.translate(_CLASSES)
                    base = 0
                start = classes.rfind(b" ", 0, chars - base) + 1
                if (
                    classes.find(b"d", start, chars - base) < 0
                    or classes.find(b"u", start, chars - base) < 0
                    or classes.find(b"l", start, chars - base) < 0
                ):
                    continue
                start += base
            length = chars - start
            if length & 3 == 1 or end - start > MAX_RUN:
                continue  # 4k + 1 characters: the one strict decoding's error
            decoded = a2b(data[start:chars] + pad[length & 3], strict_mode=True)
            if not decoded or len(decoded.translate(None, text_bytes)) > 0.15 * len(decoded):
                continue
            if end == chars and is_hex(data, start, end):
                continue  # a hex digest (no "=": with one it is no hex) decodes to noise, even as text
            spans.append((start, end))
            texts.append(decoded)
        return spans, texts

    def find(
        self,
        data: bytes,
        path: str | None = None,
        events: list[int] | None = None,
        matcher: Matcher | None = None,
    ) -> Iterator[tuple[Detector, Match]]:
        """``events``: RUN's events in ``data``, if the caller has them (else :meth:`events`);
        ``matcher``: the other detectors over a text, in one shared pass (else each detector reads
        it alone)."""
        if not self.detectors:
            return
        spans, texts = self._texts(data, events)
        if not texts:
            return
        # One pass over all the decoded texts of the window, joined by a separator no token
        # crosses: thousands of tiny scans cost more than the bytes they read.  A match that does
        # cross it is an artifact of the joining, and could hide a real match behind it: then that
        # detector reads each text alone, as it would without the joining.
        joined = _SEP.join(texts)
        offsets = list(itertools.accumulate((len(t) + len(_SEP) for t in texts[:-1]), initial=0))
        if matcher is not None:
            together = matcher(joined, path)
        else:
            together = [(d, m) for d in self.detectors for m in d.find(joined, path)]
        for detector in self.detectors:
            found = []
            for d, m in together:
                if d is not detector:
                    continue
                k = bisect.bisect_right(offsets, m.start) - 1
                if m.end > offsets[k] + len(texts[k]):
                    found = [(k, m) for k, text in enumerate(texts) for m in detector.find(text, path)]
                    break
                found.append((k, m))
            for k, m in found:
                yield detector, replace(m, start=spans[k][0], end=spans[k][1], encoding="base64")
