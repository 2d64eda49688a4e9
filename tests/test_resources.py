"""Resource exhaustion, each in its own process so that its peak memory is its own: a layer of a
million empty files, and a 4 GiB sparse file (GNU and PAX sparse formats, written by GNU tar)
whose only data, a token, sits 3 GB in.  Bounds here are generous sanity limits (the README
reports the measured figures), not benchmarks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.support.services import require

CHILD = textwrap.dedent(
    """
    import json, re, sys, time
    from scanner.detectors import ContentScanner, build_detectors
    from scanner.layers.walk import LayerWalker
    start = time.monotonic()
    with open(sys.argv[1], "rb") as fh:
        scan = LayerWalker(ContentScanner(build_detectors([]))).walk(fh)
    print(json.dumps({
        "seconds": time.monotonic() - start,
        # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the forking (pytest) process
        "rss_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) / 1024,
        "error": scan.error,
        "entries": len(scan.entries),
        "sizes": [e.size for e in scan.entries[:2]],
        "hits": sorted({h.rule_id for f in scan.files for h in f.hits}),
        "skips": [s.reason for s in scan.skips],
    }))
    """
)


def walk_in_child(layer: Path) -> dict[str, object]:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(layer)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result: dict[str, object] = json.loads(proc.stdout)
    print(layer.name, {k: v for k, v in result.items() if k in ("seconds", "rss_mb")})
    return result


def test_a_million_empty_files(tmp_path: Path) -> None:
    import tarfile

    layer = tmp_path / "million.tar"
    with tarfile.open(layer, "w", format=tarfile.GNU_FORMAT) as tar:
        for i in range(1_000_000):
            tar.addfile(tarfile.TarInfo(f"d{i % 1000}/{i}"))
    result = walk_in_child(layer)
    assert result["error"] is None and result["entries"] == 1_000_000
    assert result["rss_mb"] < 300  # type: ignore[operator]  (620 MB before tarfile's member list was cleared)


@pytest.mark.parametrize("fmt", ["gnu", "posix"])
def test_a_4gib_sparse_file_is_read_whole_in_bounded_memory(tmp_path: Path, fmt: str) -> None:
    require("GNU tar", shutil.which("tar") is not None, "tar is not installed")
    image = tmp_path / "disk.img"
    with image.open("wb") as fh:
        fh.truncate(4 << 30)  # a hole: no disk space used
        fh.seek(3_000_000_000)
        fh.write(b"token=ghp_" + b"Zq8w" * 9 + b"\n")
    layer = tmp_path / f"sparse-{fmt}.tar"
    subprocess.run(
        ["tar", "--sparse", f"--format={fmt}", "-cf", str(layer), "-C", str(tmp_path), "disk.img"], check=True
    )
    assert layer.stat().st_size < 1 << 20  # the layer holds only the data, not 4 GiB
    result = walk_in_child(layer)
    assert result["error"] is None and result["sizes"] == [4 << 30]
    assert result["hits"] == ["github-token"]  # found 3 GB into the file
    assert result["rss_mb"] < 200  # type: ignore[operator]
