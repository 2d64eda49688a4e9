"""The report seam: a renderer turns a ScanReport into text.  One module per format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from enum import StrEnum

from ..models import ScanReport

# 1.1: confidence, suppressed findings; 1.2: files_skipped[].limit; 2.0: secret_sha256 replaced by the keyed
# secret_fingerprint (a plain hash let readers test guesses), instruction/base_image/origin/remediation, dockerfile;
# also_matched, proven, downgraded_from, downgrade_reason, package (who installed the file), places
SCHEMA_VERSION = "2.0"


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    SARIF = "sarif"
    JUNIT = "junit"
    GITLAB = "gitlab"


class Renderer(ABC):
    @abstractmethod
    def render(self, report: ScanReport) -> str:
        """The whole report as text.  Must never contain secret plaintext (it has none to give)."""

    def pieces(self, report: ScanReport) -> Sequence[str]:
        """:meth:`render`'s text in pieces, joined when written (report.files.write_atomically):
        a format whose text is made of many (JSON's) need not join a copy of it first."""
        return [self.render(report)]
