"""Example and placeholder values: reported, but downgraded to low severity and low confidence.

Documentation and test fixtures are full of vendors' published example credentials
(``AKIAIOSFODNN7EXAMPLE``) and obvious placeholders (``xxxxxxxx``, ``your-token-here``).  They are
not dropped: an "example" that works is still a leak, and the user decides.
"""

from __future__ import annotations

import re

# published in vendors' own documentation as examples
DOCUMENTED_EXAMPLES = frozenset(
    {
        b"AKIAIOSFODNN7EXAMPLE",
        b"AKIAI44QH8DHBEXAMPLE",
        b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        b"je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        b"sk_test_4eC39HqLyjWDarjtT1zdp7dc",
        b"sk_test_BQokikJOvBiI2HlWgH4olfQ2",
        b"rk_test_4eC39HqLyjWDarjtT1zdp7dc",
    }
)
_WORDS = re.compile(
    rb"example|sample|dummy|placeholder|changeme|change_me|your[_\-]?(?:token|key|secret|password|api)|"
    rb"xxxxxx|fake|not[_\-]?a[_\-]?real|notreal|redacted|insert[_\-]?here|replace[_\-]?me",
    re.IGNORECASE,
)
_SEQUENCES = (b"0123456789", b"1234567890", b"abcdefghij", b"ABCDEFGHIJ", b"qwertyuiop")


def is_example(value: bytes) -> bool:
    if value in DOCUMENTED_EXAMPLES or _WORDS.search(value):
        return True
    if any(seq in value for seq in _SEQUENCES):
        return True
    return len(value) >= 16 and len(set(value)) < 6  # "0000000000000000", "abababababababab"


# documentation, examples and tests, as packaged in images: credentials there are documented
# samples far more often than leaks (and are still reported, at low severity)
_DOCS_OR_TESTS = re.compile(
    r"(?:^|/)(?:usr/share/(?:doc|man|info|gtk-doc|help)|(?:[^/]*[-_.])?(?:docs?|examples?|samples?|tests?|testing|testdata|"
    r"test_data|fixtures?|__tests__|spec|specs|demo|demos)(?:[-_.][^/]*)?)/"
    r"|(?:^|/)[^/]*examples?[-_.][^/]*$|\.(?:md|rst|adoc|html?|ipynb|1|3|5|7|8)(?:\.gz)?(?:!/|$)",
    re.IGNORECASE,
)


def in_docs_or_tests(path: str) -> bool:
    return bool(_DOCS_OR_TESTS.search(path))
