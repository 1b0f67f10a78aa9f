"""The inference pipeline: decode, validate, preprocess, run, postprocess.

Every edge (HTTP, blob trigger, CLI) calls :class:`InferenceEngine`, so the
same body gives the same JSON everywhere. The work is split in two stages so a
server can overlap them across cores:

* :meth:`InferenceEngine.prepare`: decode, validate and preprocess the first
  frame (CPU work in numpy, Pillow and pydicom; fails fast on bad input);
* :meth:`InferenceEngine.execute`: run the model on every frame the
  multi-frame policy selects (further frames are preprocessed here, one at a
  time, so memory holds one frame), then postprocess.

:meth:`InferenceEngine.predict` does both in one call.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .decode import decode, dicom_module
from .image import DecodedImage
from .malloc import MemoryReturner, set_arena_max, set_mmap_threshold
from .models import LoadedModel, ModelRegistry
from .postprocess import postprocess
from .preprocess import PreparedFrame, prepare_frame
from .settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictOptions:
    """Per-request options.

    Attributes:
        top_k: Classification: number of classes returned (manifest default when None).
        include_mask: Segmentation: include the label map as a base64 PNG.
    """

    top_k: int | None = None
    include_mask: bool = False


@dataclass
class Job:
    """One inference request travelling through the stages."""

    request_id: str
    model: LoadedModel
    image: DecodedImage
    input_sha256: str
    input_bytes: int
    options: PredictOptions
    first: PreparedFrame
    timings: dict[str, float] = field(default_factory=dict)
    predictions: list[dict[str, Any]] = field(default_factory=list)


_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count()


def new_request_id() -> str:
    """A fresh correlation id: 32 hex digits, a random per-process prefix and a counter.

    Unique across instances like a UUID4 (64 random bits per process), without a system call for
    randomness on every request.
    """
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFFFFFFFFFF:016x}"


class InferenceEngine:
    """The service core, host-agnostic.

    Args:
        settings: Service settings.
        registry: The model cache; one is created from ``settings`` when omitted.
        instance_ref: Turns a SOP Instance UID into an opaque reference (a keyed
            hash from :mod:`security`); without one, no instance reference is
            returned at all.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        registry: ModelRegistry | None = None,
        instance_ref: Callable[[str], str] | None = None,
    ) -> None:
        self.settings = settings
        # Before the first large tensor is allocated and before the pools' threads exist: the
        # allocator's policy is process-wide (inference.malloc).
        runtime = settings.runtime
        set_mmap_threshold(runtime.malloc_mmap_threshold)
        set_arena_max(runtime.malloc_arena_max)
        self.memory = MemoryReturner(runtime.memory_trim_idle_s, runtime.memory_trim_period_s)
        self.registry = registry or ModelRegistry(settings)
        self._instance_ref = instance_ref
        if self.registry.on_loaded is None:
            self.registry.on_loaded = self._after_load

    def use_instance_ref(self, instance_ref: Callable[[str], str] | None) -> None:
        """Set the function that turns a SOP Instance UID into a reference (see the constructor).

        For an edge that starts loading the models before it has fetched the key the function
        needs (``service.wiring.build_app``); it sets it before the first request can arrive.
        """
        self._instance_ref = instance_ref

    # Seconds after the models are loaded before DICOM decoding is warmed: importing pydicom holds
    # the interpreter for a few hundred ms, which must not compete with start-up and a first request.
    DICOM_WARMUP_DELAY_S = 1.0

    def _after_load(self) -> None:
        self.warm_decoders(dicom=False)  # Pillow's PNG and JPEG plugins: a few ms
        timer = threading.Timer(self.DICOM_WARMUP_DELAY_S, self._warm_dicom_quietly)
        timer.daemon = True
        timer.start()

    def _warm_dicom_quietly(self) -> None:
        try:
            self.warm_decoders(raster=False)
        except Exception:  # a convenience: the first DICOM request imports pydicom itself
            log.exception("DICOM decoder warm-up failed")

    def warm_decoders(self, *, raster: bool = True, dicom: bool = True) -> None:
        """Decode a tiny PNG and JPEG (``raster``) and DICOM (``dicom``) once, so the first real
        request of each kind does not pay for importing and initialising its decoder (pydicom
        alone takes a few hundred ms). Eager loading calls it after the models are loaded."""
        import io

        import numpy as np
        from PIL import Image

        pixels = np.zeros((8, 8), dtype=np.uint8)
        samples = []
        for image_format in ("PNG", "JPEG") if raster else ():
            buffer = io.BytesIO()
            Image.fromarray(pixels, "L").save(buffer, format=image_format)
            samples.append(buffer.getvalue())
        if dicom:
            samples.append(dicom_module().tiny_dicom())
        for data in samples:
            decode(data, limits=self.settings.limits, imaging=self.settings.imaging)

    def model(self, name: str | None) -> LoadedModel:
        """The named (or default) model, loaded and warm."""
        return self.registry.get(name or self.settings.models.default_model)

    def prepare(
        self,
        model_name: str | None,
        data: bytes,
        *,
        media_type_hint: str | None = None,
        options: PredictOptions | None = None,
        request_id: str | None = None,
        input_sha256: str | None = None,
    ) -> Job:
        """Stage 1: decode the body and preprocess its first frame.

        ``input_sha256``, when the caller has already hashed ``data`` (the batch path does, for its
        idempotency rule), saves hashing it again.

        Raises:
            ServiceError: ``ModelNotFound`` or a 4xx decoding error.
        """
        model = self.model(model_name)
        started = time.perf_counter()
        image = decode(
            data,
            limits=self.settings.limits,
            imaging=self.settings.imaging,
            media_type_hint=media_type_hint,
        )
        decoded = time.perf_counter()
        log.debug(
            "decoded %s %dx%d, %d frame(s)",
            image.media_type,
            image.rows,
            image.columns,
            image.total_frames,
            extra={
                "request_id": request_id,
                "modality": image.modality,
                "transfer_syntax": image.transfer_syntax,
                "photometric": image.photometric,
                "decode_ms": round((decoded - started) * 1000, 3),
            },
        )
        first = prepare_frame(image, image.frame_indices[0], model.manifest.input, model.fixed_hw)
        prepared = time.perf_counter()
        return Job(
            request_id=request_id or new_request_id(),
            model=model,
            image=image,
            input_sha256=input_sha256 or hashlib.sha256(data).hexdigest(),
            input_bytes=len(data),
            options=options or PredictOptions(),
            first=first,
            timings={"decode": (decoded - started) * 1000, "preprocess": (prepared - decoded) * 1000},
        )

    def execute(self, job: Job, *, concurrent: bool = False) -> Job:
        """Stage 2: run the model on every selected frame and postprocess.

        ``concurrent`` says other requests share the instance (see :meth:`LoadedModel.run`).

        Returns:
            ``job`` with its predictions filled in.
        """
        model, image, options = job.model, job.image, job.options
        infer_ms = post_ms = 0.0
        for position, index in enumerate(image.frame_indices):
            started = time.perf_counter()
            frame = job.first if position == 0 else prepare_frame(image, index, model.manifest.input, model.fixed_hw)
            ready = time.perf_counter()
            outputs = model.run(frame.tensor, concurrent=concurrent)
            ran = time.perf_counter()
            prediction = postprocess(
                model,
                outputs,
                frame,
                pixel_spacing_mm=image.pixel_spacing_mm,
                top_k=options.top_k,
                include_mask=options.include_mask,
            )
            if frame.voi is not None:
                prediction["voi"] = frame.voi
            job.predictions.append(prediction)
            done = time.perf_counter()
            if position:
                job.timings["preprocess"] += (ready - started) * 1000
            infer_ms += (ran - ready) * 1000
            post_ms += (done - ran) * 1000
        job.timings["inference"] = infer_ms
        job.timings["postprocess"] = post_ms
        return job

    def execute_batch(self, jobs: list[Job]) -> list[Job]:
        """Stage 2 for several single-frame jobs of one batchable model, in one ``session.run``.

        The first-frame tensors are concatenated on the batch axis, the outputs split
        back along their first axis, and each job postprocessed as if it had run alone
        (micro-batching: worth it on GPUs and large hosts, see ``MEDAI_MAX_BATCH``).

        Args:
            jobs: Jobs of the same :class:`LoadedModel` (``batchable``), each with one
                frame, whose tensors have the same shape and dtype.
        """
        if len(jobs) == 1:
            return [self.execute(jobs[0])]
        model = jobs[0].model
        axis = model.manifest.input.layout.index("N")
        started = time.perf_counter()
        outputs = model.run(np.concatenate([job.first.tensor for job in jobs], axis=axis))
        ran = time.perf_counter()
        share = (ran - started) * 1000 / len(jobs)
        for index, job in enumerate(jobs):
            mine = {name: value[index : index + 1] for name, value in outputs.items()}
            post_started = time.perf_counter()
            prediction = postprocess(
                model,
                mine,
                job.first,
                pixel_spacing_mm=job.image.pixel_spacing_mm,
                top_k=job.options.top_k,
                include_mask=job.options.include_mask,
            )
            if job.first.voi is not None:
                prediction["voi"] = job.first.voi
            job.predictions.append(prediction)
            job.timings["inference"] = share
            job.timings["postprocess"] = (time.perf_counter() - post_started) * 1000
            job.timings["batch_size"] = len(jobs)
        return jobs

    def result(self, job: Job) -> dict[str, Any]:
        """The response document of a finished job."""
        manifest = job.model.manifest
        return {
            "request_id": job.request_id,
            "model": {
                "name": manifest.name,
                "version": manifest.version,
                "sha256": manifest.sha256,
                "task": manifest.task,
            },
            "input": self.describe_input(job),
            "predictions": job.predictions,
            "timing_ms": {key: round(value, 3) for key, value in job.timings.items()},
        }

    def predict(
        self,
        model_name: str | None,
        data: bytes,
        *,
        media_type_hint: str | None = None,
        options: PredictOptions | None = None,
        request_id: str | None = None,
        concurrent: bool = False,
        input_sha256: str | None = None,
    ) -> dict[str, Any]:
        """Decode, preprocess, infer and postprocess in one call.

        ``concurrent`` says other inferences share the instance (see :meth:`LoadedModel.run`);
        ``input_sha256`` is the content's digest when the caller already has it (see :meth:`prepare`).

        Returns:
            The response document (see the README's API section).

        Raises:
            ServiceError: With a stable code for everything a client can send.
        """
        self.memory.enter()
        try:
            job = self.prepare(
                model_name,
                data,
                media_type_hint=media_type_hint,
                options=options,
                request_id=request_id,
                input_sha256=input_sha256,
            )
            return self.result(self.execute(job, concurrent=concurrent))
        finally:
            self.memory.leave()

    def describe_input(self, job: Job) -> dict[str, Any]:
        """What the service understood of the input; technical attributes only, no PHI."""
        image = job.image
        described: dict[str, Any] = {
            "media_type": image.media_type,
            "sha256": job.input_sha256,
            "bytes": job.input_bytes,
            "rows": image.rows,
            "columns": image.columns,
            "samples_per_pixel": image.samples,
            "photometric_interpretation": image.photometric,
            "frames": image.total_frames,
            "frames_inferred": len(image.frame_indices),
        }
        if image.source == "dicom":
            described.update(
                {
                    "modality": image.modality,
                    "sop_class_uid": image.sop_class_uid,
                    "transfer_syntax": image.transfer_syntax,
                    "pixel_spacing_mm": list(image.pixel_spacing_mm) if image.pixel_spacing_mm else None,
                    "pixel_spacing_source": image.spacing_source,
                }
            )
            if image.instance_uid and self._instance_ref is not None:
                described["instance_ref"] = self._instance_ref(image.instance_uid)
        return described
