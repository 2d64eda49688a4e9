"""detect-secrets' plugins are imported with a stand-in for ``requests`` (its HTTP client, used only
to verify secrets with their vendors): the scan's start-up skips that import, the plugins find what
they found before, their network calls raise, and any later import of ``requests`` is the real one.
Each case runs in a fresh interpreter: this test session may have imported ``requests`` already."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_FIRST = """
import sys
from scanner.detectors import ContentScanner, build_detectors
scanner = ContentScanner(build_detectors([]))
assert "requests" not in sys.modules, "the real requests was imported"
hits = scanner.scan_bytes(b"a\\ncloudant_password='" + b"0123456789abcdef" * 4 + b"'\\nb\\n")
assert "ds-cloudant" in {h.rule_id for h in hits}, hits
import detect_secrets.plugins.cloudant as cloudant
try:
    cloudant.requests.get("http://127.0.0.1:9/")
except OSError as exc:
    assert "does not verify" in str(exc)
else:
    raise AssertionError("a plugin's network call went through")
import requests
assert hasattr(requests, "Session") and sys.modules["requests"] is requests
assert cloudant.requests.Session is requests.Session  # anything else comes from the real package
print("ok")
"""

_AFTER_REQUESTS = """
import sys
import requests
from scanner.detectors import build_detectors
build_detectors([])
import detect_secrets.plugins.cloudant as cloudant
assert cloudant.requests is requests is sys.modules["requests"]
print("ok")
"""


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_plugins_load_without_requests_and_still_find_their_secrets() -> None:
    assert _run(_FIRST) == "ok"


def test_a_real_requests_imported_before_is_left_alone() -> None:
    assert _run(_AFTER_REQUESTS) == "ok"


_WITH_A_THREAD = """
import sys, threading
stop = threading.Event()
threading.Thread(target=stop.wait, daemon=True).start()
from scanner.detectors import build_detectors
build_detectors([])
import detect_secrets.plugins.cloudant as cloudant
assert cloudant.requests is sys.modules["requests"] and hasattr(cloudant.requests, "Session")
stop.set()
print("ok")
"""


def test_a_process_with_other_threads_imports_the_real_requests() -> None:
    """Another thread could import a package of requests (requests.adapters, say) while the
    stand-in is in sys.modules; with more than one thread the plugins get the real package."""
    assert _run(_WITH_A_THREAD) == "ok"
