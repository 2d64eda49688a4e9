"""The severity policy for a finding in a file, given who installed the file.

The detectors set a finding's severity from the rule and lower it for what the value or its place
shows on its own (detectors/__init__.py: a documented example or placeholder value, a
documentation or test file by directory or by name, a demo login, an expired token).  Here the
package managers' records in the image (provenance.py) add what only the whole image can tell.
Every downgrade is visible: the finding keeps ``downgraded_from`` and ``downgrade_reason``.

1. A known secret (``--secret``) is never downgraded, wherever it is: the user named it.
2. A token whose checksum proves its format (GitHub, npm) is a leak wherever it is, package or
   not: never downgraded.
3. A file that no package owns keeps the severity its rule gives: that is where a build writes what
   it leaks (an app directory, a home directory, /etc, a COPY'd file).
4. A file that a package installed and whose bytes still match the package's recorded checksum
   (dpkg's md5sums, pip's RECORD, apk's database) is what the package ships to everyone: a value
   in it is public, not a leak of this build.  Downgraded to low, with the package named.
5. A file whose bytes no longer match its package's record was changed after the package
   installed it: never downgraded (a downgrade for its documentation or test path is undone), and
   the change is said in the finding.
6. A file that a package owns but whose bytes cannot be checked (npm and Maven record no per-file
   checksum, pip none for compiled files: ``unverified``; only files held whole, up to 8 MiB, are
   hashed: ``unhashed``) is capped at medium: the package is a strong hint, not a proof, so it no
   longer fails a ``--fail-on high`` gate but is still reported above the documented examples.
"""

from __future__ import annotations

from typing import Any

from ..models import IN_DOCS_OR_TESTS, Hit, Package, Severity


def changes(hit: Hit, package: Package | None) -> dict[str, Any]:
    """What a finding of ``hit`` in a file ``package`` installed (None: no package) gets besides
    the hit's own fields: its package, and the severity that package's word justifies (with the
    description, confidence and downgrade that go with it).  The finding is made with them: none
    is copied to change it (a rescan makes hundreds)."""
    if package is None:
        return {}  # 3
    if hit.detector == "known-secret" or hit.proven:
        return {"package": package}  # 1, 2
    if package.state == "modified":  # 5
        found: dict[str, Any] = {"package": package}
        description = hit.description
        if hit.downgrade_reason == IN_DOCS_OR_TESTS and hit.downgraded_from is not None:
            description = description.replace(f" ({IN_DOCS_OR_TESTS}: downgraded)", "")
            found |= {
                "severity": hit.downgraded_from,
                "confidence": "medium",
                "downgraded_from": None,
                "downgrade_reason": None,
            }
        found["description"] = f"{description} (in a file changed after {_who(package)} installed it)"
        return found
    if package.state == "unmodified":  # 4
        return _lower(hit, package, Severity.LOW, f"shipped unmodified by {_who(package)}")
    why = "too large to hash" if package.state == "unhashed" else "not verifiable"
    return _lower(hit, package, Severity.MEDIUM, f"in a file of {_who(package)}, {why}")  # 6


def _who(package: Package) -> str:
    return f"{Package.MANAGERS.get(package.manager, package.manager)} {package.name} {package.version}".rstrip()


def _lower(hit: Hit, package: Package, to: Severity, reason: str) -> dict[str, Any]:
    if hit.severity.rank <= to.rank:
        return {"package": package}
    return {
        "package": package,
        "severity": to,
        "confidence": "low",
        "description": f"{hit.description} ({reason}: downgraded)",
        "downgraded_from": hit.downgraded_from or hit.severity,
        "downgrade_reason": reason,
    }
