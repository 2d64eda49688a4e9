"""The allocator setting a scan makes (streams.tune_allocator): freed windows stay in the heap for
the next one, instead of going back to the kernel and coming back as fresh, zeroed pages."""

import platform
import subprocess
import sys

import pytest

# Three windows' worth of fresh 1 MiB copies, made and freed a hundred times: the shape of a scan,
# which holds a window, its carry and a decoded copy at once.
_CHURN = """
import resource, sys
from scanner.layers.streams import tune_allocator
if sys.argv[1] == "tuned":
    assert tune_allocator() is True
    assert tune_allocator() is True  # once per process; a second call changes nothing
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
block = b"x" * (1 << 20)
before = faults()
for _ in range(100):
    held = [block + b"%d" % i for i in range(3)]
    del held
print(faults() - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", _CHURN, mode], capture_output=True, text=True, check=True)
    return int(out.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt's thresholds are glibc's")
def test_freed_windows_are_reused_not_faulted_in_again() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    # tuned, only the first round's pages fault in (3 MiB: 768 pages); glibc's defaults give pages
    # back to the kernel round after round, how many depending on what the process allocated
    # before (its thresholds move with the frees it sees: 17,859 or 48,557 faults here, with the
    # same code importing one regular expression more or less)
    assert tuned < 3 * 256 + 256
    assert default > 10 * tuned


def test_the_walker_and_the_pool_tune_before_they_allocate() -> None:
    from scanner.detectors import ContentScanner, build_detectors
    from scanner.layers import parallel, walk
    from scanner.layers.nested import FileScanner
    from scanner.layers.streams import tune_allocator

    tune_allocator.cache_clear()
    walk.LayerWalker(ContentScanner(build_detectors([])))
    assert tune_allocator.cache_info().currsize == 1
    tune_allocator.cache_clear()
    with parallel.FilePool(FileScanner(ContentScanner(build_detectors([]))), 1):
        assert tune_allocator.cache_info().currsize == 1
