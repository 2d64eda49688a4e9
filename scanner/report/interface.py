"""The report seam: a renderer turns a ScanReport into text.  One module per format."""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import StrEnum

from ..models import ScanReport

SCHEMA_VERSION = "1.3"  # 1.1: confidence, suppressed findings; 1.2: files_skipped[].limit;
# 1.3: also_matched, proven, downgraded_from, downgrade_reason, package, places


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
