"""leakscan: find build secrets and credentials leaked into container images."""

from __future__ import annotations

__version__ = "0.1.0"

from .engine import ScanOptions, scan_image
from .models import Finding, ImageReport, LayerReport, ScanReport

__all__ = ["Finding", "ImageReport", "LayerReport", "ScanOptions", "ScanReport", "__version__", "scan_image"]
