"""The decoded texts of a window's base64 runs are scanned joined: the same matches as scanning each
text alone, including when a match would cross from one text into the next."""

from __future__ import annotations

import base64
import contextlib
import re
from collections.abc import Iterator

from hypothesis import given
from hypothesis import strategies as st

from scanner.detectors import build_detectors
from scanner.detectors.decoded import Base64Decoded, _decode
from scanner.detectors.interface import Detector, Match
from scanner.models import Severity
from tests.fuzz.test_fuzz import FUZZ

DETECTORS = build_detectors([])
PEM_HEAD = b"-----BEGIN RSA PRIVATE KEY-----\nMIIEow" + b"Ab9" * 30
PEM = PEM_HEAD + b"\n-----END RSA PRIVATE KEY-----\n"
TEXTS = [
    b"token: ghp_" + b"Zq8w" * 9 + b"\n",
    b"AWS_ACCESS_KEY_ID=AKIA" + b"Q7ZP" * 4 + b"\n",
    b"password = 'hunter2-but-longer-9Xq'\n",
    PEM,
    PEM_HEAD,  # a key cut short: a greedy match from here would reach into the next text
    b"plain text with nothing in it at all, really\n",
    b"postgres://app:S3cr3t-pw-9Xq@db:5432/app\n",
]


def one_by_one(data: bytes, path: str | None) -> Iterator[tuple[str, str, int, int]]:
    """What the decoded detector reported before the joining: every text scanned alone."""
    engine = Base64Decoded(DETECTORS)
    for start, end in engine._runs(data):
        decoded = _decode(data[start:end])
        if decoded is None:
            continue
        for detector in engine.detectors:
            for m in detector.find(decoded, path):
                yield detector.name, m.rule_id, start, end


def joined(data: bytes, path: str | None) -> list[tuple[str, str, int, int]]:
    found: list[tuple[Detector, Match]] = list(Base64Decoded(DETECTORS).find(data, path))
    return [(d.name, m.rule_id, m.start, m.end) for d, m in found]


def window(picks: list[int]) -> bytes:
    return b"".join(b"k%d: %s\n" % (i, base64.b64encode(TEXTS[p])) for i, p in enumerate(picks))


def test_a_cut_key_before_a_whole_one_hides_nothing() -> None:
    data = window([4, 3, 0])
    got = joined(data, None)
    assert sorted(got) == sorted(one_by_one(data, None))
    assert {"private-key-rsa", "github-token"} <= {rule for _, rule, _, _ in got}


@FUZZ
@given(picks=st.lists(st.integers(0, len(TEXTS) - 1), min_size=1, max_size=8))
def test_joined_finds_what_one_by_one_finds(picks: list[int]) -> None:
    data = window(picks)
    assert sorted(joined(data, "app/config.yaml")) == sorted(one_by_one(data, "app/config.yaml"))


class _Spanning(Detector):
    """A lazy multi-line rule: from a BEGIN to the next END, wherever that is."""

    name = "spanning"

    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        for m in re.finditer(rb"BEGIN[\s\S]*?END", data):
            yield Match("block", Severity.HIGH, "a block", m.start(), m.end(), m.group())


def test_a_match_across_two_texts_makes_the_detector_read_each_text_alone() -> None:
    cut, whole = b"BEGIN but the text ends here ....", b"BEGIN a whole block END ......"
    data = b"a: %s\nb: %s\n" % (base64.b64encode(cut), base64.b64encode(whole))
    found = [(m.start, m.end) for _, m in Base64Decoded([_Spanning()]).find(data)]
    second = data.index(base64.b64encode(whole))
    assert found == [(second, second + len(base64.b64encode(whole)))]  # the whole block, at its own run


# What a run is, in plain words: base64 characters not preceded by one, at least 24 of them, up
# to two "=", then no base64 character and no "=".  Only runs with a digit can decode to text, and
# only runs shaped as text's base64 are searched: of the nine bytes the first twelve characters
# stand for, the three of at least two of the groups (bytes 0-2, 3-5, 6-8) are all below 0x80.
REFERENCE_RUN = re.compile(rb"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{24,}={0,2}(?![A-Za-z0-9+/=])")


def text_shaped(run: bytes) -> bool:
    head = base64.b64decode(run[:12])
    return sum(max(head[k : k + 3]) < 0x80 for k in (0, 3, 6)) >= 2


def reference_runs(data: bytes) -> list[tuple[int, int]]:
    return [
        m.span() for m in REFERENCE_RUN.finditer(data) if re.search(rb"[0-9]", m.group()) and text_shaped(m.group())
    ]


@FUZZ
@given(
    st.lists(
        st.sampled_from([b"A", b"b", b"7", b"+", b"/", b"=", b"==", b"===", b" ", b"\n", b"-", b"Zq8w", b"xY"]),
        max_size=400,
    )
)
def test_runs_are_every_digit_bearing_run_and_only_those(parts: list[bytes]) -> None:
    data = b"".join(parts)
    assert sorted(Base64Decoded(DETECTORS)._runs(data)) == reference_runs(data)


def test_long_runs_and_runs_at_the_edges() -> None:
    long_run = base64.b64encode(b"x" * 5000 + b"token 9")  # the digit comes late: after 24 characters
    lone_digit = [
        x * i + b"9" + y * (n - 1 - i)
        for x, y in ((b"x", b"y"), (b"A", b"B"))
        for n in (23, 24, 25, 48)
        for i in range(n)
    ]
    assert (
        reference_runs(long_run) and sum(map(bool, map(reference_runs, lone_digit))) == 24 + 25 + 48
    )  # A and B are shaped, x and y are not
    for data in (
        long_run,
        b"=" + long_run + b"==",
        b"a/" * 20 + b"9",
        b"9" + b"ab" * 12,
        b"ab" * 12 + b"==",
        *lone_digit,
    ):
        assert sorted(Base64Decoded(DETECTORS)._runs(data)) == reference_runs(data), data[:40]


_RUN_PIECES = [b"QUJD", b"aGVsbG8", b"x9", b"Zz", b"+/", b"=", b"==", b" ", b"\n", b"-", b"_", b":", b"\x00", b"\xff"]


@given(
    st.lists(st.tuples(st.sampled_from(_RUN_PIECES), st.integers(min_value=1, max_value=120)), max_size=12),
    st.booleans(),
)
@FUZZ
def test_runs_are_found_alike_with_a_look_back_and_with_the_whole_window(
    pieces: list[tuple[bytes, int]], mixed_only: bool
) -> None:
    """_runs maps the bytes before each run's end to classes LOOK_BACK at a time (the whole window
    when runs are dense or one is longer): the same runs as mapping the whole window, for runs
    shorter and far longer than the look-back, at the window's start, with padding and separators."""
    from scanner.detectors import decoded

    data = b"".join(piece * count for piece, count in pieces)
    finder = Base64Decoded(DETECTORS)
    events = finder._run.ends(data)
    classes = data.translate(decoded._CLASSES)
    expected = []
    for end in events:  # the whole window's classes, as _runs did before the look-back
        end -= not decoded._IN_RUN[data[end - 1]]
        chars = end
        for _ in range(2):
            chars -= chars > 0 and data[chars - 1] == 61
        start = classes.rfind(b" ", 0, chars) + 1
        if classes.find(b"d", start, chars) < 0:
            continue  # RUN asks for the shape of text's base64; the digit is checked after
        if mixed_only and (classes.find(b"u", start, chars) < 0 or classes.find(b"l", start, chars) < 0):
            continue
        expected.append((start, end))
    assert finder._runs(data, events, mixed_only) == expected


@given(
    st.binary(min_size=18, max_size=60), st.integers(min_value=0, max_value=3), st.integers(min_value=0, max_value=2)
)
@FUZZ
def test_decode_is_b64decode_of_the_run(raw: bytes, cut: int, pad: int) -> None:
    """_decode calls binascii directly (a run holds only base64 characters, so b64decode's
    validation adds nothing): the same bytes, or the same refusal, as b64decode(validate=True),
    for whole, cut and padded runs of 21 characters or more (a run has 24); and a caller's "mixed"
    promise changes nothing when it holds."""
    from scanner.detectors.decoded import _mixed

    run = base64.b64encode(raw).rstrip(b"=")
    run = run[: len(run) - cut] + b"=" * pad if len(run) > cut else run
    try:
        text = run.rstrip(b"=")
        reference: bytes | None = base64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except ValueError:
        reference = None
    got = _decode(run)
    printable = bytes([9, 10, 13, *range(32, 127)])
    mostly_text = bool(reference) and len(reference.translate(None, printable)) <= 0.15 * len(reference)
    words_or_hex = not _mixed(run) or re.fullmatch(rb"[0-9a-fA-F]+", run) is not None
    assert got == (reference if mostly_text and not words_or_hex and text_shaped(run) else None)
    if _mixed(run):
        assert _decode(run, mixed=True) == got


def test_a_window_without_min_run_base64_characters_in_a_row_is_not_searched_for_runs() -> None:
    """The gate: RUN's pass (the costly one) runs only where MIN_RUN base64 characters stand in a
    row, which every run has; the reference test above checks that no run is lost to it."""
    finder = Base64Decoded(DETECTORS)
    with _run_reads(finder) as calls:
        words = b"def main(argv): return os.path.join(base, name) + '/x9y8z7w6v5u4t3s2r1q'\n" * 100
        assert finder.events(words) == [] and calls == []
        run = base64.b64encode(b"password = hunter2-and-more")
        assert finder.events(words + run + b"\n") and len(calls) == 1
        assert calls[0] == run + b"\n"  # read from the first run of MIN_RUN characters on, not before


@contextlib.contextmanager
def _run_reads(finder: Base64Decoded) -> Iterator[list[bytes]]:
    """What RUN's pass reads, call by call, while the block is open."""
    calls: list[bytes] = []
    real = finder._run.ends

    def counting(data: bytes | memoryview) -> list[int]:
        calls.append(bytes(data))
        return real(data)

    finder._run.ends = counting  # type: ignore[method-assign]
    try:
        yield calls
    finally:
        del finder._run.ends


@FUZZ
@given(
    st.lists(
        st.sampled_from(
            [b"QUJD", b"aGVsbG8", b"dG9rZW4=", b"x9", b"Zz", b"+/", b"=", b"==", b" ", b"\n", b"\x00", b"\xff", b"0f"]
        ),
        max_size=300,
    )
)
def test_texts_are_the_runs_that_decode_one_by_one(parts: list[bytes]) -> None:
    """_texts (one loop) gives what _runs then _decode give run by run, and the events after the
    gate (RUN read from the first run on) are RUN's ends over the whole window."""
    data = b"".join(parts)
    finder = Base64Decoded(DETECTORS)
    runs = finder._runs(data, mixed_only=True)
    decoded = [(span, _decode(data[span[0] : span[1]], mixed=True)) for span in runs]
    expected = [span for span, text in decoded if text is not None]
    assert finder._texts(data, None) == (expected, [text for _, text in decoded if text is not None])
    assert finder.events(data) == (finder._run.ends(data) if re.search(rb"[A-Za-z0-9+/]{24}", data) else [])


def test_texts_of_a_binary_and_of_base64_of_text_and_hex() -> None:
    """The same check on bytes of a real shape: a C++ symbol table (runs that mix cases and digits
    and decode to noise), base64 of text with and without padding, hex digests, runs after runs
    shorter than MIN_RUN."""
    mangled = b"\x00".join(
        b"_ZN2v88internal%dFactoryBase%dINS0_%dIsolateEE%dNewEv" % (i, i * 7, i % 13, i) for i in range(400)
    )
    texts = b" ".join(base64.b64encode(b"token-%d: ghp_%s\n" % (i, b"Zq8w" * (1 + i % 11))) for i in range(60))
    hexes = b"\n".join(b"sha256:" + bytes(f"{i:064x}", "ascii") for i in range(50))
    short = b"|".join(b"Ab3" * k for k in range(1, 12))
    # hex of both cases that decodes to text ("aC04" is "h-4"), with and without "=" after it
    cased_hex = b" ".join(b"aC04" * (6 + i % 5) + b"=" * (i % 2) for i in range(20))
    finder = Base64Decoded(DETECTORS)
    for data in (mangled, texts, hexes, short + texts, mangled + texts + hexes, cased_hex, texts + cased_hex):
        runs = finder._runs(data, mixed_only=True)
        decoded = [(span, _decode(data[span[0] : span[1]], mixed=True)) for span in runs]
        spans, found = finder._texts(data, None)
        assert spans == [span for span, text in decoded if text is not None]
        assert found == [text for _, text in decoded if text is not None]
    assert len(finder._texts(texts, None)[1]) == 60 and finder._texts(mangled + hexes, None) == ([], [])
    assert len(finder._texts(cased_hex, None)[1]) == 10  # the ten with "=" are no hex


@given(
    st.lists(st.tuples(st.sampled_from(_RUN_PIECES), st.integers(min_value=1, max_value=60)), max_size=16),
    st.sampled_from([1, 2, 23, 24, 25, 40, 97, 256]),
)
@FUZZ
def test_a_large_window_gated_a_block_at_a_time_has_the_whole_windows_runs(
    pieces: list[tuple[bytes, int]], block: int
) -> None:
    """Blocks as small as a byte (so that runs, their padding and the bytes that end them straddle
    every boundary), runs far longer than a block and than the look-backs: RUN's ends over the
    whole window, no more, no fewer, in order."""
    from unittest import mock

    from scanner.detectors import decoded

    data = b"".join(piece * count for piece, count in pieces)
    finder = Base64Decoded(DETECTORS)
    whole = finder._run.ends(data)
    with mock.patch.multiple(decoded, BLOCK=block, SPLIT_FROM=0):
        assert finder.events(data) == whole


def test_large_windows_are_gated_a_block_at_a_time() -> None:
    """A window of SPLIT_FROM bytes or more: RUN reads only the pieces around the blocks whose gate
    fires (here two runs in 400 KB of words), and finds what it finds over the whole window."""
    from scanner.detectors import decoded

    words = b"def main(argv): return os.path.join(base, name)\n" * 4000
    run = base64.b64encode(b"password = hunter2-and-more")
    data = words + run + b"==\n" + words + b"QUJD" + run + words[:-1] + run
    assert len(data) >= decoded.SPLIT_FROM
    finder = Base64Decoded(DETECTORS)
    with _run_reads(finder) as calls:
        found = finder.events(data)
    read = [len(c) for c in calls]
    assert found == finder._run.ends(data) and len(found) == 3
    assert len(read) == 3 and sum(read) < 3 * decoded.BLOCK + 3 * len(run) + 100
