"""The detector seam: one small interface, its match type and its error base.

A detector looks at a window of bytes and yields :class:`Match` objects.  A ``Match`` holds the
plaintext of what it matched, so it never leaves this package: :class:`~scanner.detectors.ContentScanner`
turns it into a redacted :class:`~scanner.models.Hit` straight away.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..errors import LeakscanError
from ..models import IN_DOCS_OR_TESTS, Severity

__all__ = ["IN_DOCS_OR_TESTS", "Detector", "DetectorError", "Match"]  # IN_DOCS_OR_TESTS: scanner.models'


class DetectorError(LeakscanError):
    """A detector could not be set up (bad rule, bad known secret)."""


@dataclass(frozen=True, slots=True)
class Match:
    """What a detector found in a window of bytes, with its plaintext (never shown)."""

    rule_id: str
    severity: Severity
    description: str
    start: int
    end: int
    secret: bytes  # the value as the user knows it (decoded for known secrets)
    secret_id: str | None = None
    encoding: str | None = None
    confidence: str = "high"  # high: exact or checksum-proven; medium: format in context; low: heuristics
    proven: bool = False  # a checksum in the value proves the vendor's format
    downgrade: str | None = None  # why this match is weaker than its rule says (a demo login, expired)

    def __repr__(self) -> str:  # never show the plaintext, even in a traceback or a debugger
        return f"Match(rule_id={self.rule_id!r}, start={self.start}, end={self.end}, secret=<redacted>)"


class Detector(ABC):
    """Finds secrets in a window of bytes.

    ``max_match_len`` bounds the length of one match; the content scanner overlaps consecutive
    windows by at least that much so that a match spanning a chunk boundary is still found.
    """

    name: str = ""
    max_match_len: int = 1024

    @abstractmethod
    def find(self, data: bytes, path: str | None = None) -> Iterator[Match]:
        """Yield every match in ``data``; ``path`` is the file's path in the image, if any."""

    def expressions(self) -> Sequence[tuple[bytes, int]]:
        """Hyperscan expressions (and flags) for the content scanner's one shared pass over a
        window; their events come back to :meth:`find_events`.  None: the detector reads alone."""
        return ()

    def find_events(self, data: bytes, path: str | None, events: list[tuple[int, int, int]]) -> Iterator[Match]:
        """:meth:`find`, given the events of :meth:`expressions` in ``data`` (index, start, end)."""
        return self.find(data, path)
