"""The C allocator's policies (inference.malloc): flat RSS with inputs of varying size.

Cases that touch the allocator run in a fresh interpreter, since its policy is process-wide, and
read what the process holds from /proc/self/statm. The threshold probe frees one 16 MiB block
(glibc's dynamic threshold then rises to 16 MiB), then allocates, touches and frees an 8 MiB block.
"""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = [
    pytest.mark.requirement("REQ-PERF-003"),
    pytest.mark.skipif(
        sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's"
    ),
]

PROBE = """
import sys
import numpy as np
from inference.engine import InferenceEngine
from inference.settings import Settings

settings = Settings.from_env({"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none",
                              "MEDAI_MALLOC_MMAP_THRESHOLD": sys.argv[1]})
InferenceEngine(settings)  # applies the allocator policy, as every edge does at start-up

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

first = np.ones(16 << 20, np.uint8)
del first
before = rss()
second = np.ones(8 << 20, np.uint8)
del second
print((rss() - before) / (1 << 20))
"""


def kept_mib(threshold: str) -> float:
    out = subprocess.run([sys.executable, "-c", PROBE, threshold], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    return float(out.stdout.strip())


def test_glibc_default_keeps_a_freed_block_below_its_raised_threshold():
    # The control: without the setting the 8 MiB stays resident after it is freed.
    assert kept_mib("0") >= 7.5


def test_fixed_threshold_returns_a_freed_large_block():
    assert kept_mib("65536") < 0.5


def test_threshold_out_of_glibc_range_is_a_configuration_error():
    from inference.errors import ConfigurationError
    from inference.settings import Settings

    with pytest.raises(ConfigurationError, match="MEDAI_MALLOC_MMAP_THRESHOLD"):
        Settings.from_env({"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none",
                           "MEDAI_MALLOC_MMAP_THRESHOLD": str(64 << 20)})  # fmt: skip


class Recorder:
    """Stands in for malloc_trim: records each call and lets the test wait for it."""

    def __init__(self) -> None:
        import threading

        self.calls = 0
        self.called = threading.Event()

    def __call__(self) -> bool:
        self.calls += 1
        self.called.set()
        return True


def test_memory_is_returned_once_the_work_is_over():
    from inference.malloc import MemoryReturner

    recorder = Recorder()
    returner = MemoryReturner(idle_s=0.05, period_s=0, trimmer=recorder)
    returner.enter()
    returner.leave()
    assert recorder.called.wait(10)
    assert recorder.calls == 1


def test_nothing_is_returned_while_work_is_in_progress_without_a_period():
    from inference.malloc import MemoryReturner

    recorder = Recorder()
    returner = MemoryReturner(idle_s=0.01, period_s=0, trimmer=recorder)
    returner.enter()  # and never leaves
    assert not recorder.called.wait(0.5)
    returner.leave()
    assert recorder.called.wait(10)


def test_under_continuous_load_memory_is_returned_every_period():
    from inference.malloc import MemoryReturner

    recorder = Recorder()
    returner = MemoryReturner(idle_s=60, period_s=0.05, trimmer=recorder)
    returner.enter()  # busy from now on: only the period can trigger
    assert recorder.called.wait(10)
    recorder.called.clear()
    assert recorder.called.wait(10)  # and again, while still busy
    assert recorder.calls >= 2


def test_an_idle_process_that_did_nothing_is_left_alone():
    from inference.malloc import MemoryReturner

    recorder = Recorder()
    returner = MemoryReturner(idle_s=0.01, period_s=0.01, trimmer=recorder)
    returner.enter()
    returner.leave()
    assert recorder.called.wait(10)
    recorder.called.clear()
    assert not recorder.called.wait(0.3)  # no work since: no further trim


TRIM_PROBE = """
import sys, time
import numpy as np
from inference.engine import InferenceEngine
from inference.settings import Settings

settings = Settings.from_env({"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none",
                              "MEDAI_MEMORY_TRIM_IDLE_S": sys.argv[1]})
engine = InferenceEngine(settings)

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / (1 << 20)

first = np.ones(16 << 20, np.uint8)
del first  # glibc raises its mmap threshold to 16 MiB: what follows comes from the heap
engine.memory.enter()
blocks, pins = [], []
for size in range(1, 41):  # 40 blocks of 1..3 MiB, each followed by a small block that stays
    blocks.append(np.ones((1 + size % 3) << 20, np.uint8))
    pins.append(bytearray(4096))
held = rss()
del blocks  # freed, but pinned inside the heap: only malloc_trim can give those pages back
engine.memory.leave()
deadline = time.monotonic() + (10 if engine.memory.enabled else 0.5)
while engine.memory.trims == 0 and time.monotonic() < deadline:
    time.sleep(0.01)
print(rss(), engine.memory.trims)
"""


def at_rest(idle_s: str) -> tuple[float, int]:
    run = subprocess.run([sys.executable, "-c", TRIM_PROBE, idle_s], cwd=ROOT, capture_output=True, text=True,
                         check=True)  # fmt: skip
    rss, trims = run.stdout.split()
    return float(rss), int(trims)


def test_an_engine_at_rest_gives_freed_memory_back():
    kept, never = at_rest("0")  # the control: trimming off, the heaps keep what the threads freed
    returned, trims = at_rest("0.05")
    assert (never, trims) == (0, 1)
    assert kept - returned > 8  # MiB
