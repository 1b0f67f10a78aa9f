"""Concurrency for the HTTP path: overlap preprocessing with inference, bound the work.

A request goes through two thread pools:

* the *prepare* pool decodes and preprocesses (numpy, Pillow and pydicom
  release the GIL for most of it);
* the *inference* pool runs ``session.run``; its size is the in-flight limit.

The event loop only awaits; no blocking work runs on it. Admission is a
counter, not a queue in the loop: when ``MEDAI_MAX_IN_FLIGHT + MEDAI_MAX_QUEUE``
requests are already in the system, a new one is refused at once with 503 and
``Retry-After`` instead of waiting without bound. A request that waited longer
than ``MEDAI_QUEUE_TIMEOUT_S`` for an inference slot is refused the same way.
Thread pools are first-in first-out, which gives fair queueing.

The primitives are threads and locks rather than asyncio objects, so the same
runner works under uvicorn's loop and under the Functions worker's loop.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from inference.engine import InferenceEngine, Job, PredictOptions
from inference.errors import Overloaded


def cpu_count() -> int:
    """Cores this process may use (the affinity mask, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class InferenceRunner:
    """Runs engine stages off the event loop with bounded admission.

    Args:
        engine: The inference engine.
    """

    def __init__(self, engine: InferenceEngine) -> None:
        runtime = engine.settings.runtime
        self.engine = engine
        cores = cpu_count()
        self.max_in_flight = runtime.max_in_flight or cores
        self.capacity = self.max_in_flight + runtime.max_queue
        self.queue_timeout_s = runtime.queue_timeout_s
        self._prepare_pool = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="prepare")
        self._infer_pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="infer")
        self._lock = threading.Lock()
        self._in_system = 0

    @property
    def in_system(self) -> int:
        """Requests admitted and not finished."""
        return self._in_system

    def _admit(self) -> None:
        with self._lock:
            if self._in_system >= self.capacity:
                raise Overloaded(
                    f"{self._in_system} requests are in progress on this instance; retry shortly.",
                    retry_after=1,
                )
            self._in_system += 1

    def _leave(self) -> None:
        with self._lock:
            self._in_system -= 1

    async def predict(
        self,
        model_name: str,
        body: bytes,
        *,
        media_type_hint: str | None,
        options: PredictOptions,
        request_id: str,
    ) -> dict[str, Any]:
        """Prepare on one pool, infer on the other, return the response document.

        Raises:
            Overloaded: The instance is at capacity, or the wait for a slot was too long.
            ServiceError: Whatever the engine raises.
        """
        self._admit()
        try:
            loop = asyncio.get_running_loop()
            job: Job = await loop.run_in_executor(
                self._prepare_pool,
                lambda: self.engine.prepare(
                    model_name, body, media_type_hint=media_type_hint, options=options, request_id=request_id
                ),
            )
            queued_at = time.monotonic()
            job = await loop.run_in_executor(self._infer_pool, self._execute, job, queued_at)
            return self.engine.result(job)
        finally:
            self._leave()

    def _execute(self, job: Job, queued_at: float) -> Job:
        waited = time.monotonic() - queued_at
        if waited > self.queue_timeout_s:
            raise Overloaded(f"The request waited {waited:.1f} s for an inference slot; retry shortly.", retry_after=2)
        return self.engine.execute(job)

    async def call(self, func: Any, *args: Any) -> Any:
        """Run a blocking call (model loading, description) on the prepare pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prepare_pool, func, *args)

    def shutdown(self) -> None:
        """Stop the pools (tests and graceful shutdown)."""
        self._prepare_pool.shutdown(wait=False, cancel_futures=True)
        self._infer_pool.shutdown(wait=False, cancel_futures=True)
