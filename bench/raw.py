"""The raw in-process pipeline: decode + preprocess + ``session.run``, sequential, no server.

This is the floor every served figure is compared with. Because the machine is shared and its load
drifts, the figures a target compares with the raw pipeline are taken in the same time window:
:class:`RawPipeline` rounds are interleaved with the HTTP rounds at concurrency 1 and with the
batch runs (see ``bench/__main__.py``); the sequential section at the start gives the stage
breakdown. It uses the service's own decode and
preprocess functions (``inference.decode``, ``inference.preprocess.prepare_frame``) and a bare
onnxruntime session with onnxruntime's default options (one intra-op thread per core), so it
measures what the work itself costs on this machine.

Also measured, for diagnosis only (no target): ``InferenceEngine.predict`` in-process, which adds
the sha256 of the body, postprocessing and the response document, with the service's session
options (``MEDAI_ORT_*`` defaults).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .stats import summarize_ms


def raw_session(model_path: Path) -> Any:
    """A session with onnxruntime's defaults (what a script would create)."""
    import onnxruntime as ort

    return ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])


class RawPipeline:
    """A model's bare session plus the service's decode and preprocess, ready to time.

    Args:
        models_dir: The models directory.
        model: The model name.
        body: The input file's bytes.
    """

    def __init__(self, models_dir: Path, model: str, body: bytes) -> None:
        from inference.manifest import load_manifest
        from inference.settings import ImagingSettings, LimitSettings

        self.model = model
        self.body = body
        self.manifest = load_manifest(models_dir / model / "manifest.json")
        self.session = raw_session(self.manifest.model_path)
        dims = dict(zip(self.manifest.input.layout, self.session.get_inputs()[0].shape))
        self.fixed_hw = tuple(dims.get(axis) if isinstance(dims.get(axis), int) else None for axis in ("H", "W"))
        self.limits, self.imaging = LimitSettings(), ImagingSettings()

    def once(self) -> tuple[float, float, float]:
        """One decode + preprocess + run; the three stage times in milliseconds."""
        from inference.decode import decode
        from inference.preprocess import prepare_frame

        t0 = time.perf_counter()
        image = decode(self.body, limits=self.limits, imaging=self.imaging)
        t1 = time.perf_counter()
        spec = self.manifest.input
        frame = prepare_frame(image, image.frame_indices[0], spec, self.fixed_hw)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        self.session.run(None, {self.manifest.input.name: frame.tensor})
        t3 = time.perf_counter()
        return (t1 - t0) * 1000, (t2 - t1) * 1000, (t3 - t2) * 1000

    def measure(self, *, iterations: int | None = None, duration_s: float | None = None, warmup: int = 2) -> dict:
        """Time sequential pipelines: ``iterations`` of them, or as many as fit in ``duration_s``.

        Returns:
            Latency summary of the whole pipeline, the medians of each stage, and images per second
            (from the median latency).
        """
        for _ in range(warmup):
            self.once()
        totals: list[float] = []
        stages: dict[str, list[float]] = {"decode": [], "preprocess": [], "run": []}
        deadline = time.perf_counter() + (duration_s or 0.0)
        while (iterations is not None and len(totals) < iterations) or (
            iterations is None and (time.perf_counter() < deadline or len(totals) < 3)
        ):
            decode_ms, preprocess_ms, run_ms = self.once()
            totals.append(decode_ms + preprocess_ms + run_ms)
            stages["decode"].append(decode_ms)
            stages["preprocess"].append(preprocess_ms)
            stages["run"].append(run_ms)
        summary = summarize_ms(totals)
        summary["stages_p50_ms"] = {name: summarize_ms(values)["p50_ms"] for name, values in stages.items()}
        summary["images_per_s"] = round(1000.0 / summary["p50_ms"], 3)
        return summary


def measure_raw(models_dir: Path, model: str, body: bytes, *, iterations: int, warmup: int) -> dict[str, Any]:
    """Time ``iterations`` sequential decode + preprocess + run of ``body`` on ``model``."""
    summary = RawPipeline(models_dir, model, body).measure(iterations=iterations, warmup=warmup)
    summary["session_options"] = {"intra_op_num_threads": "onnxruntime default (0: one per core)"}
    return summary


def measure_engine(models_dir: Path, model: str, body: bytes, *, iterations: int, warmup: int) -> dict[str, Any]:
    """Time ``InferenceEngine.predict`` in-process (the service core without HTTP), sequentially."""
    from inference.engine import InferenceEngine
    from inference.settings import Settings

    settings = Settings.from_env(
        {
            "MEDAI_ENVIRONMENT": "local",
            "MEDAI_AUTH_MODE": "none",
            "MEDAI_MODELS_DIR": str(models_dir),
            "MEDAI_MODELS": model,
            "MEDAI_DEFAULT_MODEL": model,
        }
    )
    engine = InferenceEngine(settings)
    engine.registry.start(background=False)
    totals: list[float] = []
    for index in range(warmup + iterations):
        t0 = time.perf_counter()
        engine.predict(model, body)
        if index >= warmup:
            totals.append((time.perf_counter() - t0) * 1000)
    summary = summarize_ms(totals)
    summary["images_per_s"] = round(1000.0 / summary["p50_ms"], 3)
    return summary


def median_raw(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One raw reference from interleaved rounds: the median of each round's p50, p99 and images/s."""
    from statistics import median

    if not rounds:
        raise ValueError("no rounds")
    return {
        "p50_ms": round(median(r["p50_ms"] for r in rounds), 3),
        "p99_ms": round(median(r["p99_ms"] for r in rounds), 3),
        "images_per_s": round(median(r["images_per_s"] for r in rounds), 3),
        # "around": which timed run a round was taken next to, where the caller says (the batch section)
        "rounds": [{k: r[k] for k in ("n", "p50_ms", "p99_ms", "images_per_s", "around") if k in r} for r in rounds],
    }
