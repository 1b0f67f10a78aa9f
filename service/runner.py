"""Concurrency for the HTTP path: overlap preprocessing with inference, bound the work.

A request makes one trip off the event loop: a worker thread decodes and
preprocesses it (numpy, Pillow and pydicom release the GIL for most of it), then
takes one of ``MEDAI_MAX_IN_FLIGHT`` inference slots, runs ``session.run`` and
builds the response document. While one request holds a slot the next one is
being decoded on the other core, so preprocessing overlaps with inference; at
most one request per core waits, prepared, for a slot, which bounds the memory
held by prepared tensors. One trip instead of a hop per stage saves the thread
wake-ups that dominate the overhead of a small request.

The event loop only awaits; no blocking work runs on it. Admission is a
counter, not a queue in the loop: when ``MEDAI_MAX_IN_FLIGHT + MEDAI_MAX_QUEUE``
requests are already in the system, a new one is refused at once with 503 and
``Retry-After`` instead of waiting without bound. A request that waited longer
than ``MEDAI_QUEUE_TIMEOUT_S`` for an inference slot is refused the same way.
The pool's queue is first-in first-out and the slots are handed to waiting
threads in arrival order, which gives fair queueing.

The primitives are threads and locks rather than asyncio objects, so the same
runner works under uvicorn's loop and under the Functions worker's loop.

Optional micro-batching (``MEDAI_MAX_BATCH`` > 1, for GPU or large hosts): a
single-frame request to a model with a dynamic batch axis waits up to
``MEDAI_MAX_BATCH_DELAY_MS`` for others with the same tensor shape, and they
share one ``session.run``. On a small CPU instance it gains little, so it is off
by default.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from inference.cpu import available_cores
from inference.engine import InferenceEngine, Job, PredictOptions
from inference.errors import Overloaded


def _identity(document: dict[str, Any]) -> dict[str, Any]:
    return document


def cpu_count() -> int:
    """Cores this process may use (the affinity mask capped by a cgroup CPU quota)."""
    return available_cores()


class InferenceRunner:
    """Runs engine stages off the event loop with bounded admission.

    Args:
        engine: The inference engine.
    """

    def __init__(self, engine: InferenceEngine) -> None:
        runtime = engine.settings.runtime
        self.engine = engine
        cores = cpu_count()
        self.max_in_flight = runtime.inference_slots
        self.capacity = self.max_in_flight + runtime.max_queue
        self.queue_timeout_s = runtime.queue_timeout_s
        # Requests: up to max_in_flight running inference plus one per core preparing or prepared.
        self._work_pool = ThreadPoolExecutor(max_workers=self.max_in_flight + cores, thread_name_prefix="request")
        self._slots = threading.Semaphore(self.max_in_flight)
        # Other blocking calls (authentication, model description) and micro-batches.
        self._prepare_pool = ThreadPoolExecutor(max_workers=cores, thread_name_prefix="call")
        self._infer_pool = ThreadPoolExecutor(max_workers=self.max_in_flight, thread_name_prefix="batch")
        self._lock = threading.Lock()
        self._in_system = 0
        self._batcher = (
            MicroBatcher(self, runtime.max_batch, runtime.max_batch_delay_ms / 1000)
            if runtime.max_batch > 1
            else None
        )

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
        render: Callable[[dict[str, Any]], Any] | None = None,
    ) -> Any:
        """Prepare, infer and build the response document in one trip to a worker thread.

        ``render``, when given, turns the document into what is returned (an HTTP response, with
        its JSON encoded) on the worker thread too, so a large document never blocks the loop.

        Raises:
            Overloaded: The instance is at capacity, or the wait for a slot was too long.
            ServiceError: Whatever the engine raises.
        """
        self._admit()
        self.engine.memory.enter()
        try:
            loop = asyncio.get_running_loop()
            render = render or _identity
            work = loop.run_in_executor(
                self._work_pool, self._serve, model_name, body, media_type_hint, options, request_id, render
            )
            outcome = await work
            if not isinstance(outcome, Job):
                return outcome
            job = await asyncio.wrap_future(self._batcher.submit(outcome, time.monotonic()))  # type: ignore[union-attr]
            return await loop.run_in_executor(self._prepare_pool, lambda: render(self.engine.result(job)))
        finally:
            self.engine.memory.leave()
            self._leave()

    def _serve(
        self,
        model_name: str,
        body: bytes,
        media_type_hint: str | None,
        options: PredictOptions,
        request_id: str,
        render: Callable[[dict[str, Any]], Any],
    ) -> Any:
        """Worker thread: the whole request, or the prepared job when it goes to the micro-batcher."""
        job = self.engine.prepare(
            model_name, body, media_type_hint=media_type_hint, options=options, request_id=request_id
        )
        if self._batcher is not None and job.model.batchable and len(job.image.frame_indices) == 1:
            return job
        queued_at = time.monotonic()
        if not self._slots.acquire(timeout=self.queue_timeout_s):
            raise Overloaded(
                f"The request waited {self.queue_timeout_s:.1f} s for an inference slot; retry shortly.", retry_after=2
            )
        try:
            self.check_wait(queued_at)
            # Alone in the instance: every core for this run; otherwise one core per run, so runs
            # and decoding proceed side by side (MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS).
            job = self.engine.execute(job, concurrent=self._in_system > 1)
        finally:
            self._slots.release()
        return render(self.engine.result(job))

    def check_wait(self, queued_at: float) -> None:
        """Refuse a request that waited too long for a slot (its client has likely given up).

        Raises:
            Overloaded: The wait exceeded ``MEDAI_QUEUE_TIMEOUT_S``.
        """
        waited = time.monotonic() - queued_at
        if waited > self.queue_timeout_s:
            raise Overloaded(f"The request waited {waited:.1f} s for an inference slot; retry shortly.", retry_after=2)

    def run_batch(self, batch: list[tuple[Job, float, Future[Job]]]) -> None:
        """Run collected jobs as one batch on the inference pool (micro-batching)."""
        ready = []
        for job, queued_at, future in batch:
            try:
                self.check_wait(queued_at)
            except Overloaded as err:
                future.set_exception(err)
            else:
                ready.append((job, future))
        if not ready:
            return
        try:
            with self._slots:  # a batch is one inference: it takes one of the in-flight slots
                done = self.engine.execute_batch([job for job, _ in ready])
        except Exception as err:  # every waiting request gets the failure, none hangs
            for _, future in ready:
                future.set_exception(err)
            return
        for job, (_, future) in zip(done, ready):
            future.set_result(job)

    def submit_batch(self, batch: list[tuple[Job, float, Future[Job]]]) -> None:
        self._infer_pool.submit(self.run_batch, batch)

    async def call(self, func: Any, *args: Any) -> Any:
        """Run a blocking call (model loading, description) on the prepare pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._prepare_pool, func, *args)

    def shutdown(self) -> None:
        """Stop the pools (tests and graceful shutdown)."""
        for pool in (self._work_pool, self._prepare_pool, self._infer_pool):
            pool.shutdown(wait=False, cancel_futures=True)


class MicroBatcher:
    """Collects single-frame jobs with the same model and tensor shape into batches.

    One dispatcher thread per (model, shape, dtype), at most ``MAX_QUEUES`` of them;
    beyond that a job is run alone (dynamic-size models would otherwise create a
    thread per image size).
    """

    MAX_QUEUES = 32

    def __init__(self, runner: InferenceRunner, max_batch: int, max_delay_s: float) -> None:
        self._runner = runner
        self._max_batch = max_batch
        self._max_delay_s = max_delay_s
        self._queues: dict[tuple[Any, ...], queue.Queue[tuple[Job, float, Future[Job]]]] = {}
        self._lock = threading.Lock()

    def submit(self, job: Job, queued_at: float) -> Future[Job]:
        """Queue ``job``; the future resolves when its batch has run."""
        future: Future[Job] = Future()
        tensor = job.first.tensor
        key = (job.model.name, tensor.shape, tensor.dtype.str)
        with self._lock:
            jobs = self._queues.get(key)
            if jobs is None and len(self._queues) < self.MAX_QUEUES:
                jobs = self._queues[key] = queue.Queue()
                threading.Thread(target=self._dispatch, args=(jobs,), name="micro-batcher", daemon=True).start()
        if jobs is None:
            self._runner.submit_batch([(job, queued_at, future)])
        else:
            jobs.put((job, queued_at, future))
        return future

    def _dispatch(self, jobs: queue.Queue[tuple[Job, float, Future[Job]]]) -> None:
        while True:
            batch = [jobs.get()]
            deadline = time.monotonic() + self._max_delay_s
            while len(batch) < self._max_batch:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    batch.append(jobs.get(timeout=remaining))
                except queue.Empty:
                    break
            self._runner.submit_batch(batch)
