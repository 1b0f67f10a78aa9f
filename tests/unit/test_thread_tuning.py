"""onnxruntime thread tuning: a lone request gets every core, concurrent ones one core each.

These check the configuration and the choice of session, with real onnxruntime sessions; how much
it gains is measured by the benchmark suite (bench/), never here.
"""

from __future__ import annotations

import asyncio
import threading

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
    assert (_threads(model.session), _threads(model.concurrent_session)) == (2, 1)
    for session in (model.session, model.concurrent_session):
        assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    single = make_engine(MEDAI_MODELS="light-squeezenet", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="0")
    assert single.registry.get("light-squeezenet").concurrent_session is None


def test_spinning_is_a_setting():
    engine = make_engine(MEDAI_MODELS="identity-gray", MEDAI_ORT_ALLOW_SPINNING="true")
    session = engine.registry.get("identity-gray").session
    assert session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "1"


def test_both_sessions_give_the_same_answer():
    engine = make_engine(
        MEDAI_MODELS="light-squeezenet", MEDAI_ORT_INTRA_OP_THREADS="2", MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS="1"
    )
    model = engine.registry.get("light-squeezenet")
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
