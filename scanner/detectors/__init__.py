"""Detectors: known secrets, pattern rules, detect-secrets' plugins, build arguments, entropy and
base64-decoded blobs, run over files and metadata by the content scanner (content.py).

The plaintext of a match never leaves this package: the content scanner turns every
:class:`~.interface.Match` into a redacted :class:`~scanner.models.Hit` (hash + preview).
"""

from __future__ import annotations

from .content import CHUNK_SIZE, IN_DOCS_OR_TESTS, ContentScanner, build_detectors, downgrade
from .interface import Detector, DetectorError, Match
from .known import (
    DEFAULT_MIN_LENGTH,
    KnownSecretsDetector,
    KnownValue,
    SecretSpec,
    known_fingerprint,
    load_known_values,
)
from .rules import BUILTIN_RULES, Rule, RuleSet

# The detectors themselves (Hyperscan, the base64 decoder, the entropy and detect-secrets gates,
# their regexes) are imported when a detector or a content scanner is made: a rescan whose layers
# all come from the cache needs the rules and the known values, not them (start-up time).

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
