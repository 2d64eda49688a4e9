"""Report renderers, one module per format, chosen through :func:`renderer_for`."""

from __future__ import annotations

from typing import assert_never

from .gitlab import GitlabRenderer
from .interface import SCHEMA_VERSION, OutputFormat, Renderer
from .json import JsonRenderer, report_dict
from .junit import JunitRenderer
from .sarif import SarifRenderer
from .table import TableRenderer, summary_line

__all__ = ["SCHEMA_VERSION", "OutputFormat", "Renderer", "renderer_for", "report_dict", "summary_line"]


def renderer_for(fmt: OutputFormat) -> Renderer:
    if fmt is OutputFormat.TABLE:
        return TableRenderer()
    if fmt is OutputFormat.JSON:
        return JsonRenderer()
    if fmt is OutputFormat.SARIF:
        return SarifRenderer()
    if fmt is OutputFormat.JUNIT:
        return JunitRenderer()
    if fmt is OutputFormat.GITLAB:
        return GitlabRenderer()
    assert_never(fmt)
