"""Built-in pattern rules, as data: one TOML file per vendor family in ``data/`` (see loader.py).

Each rule is written from the vendor's documented token format, and names its vendor and the
reference of that format.  Hyperscan decides which rules can match a window; ``keywords``
(lower-case literals, one of which must occur, case-insensitively) gate instead the rules whose
regex Hyperscan cannot compile, such as some custom rules; ``group`` names the capture group
holding the secret (0: the whole match).  ``examples`` and ``negatives`` are templates the table
tests expand with random characters (``{a36}``: 36 base62 characters, ``{h32}`` lower-case hex,
``{H32}`` upper-case hex, ``{d9}`` digits, ``{b40}`` base64, ``{u40}`` URL-safe base64, ``{l8}``
lower-case letters and digits, ``{U16}`` upper-case letters and digits, ``{B16}`` base32,
``{uuid}``), so that no committed string looks like a live credential.
"""

from __future__ import annotations

from typing import Any

from .model import Rule, RuleSet

BUILTIN_RULES: tuple[Rule, ...]  # loader.builtin_rules(), loaded when first named: a rescan from the cache needs none


def __getattr__(name: str) -> Any:
    if name == "BUILTIN_RULES":
        from .loader import builtin_rules

        return builtin_rules()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["BUILTIN_RULES", "Rule", "RuleSet"]
