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
    rb"^your[_\-]|[_\-]here$|^(?:enter|put|paste|insert)[_\-]|"
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
# samples far more often than leaks (and are still reported, at low severity).  By directory
# (usr/share/doc, docs/, examples/, tests/, fixtures/, __tests__/, man pages' own directories) and
# by the names test runners and documentation tools give files: test_x.py, x_test.py, conftest.py,
# test.js, x.test.ts, x.spec.js, x_test.go, XTest.java, x_spec.rb, README.md, x.rst, x.example,
# .env.sample.  A version number is not a man-page section: libgnutls.so.30.34.3 is a library.
_DIRS = (
    r"usr/share/(?:doc|man|info|gtk-doc|help)/"
    r"|(?:[^/]*[-_.])?(?:docs?|examples?|samples?|tests?|testing|testdata|test_data|fixtures?|__tests__|__mocks__|"
    r"spec|specs|demo|demos)(?:[-_.][^/]*)?/"
    r"|man/man[1-9][a-z]*/|man[1-9][a-z]*/[^/]+\.[1-9][a-z]*(?:\.gz)?(?:!/|$)"
)
_NAMES = (
    r"(?:test_[^/]*|[^/]*_tests?|conftest|tests?)\.py[ic]?"  # pytest, unittest
    r"|(?:test_[^/]*|[^/]*_tests?)\.cpython-\d+(?:\.opt-\d)?\.pyc"  # their __pycache__ copies
    r"|[^/]*[._\-](?:test|tests|spec|specs|e2e)\.[cm]?[jt]sx?|tests?\.[cm]?[jt]sx?"  # jest, mocha, vitest
    r"|[^/]*_test\.(?:go|rb|exs?|dart|rs|cc|cpp|c)|test_[^/]*\.rb|[^/]*_spec\.rb"
    r"|[^/]*(?:Test|Tests|IT|Spec)\.(?:java|kt|scala|groovy|class|cs)"
    r"|[^/]*examples?[-_.][^/]*|[^/]*\.(?:example|sample|dist|template|tmpl)"
    r"|[^/]*\.(?:md|markdown|rst|adoc|txt\.example|html?|ipynb)(?:\.gz)?"
)
_DOCS_OR_TESTS = re.compile(rf"(?:^|/|!/)(?:{_DIRS})|(?:^|/|!/)(?:{_NAMES})(?:!/|$)", re.IGNORECASE)


def in_docs_or_tests(path: str) -> bool:
    return bool(_DOCS_OR_TESTS.search(path))
