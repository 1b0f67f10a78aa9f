"""The HTTP path's runner: bounded admission, queue timeout, and optional micro-batching."""

from __future__ import annotations

import pytest

import asyncio

import numpy as np

from inference.engine import InferenceEngine, PredictOptions
from inference.errors import Overloaded
from service.runner import InferenceRunner
from tests.conftest import make_engine, make_settings, read_input
from tests.helpers import class_counts, output_tensor


async def many(runner: InferenceRunner, model: str, bodies: list[bytes]):
    return await asyncio.gather(
        *[
            runner.predict(model, body, media_type_hint=None, options=PredictOptions(), request_id=f"r{i}")
            for i, body in enumerate(bodies)
        ],
        return_exceptions=True,
    )


@pytest.mark.requirement("REQ-PERF-004")
def test_micro_batches_give_the_same_answers_as_single_runs():
    engine = make_engine(MEDAI_MAX_BATCH="4", MEDAI_MAX_BATCH_DELAY_MS="500")
    runner = InferenceRunner(engine)
    assert engine.registry.get("syn-seg-dynamic-gray-nchw").batchable
    bodies = [read_input(n) for n in ("real_fundus_microaneurysms_L.png",) * 2 + ("gray_ok_64.jpg",) * 2]
    try:
        results = asyncio.run(many(runner, "syn-seg-dynamic-gray-nchw", bodies))
    finally:
        runner.shutdown()
    batch_sizes = [r["timing_ms"]["batch_size"] for r in results]
    assert batch_sizes == [2, 2, 2, 2]  # two shapes, two batches of two
    single = make_engine()
    for body, result in zip(bodies, results):
        assert class_counts(result) == class_counts(single.predict("syn-seg-dynamic-gray-nchw", body))


@pytest.mark.requirement("REQ-PERF-004")
def test_models_without_a_dynamic_batch_axis_run_alone():
    engine = make_engine(MEDAI_MAX_BATCH="4", MEDAI_MAX_BATCH_DELAY_MS="200")
    assert not engine.registry.get("light-squeezenet").batchable  # fixed N = 1
    assert not engine.registry.get("zipmap-classifier").batchable  # a sequence output cannot be split
    runner = InferenceRunner(engine)
    try:
        results = asyncio.run(many(runner, "ort-dataset-mul-1", [read_input("gray_ok_64.jpg")] * 3))
    finally:
        runner.shutdown()
    assert all("batch_size" not in r["timing_ms"] for r in results)
    assert all(output_tensor(r).shape == (3, 2) for r in results)


@pytest.mark.requirement("REQ-PERF-001")
def test_admission_refuses_beyond_capacity_with_retry_after():
    engine = make_engine(MEDAI_MAX_IN_FLIGHT="1", MEDAI_MAX_QUEUE="1")
    runner = InferenceRunner(engine)
    assert runner.capacity == 2
    try:
        results = asyncio.run(many(runner, "light-squeezenet", [read_input("real_fundus_retina.jpg")] * 6))
    finally:
        runner.shutdown()
    refused = [r for r in results if isinstance(r, Overloaded)]
    served = [r for r in results if isinstance(r, dict)]
    assert len(served) >= 2 and len(refused) >= 1 and len(served) + len(refused) == 6
    assert all(r.status == 503 and r.retry_after >= 1 for r in refused)
    assert runner.in_system == 0


@pytest.mark.requirement("REQ-PERF-001")
def test_a_request_that_waited_too_long_is_refused_not_run():
    engine = make_engine(MEDAI_QUEUE_TIMEOUT_S="0")
    runner = InferenceRunner(engine)
    try:
        [result] = asyncio.run(many(runner, "identity-gray", [read_input("gray_ok_64.jpg")]))
    finally:
        runner.shutdown()
    assert isinstance(result, Overloaded) and "waited" in result.detail


@pytest.mark.requirement("REQ-PERF-004")
def test_execute_batch_splits_outputs_back_per_image():
    import io

    from PIL import Image

    def png(seed: int) -> bytes:
        pixels = np.random.default_rng(seed).integers(0, 256, (32, 48), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "L").save(buffer, format="PNG")
        return buffer.getvalue()

    engine: InferenceEngine = make_engine()
    bodies = [png(1), png(2), png(3)]
    done = engine.execute_batch([engine.prepare("identity-gray", body) for body in bodies])
    for body, job in zip(bodies, done):
        np.testing.assert_array_equal(
            output_tensor(engine.result(job)), output_tensor(engine.predict("identity-gray", body))
        )
        assert job.timings["batch_size"] == 3
    assert make_settings(MEDAI_MAX_BATCH="1").runtime.max_batch == 1  # off by default
