"""The start-up policies of the two entry points (``service/startup.py``), in fresh interpreters.

Each case runs a new Python process, since the policies are meant for a process that has not
imported numpy yet: the Functions worker importing ``function_app``, and the local server's
``service.local.app``. What they report comes from the interpreter (``gc``) and from OpenBLAS
itself (its ``get_num_threads``, found in the loaded library as threadpoolctl does).
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs our own probe with the test interpreter
import sys

import pytest

from tests.conftest import DEFAULT_MODELS, LOCAL_ENV, ROOT

_PROBE = """
import ctypes, gc, json, os, sys

def openblas_threads():
    paths = {line.split()[-1] for line in open("/proc/self/maps") if "openblas" in line.lower()}
    for path in paths:
        library = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads"):
            function = getattr(library, name, None)
            if function is not None:
                return function()
    return None

if sys.argv[2] == "numpy-first":
    import numpy
gc_enabled_before = gc.isenabled()
if sys.argv[1] == "function_app":
    import function_app
    function_app.engine.registry.wait_loaded(60)
else:
    import service.local
    service.local.app().state.service.engine.registry.wait_loaded(60)
import numpy
print(json.dumps({
    "gc_enabled_before": gc_enabled_before,
    "gc_enabled": gc.isenabled(),
    "frozen": gc.get_freeze_count(),
    "tracked": len(gc.get_objects()),
    "openblas_env": os.environ.get("OPENBLAS_NUM_THREADS"),
    "openblas_threads": openblas_threads(),
}))
"""


def probe(entry: str, order: str, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    env.update(LOCAL_ENV, MEDAI_MODELS_DIR=str(DEFAULT_MODELS), **extra)
    done = subprocess.run(  # nosec B603  # our own probe, fixed arguments, no shell
        [sys.executable, "-c", _PROBE, entry, order], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.requirement("REQ-PERF-007")
@pytest.mark.parametrize("entry", ["function_app", "service.local"])
def test_a_fresh_worker_freezes_what_start_up_built_and_collects_again_afterwards(entry):
    seen = probe(entry, "fresh")
    assert seen["gc_enabled_before"] and seen["gc_enabled"]  # paused during start-up only
    # Start-up's objects are in the permanent generation: most of what the collector tracks.
    assert seen["frozen"] > 50_000
    assert seen["frozen"] > seen["tracked"]
    assert seen["openblas_env"] == "1"
    assert seen["openblas_threads"] == 1


@pytest.mark.requirement("REQ-PERF-007")
def test_an_operator_setting_for_openblas_is_kept():
    seen = probe("service.local", "fresh", OPENBLAS_NUM_THREADS="2")
    assert seen["openblas_env"] == "2" and seen["openblas_threads"] == 2


@pytest.mark.requirement("REQ-PERF-007")
@pytest.mark.parametrize("entry", ["function_app", "service.local"])
def test_a_process_that_imported_numpy_first_keeps_its_own_settings(entry):
    """A test run or a notebook importing the entry point: nothing frozen, OpenBLAS as it was."""
    seen = probe(entry, "numpy-first")
    assert seen["gc_enabled"] and seen["frozen"] == 0
    assert seen["openblas_env"] is None
    assert seen["openblas_threads"] == seen_default_openblas_threads()


def seen_default_openblas_threads() -> int:
    """What OpenBLAS chooses on this machine with no setting (its own default, from a bare numpy)."""
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    code = _PROBE.split("if sys.argv[2]")[0] + "import numpy\nprint(openblas_threads())\n"
    done = subprocess.run(  # nosec B603  # our own probe, fixed arguments, no shell
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


_FAILING_IMPORT = """
import gc, sys
sys.modules["azurefunctions.extensions.bindings.blob"] = None  # its import now raises ImportError
try:
    import function_app
except ImportError:
    pass
else:
    raise SystemExit("function_app imported")
print(gc.isenabled())
"""


@pytest.mark.requirement("REQ-PERF-007")
def test_a_failing_import_during_start_up_does_not_leave_the_collector_off():
    env = {**os.environ, **LOCAL_ENV, "MEDAI_MODELS_DIR": str(DEFAULT_MODELS)}
    done = subprocess.run(  # nosec B603  # our own probe, fixed arguments, no shell
        [sys.executable, "-c", _FAILING_IMPORT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "True"
