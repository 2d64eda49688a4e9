"""Detectors: known secrets, pattern rules, detect-secrets' plugins, build arguments, entropy and
base64-decoded blobs, run over files and metadata by the content scanner (content.py).

The plaintext of a match never leaves this package: the content scanner turns every
:class:`~.interface.Match` into a redacted :class:`~scanner.models.Hit` (hash + preview).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..models import IN_DOCS_OR_TESTS
from .known_values import DEFAULT_MIN_LENGTH, KnownValue, SecretSpec, known_fingerprint, load_known_values

# The rules and the content scanner are imported (the built-in rules loaded) when first named,
# the detectors themselves (Hyperscan, the base64 decoder, the entropy and detect-secrets gates,
# their regexes) and their interface when a detector or a content scanner is made: a rescan whose
# layers all come from the cache needs the known values, not them (start-up time).
if TYPE_CHECKING:
    from .content import CHUNK_SIZE, ContentScanner, build_detectors, downgrade
    from .interface import Detector, DetectorError, Match
    from .known import KnownSecretsDetector
    from .rules import BUILTIN_RULES, Rule, RuleSet

_LATER = {
    **dict.fromkeys(("BUILTIN_RULES", "Rule", "RuleSet"), ".rules"),
    **dict.fromkeys(("CHUNK_SIZE", "ContentScanner", "build_detectors", "downgrade"), ".content"),
    **dict.fromkeys(("Detector", "DetectorError", "Match"), ".interface"),
    "KnownSecretsDetector": ".known",
}


def __getattr__(name: str) -> Any:
    if name not in _LATER:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_LATER[name], __name__), name)


__all__ = [
    "BUILTIN_RULES",
    "CHUNK_SIZE",
    "DEFAULT_MIN_LENGTH",
    "IN_DOCS_OR_TESTS",
    "ContentScanner",
    "Detector",
    "DetectorError",
    "KnownSecretsDetector",
    "KnownValue",
    "Match",
    "Rule",
    "RuleSet",
    "SecretSpec",
    "build_detectors",
    "downgrade",
    "known_fingerprint",
    "load_known_values",
]
