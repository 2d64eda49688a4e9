"""Built-in pattern rules, as data, one module per family.

Each rule is written from the vendor's documented token format.  Hyperscan decides which
rules can match a window; ``keywords`` (lower-case literals, one of which must occur,
case-insensitively) gate instead the rules whose regex Hyperscan cannot compile, such as some
custom rules;
``group`` names the capture group holding the secret (0: the whole match).  ``sample`` and
``negative`` are templates the table tests expand with random characters (``{a36}``: 36 base62
characters, ``{h32}`` lower-case hex, ``{H32}`` upper-case hex, ``{d9}`` digits, ``{b40}`` base64,
``{u40}`` URL-safe base64, ``{l8}`` lower-case letters, ``{U16}`` upper-case letters and digits,
``{B16}`` base32, ``{uuid}``), so that no committed string looks like a live credential.
"""

from __future__ import annotations

from .cloud import CLOUD
from .code import CODE
from .keys import KEYS
from .model import Rule, RuleSet
from .saas import SAAS

BUILTIN_RULES: tuple[Rule, ...] = CLOUD + CODE + SAAS + KEYS

__all__ = ["BUILTIN_RULES", "Rule", "RuleSet"]
