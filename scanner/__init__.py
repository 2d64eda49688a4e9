"""leakscan: find build secrets and credentials leaked into container images.

The package's names (:func:`scan_image`, :class:`ScanOptions` and the report's models) are
imported when first used, not with the package: ``leakscan`` (:func:`main`) imports its modules
with the cyclic garbage collector off.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .engine import ScanOptions, scan_image
    from .models import Finding, ImageReport, LayerReport, ScanReport

_EXPORTS = {
    "ScanOptions": "engine",
    "scan_image": "engine",
    "Finding": "models",
    "ImageReport": "models",
    "LayerReport": "models",
    "ScanReport": "models",
}

__all__ = ["Finding", "ImageReport", "LayerReport", "ScanOptions", "ScanReport", "__version__", "main", "scan_image"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    found = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = found  # the next lookup is an ordinary one
    return found


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


def main() -> None:
    """The ``leakscan`` program (and ``python -m scanner``): :func:`scanner.cli.run`, imported with
    the cyclic garbage collector off, whose objects (the modules' classes, functions and tables,
    there for the whole run) are then set aside for good (``gc.freeze``) rather than traversed by
    every later collection: 4-5 ms of a 100 ms rescan from the cache (docs/performance.md).  The
    collector is on again for the scan itself."""
    import gc

    gc.disable()
    try:
        from .cli import run
    finally:
        gc.freeze()
        gc.enable()
    run()
