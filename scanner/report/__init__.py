"""Report renderers, one module per format, chosen through :func:`renderer_for`."""

from __future__ import annotations

from typing import assert_never

from .interface import SCHEMA_VERSION, OutputFormat, Renderer
from .json import JsonRenderer, report_dict
from .table import TableRenderer

__all__ = ["SCHEMA_VERSION", "OutputFormat", "Renderer", "renderer_for", "report_dict"]


def renderer_for(fmt: OutputFormat) -> Renderer:
    if fmt is OutputFormat.TABLE:
        return TableRenderer()
    if fmt is OutputFormat.JSON:
        return JsonRenderer()
    assert_never(fmt)
