"""Archives inside a layer: the time to scan the wheels bundled with this Python, printed as a
figure (not a timed test), with small members read whole (the default) and through the stream path.

    python benchmarks/nested.py

A wheel or a jar holds hundreds of small members; each is read whole and scanned as one window
when its header says it fits one (scanner.layers.nested.WHOLE_MEMBER), with the same results as the
stream path (tests/test_nested.py).
"""

from __future__ import annotations

import io
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scanner.detectors import ContentScanner, build_detectors  # noqa: E402
from scanner.layers import nested  # noqa: E402


def main() -> None:
    bundled = Path(os.path.dirname(os.__file__)) / "ensurepip" / "_bundled"
    wheels = [p.read_bytes() for p in sorted(bundled.glob("*.whl"))]
    if not wheels:
        sys.exit(f"no wheels in {bundled}")
    files = nested.FileScanner(ContentScanner(build_detectors([])))

    def run() -> tuple[float, int]:
        start = time.perf_counter()
        count = 0
        for wheel in wheels:
            count += files.scan(io.BytesIO(wheel), "site-packages/x.whl", len(wheel))[2]
        return time.perf_counter() - start, count

    run()  # warm up: compile and load the databases
    whole_member = nested.WHOLE_MEMBER
    best = {}
    for mode in ("whole", "stream") * 3:
        nested.WHOLE_MEMBER = whole_member if mode == "whole" else -1
        took, count = run()
        best[mode] = min(best.get(mode, took), took)
    size = sum(len(w) for w in wheels) / 1e6
    print(f"{len(wheels)} wheels, {size:.1f} MB compressed, {count} members scanned (best of 3):")
    print(f"  small members read whole: {best['whole']:.3f} s")
    print(f"  every member streamed:    {best['stream']:.3f} s")


if __name__ == "__main__":
    main()
