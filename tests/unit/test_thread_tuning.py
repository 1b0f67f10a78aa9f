"""onnxruntime thread tuning: a lone request gets every core, concurrent ones one core each.

These check the configuration and the choice of session, with real onnxruntime sessions; how much
it gains is measured by the benchmark suite (bench/), never here.
"""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from inference.engine import PredictOptions
from inference.models import concurrent_threads
from service.runner import InferenceRunner
from tests.conftest import make_engine, make_settings, read_input

pytestmark = pytest.mark.requirement("REQ-PERF-005")


def _threads(session) -> int:
    return session.get_session_options().intra_op_num_threads


def test_a_second_session_only_when_the_thread_counts_differ():
    runtime = make_settings(MEDAI_ORT_INTRA_OP_THREADS="2", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1").runtime
    assert concurrent_threads(runtime) == 1
    same = make_settings(MEDAI_ORT_INTRA_OP_THREADS="1", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1").runtime
    assert concurrent_threads(same) is None
    off = make_settings(MEDAI_ORT_INTRA_OP_THREADS="2", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="0").runtime
    assert concurrent_threads(off) is None

    engine = make_engine(
        MEDAI_MODELS="light-squeezenet", MEDAI_ORT_INTRA_OP_THREADS="2", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1"
    )
    model = engine.registry.get("light-squeezenet")
    assert model.concurrent_session is None  # built on first concurrency, never during start-up
    model.run(model._zeros(), concurrent=True)  # uses the first session and starts building the second
    deadline = time.monotonic() + 60
    while model.concurrent_session is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (_threads(model.session), _threads(model.concurrent_session)) == (2, 1)
    spinning = [s.get_session_options().get_session_config_entry("session.intra_op.allow_spinning")
                for s in (model.session, model.concurrent_session)]  # fmt: skip
    assert spinning == ["1", "0"]  # the lone run's pool thread spins; the one-thread session has none
    single = make_engine(MEDAI_MODELS="light-squeezenet", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="0")
    assert single.registry.get("light-squeezenet").concurrent_session is None


def test_spinning_is_a_setting():
    engine = make_engine(MEDAI_MODELS="identity-gray", MEDAI_ORT_INTRA_OP_THREADS="2", MEDAI_ORT_ALLOW_SPINNING="false")
    session = engine.registry.get("identity-gray").session
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_both_sessions_give_the_same_answer():
    engine = make_engine(
        MEDAI_MODELS="light-squeezenet", MEDAI_ORT_INTRA_OP_THREADS="2", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1"
    )
    model = engine.registry.get("light-squeezenet")
    model.add_concurrent_session(engine.settings.runtime)
    tensor = engine.prepare("light-squeezenet", read_input("real_fundus_retina.jpg")).first.tensor
    lone, shared = model.run(tensor), model.run(tensor, concurrent=True)
    assert lone.keys() == shared.keys()
    for name in lone:
        np.testing.assert_allclose(lone[name], shared[name], rtol=1e-5, atol=1e-6)


def _probabilities(result) -> np.ndarray:
    top = result["predictions"][0]["top_k"]
    return np.array([(c["index"], c["probability"]) for c in top])


class _Counting:
    """Wraps a real session and counts its runs per thread count (the session still runs)."""

    def __init__(self, session, seen: list[int]) -> None:
        self._session, self._seen, self._lock = session, seen, threading.Lock()

    def run(self, *args, **kwargs):
        with self._lock:
            self._seen.append(_threads(self._session))
        return self._session.run(*args, **kwargs)


def test_the_runner_uses_the_concurrent_session_only_when_others_are_in_the_instance():
    engine = make_engine(
        MEDAI_MODELS="light-squeezenet",
        MEDAI_ORT_INTRA_OP_THREADS="2",
        MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1",
        MEDAI_MAX_IN_FLIGHT="1",
    )
    model = engine.registry.get("light-squeezenet")
    model.add_concurrent_session(engine.settings.runtime)
    seen: list[int] = []
    model.session = _Counting(model.session, seen)
    model.concurrent_session = _Counting(model.concurrent_session, seen)
    runner = InferenceRunner(engine)
    body = read_input("real_fundus_retina.jpg")
    expected = _probabilities(engine.predict("light-squeezenet", body))
    seen.clear()

    async def one():
        return await runner.predict(
            "light-squeezenet", body, media_type_hint=None, options=PredictOptions(), request_id="r"
        )

    async def many(n: int):
        return await asyncio.gather(*[one() for _ in range(n)])

    try:
        [alone] = asyncio.run(many(1))
        assert seen == [2]  # alone: every core
        seen.clear()
        results = asyncio.run(many(6))
    finally:
        runner.shutdown()
    assert 1 in seen  # with six in the instance, runs took one core each
    for result in [alone, *results]:
        np.testing.assert_allclose(_probabilities(result), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.requirement("REQ-PERF-007")
@pytest.mark.parametrize("name,cached", [("syn-seg-dynamic-gray-nchw", True), ("light-squeezenet", False)])
def test_optimised_graph_cache_is_filled_reused_and_rebuilt_when_damaged(tmp_path, name, cached):
    """light-squeezenet (IR 3) serialises with extra graph inputs: it must be served uncached, correctly."""
    cache = tmp_path / "ort-cache"
    body = read_input("real_fundus_microaneurysms_L.png")
    reference = make_engine(MEDAI_MODELS=name).predict(name, body)["predictions"]

    def engine():
        return make_engine(MEDAI_MODELS=name, MEDAI_ORT_OPTIMIZED_MODEL_DIR=str(cache))

    first = engine()
    assert first.predict(name, body)["predictions"] == reference
    assert not list(cache.glob("*.partial"))
    if not cached:
        assert first.registry.get(name).graph_path is None and list(cache.glob("*.uncacheable"))
        assert engine().registry.get(name).graph_path is None and not list(cache.glob("*.onnx"))
        assert engine().predict(name, body)["predictions"] == reference
        return
    [graph] = cache.glob("*.onnx")
    assert graph.name.startswith(f"{name}-") and first.registry.get(name).graph_path == graph
    written = graph.stat().st_mtime_ns

    second = engine()
    model = second.registry.get(name)
    assert graph.stat().st_mtime_ns == written  # read, not rewritten
    assert model.session.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"
    assert second.predict(name, body)["predictions"] == reference

    graph.write_bytes(b"not a graph")  # a damaged entry is rebuilt from the verified model
    assert engine().predict(name, body)["predictions"] == reference
    assert graph.stat().st_size > 1000


_STARTUP_PROBE = """
import sys, time
from inference import models

seen = {}
original = models.ModelRegistry.start

def start(self, *args, **kwargs):
    seen.setdefault("fastapi_imported_when_loading_began", "fastapi" in sys.modules)
    seen.setdefault("functions_imported_when_loading_began", "azure.functions" in sys.modules)
    return original(self, *args, **kwargs)

models.ModelRegistry.start = start

import security.phi as phi  # the PHI hashing key comes from Key Vault in Azure: a round trip
real_instance_ref = phi.make_instance_ref

def make_instance_ref(*args, **kwargs):
    seen.setdefault("loading_began_before_the_phi_key_was_fetched", "fastapi_imported_when_loading_began" in seen)
    return real_instance_ref(*args, **kwargs)

phi.make_instance_ref = make_instance_ref
if sys.argv[1] == "function_app":
    import function_app
    application = function_app.asgi_app
else:
    import service.local
    seen["fastapi_imported_by_service_local"] = "fastapi" in sys.modules
    application = service.local.app()
engine = application.state.service.engine
engine.registry.wait_loaded(60)
seen["ready"] = engine.registry.ready
seen["pydicom_right_after_loading"] = "pydicom" in sys.modules
deadline = time.monotonic() + 60
while "pydicom" not in sys.modules and time.monotonic() < deadline:
    time.sleep(0.05)
seen["pydicom_later"] = "pydicom" in sys.modules
print(seen)
"""


@pytest.mark.requirement("REQ-PERF-007")
@pytest.mark.parametrize("entry", ["service.local", "function_app"])
def test_both_entry_points_load_models_before_fetching_secrets_or_importing_fastapi(entry):
    import ast
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, TEST_MODELS

    env = {**os.environ, "MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none",
           "MEDAI_MODELS_DIR": str(TEST_MODELS), "MEDAI_MODELS": "identity-gray"}  # fmt: skip
    done = subprocess.run(  # noqa: S603 - our own code
        [sys.executable, "-c", _STARTUP_PROBE, entry], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    seen = ast.literal_eval(done.stdout.strip().splitlines()[-1])
    expected = {
        "fastapi_imported_when_loading_began": False,
        "functions_imported_when_loading_began": False,
        "loading_began_before_the_phi_key_was_fetched": True,
        "ready": True,
        "pydicom_right_after_loading": False,
        "pydicom_later": True,
    }
    if entry == "service.local":
        expected["fastapi_imported_by_service_local"] = False
    assert seen == expected


@pytest.mark.parametrize(
    "files,expected_quota",
    [
        ({"cpu.max": "200000 100000\n"}, 2.0),  # cgroup v2, cpu: 2
        ({"cpu.max": "150000 100000\n"}, 1.5),  # cpu: 1500m
        ({"cpu.max": "max 100000\n"}, None),  # no limit
        ({"cpu/cpu.cfs_quota_us": "50000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 0.5),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),  # v1, no limit
        ({}, None),  # no cgroup files (not Linux, or not mounted)
    ],
)
def test_cores_follow_the_cgroup_quota(tmp_path, files, expected_quota):
    import math
    import os

    from inference.cpu import available_cores, cgroup_quota

    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_quota(tmp_path) == expected_quota
    affinity = len(os.sched_getaffinity(0))
    expected = affinity if expected_quota is None else min(affinity, max(1, math.ceil(expected_quota)))
    assert available_cores(tmp_path) == expected


EXIT_DURING_BUILD = """
from tests.conftest import make_engine
engine = make_engine(MEDAI_MODELS="light-squeezenet", MEDAI_ORT_INTRA_OP_THREADS="2",
                     MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1")
model = engine.registry.get("light-squeezenet")
model.run(model._zeros(), concurrent=True)  # starts building the concurrent session on its thread
print("exiting while it builds", flush=True)  # and the interpreter exits at once
"""


def test_a_process_that_exits_while_the_concurrent_session_builds_exits_cleanly():
    import subprocess
    import sys

    from tests.conftest import ROOT

    for _ in range(3):
        run = subprocess.run([sys.executable, "-c", EXIT_DURING_BUILD], cwd=ROOT, capture_output=True, text=True)
        assert (run.returncode, "terminate called" in run.stderr) == (0, False), run.stderr[-500:]
