"""Report renderers, one module per format, chosen through :func:`renderer_for`."""

from __future__ import annotations

from typing import assert_never

from .interface import SCHEMA_VERSION, OutputFormat, Renderer
from .json import JsonRenderer, report_dict
from .table import TableRenderer, summary_line

__all__ = ["SCHEMA_VERSION", "OutputFormat", "Renderer", "renderer_for", "report_dict", "summary_line"]


def renderer_for(fmt: OutputFormat) -> Renderer:
    """The renderer of a format; the ones no run asked for are not imported (start-up time)."""
    if fmt is OutputFormat.TABLE:
        return TableRenderer()
    if fmt is OutputFormat.JSON:
        return JsonRenderer()
    if fmt is OutputFormat.SARIF:
        from .sarif import SarifRenderer

        return SarifRenderer()
    if fmt is OutputFormat.JUNIT:
        from .junit import JunitRenderer

        return JunitRenderer()
    if fmt is OutputFormat.GITLAB:
        from .gitlab import GitlabRenderer

        return GitlabRenderer()
    assert_never(fmt)
