"""The raw in-process pipeline: decode + preprocess + ``session.run``, sequential, no server.

This is the floor every served figure is compared with. It uses the service's own decode and
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


def measure_raw(models_dir: Path, model: str, body: bytes, *, iterations: int, warmup: int) -> dict[str, Any]:
    """Time ``iterations`` sequential decode + preprocess + run of ``body`` on ``model``.

    Returns:
        Latency summary of the whole pipeline, the medians of each stage, and images per second.
    """
    from inference.decode import decode
    from inference.manifest import load_manifest
    from inference.preprocess import prepare_frame
    from inference.settings import ImagingSettings, LimitSettings

    manifest = load_manifest(models_dir / model / "manifest.json")
    session = raw_session(manifest.model_path)
    shape = session.get_inputs()[0].shape
    dims = dict(zip(manifest.input.layout, shape))
    fixed_hw = tuple(dims.get(axis) if isinstance(dims.get(axis), int) else None for axis in ("H", "W"))
    limits, imaging = LimitSettings(), ImagingSettings()
    totals: list[float] = []
    stages: dict[str, list[float]] = {"decode": [], "preprocess": [], "run": []}
    for index in range(warmup + iterations):
        t0 = time.perf_counter()
        image = decode(body, limits=limits, imaging=imaging)
        t1 = time.perf_counter()
        frame = prepare_frame(image, image.frame_indices[0], manifest.input, fixed_hw)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        session.run(None, {manifest.input.name: frame.tensor})
        t3 = time.perf_counter()
        if index >= warmup:
            totals.append((t3 - t0) * 1000)
            stages["decode"].append((t1 - t0) * 1000)
            stages["preprocess"].append((t2 - t1) * 1000)
            stages["run"].append((t3 - t2) * 1000)
    summary = summarize_ms(totals)
    summary["stages_p50_ms"] = {name: summarize_ms(values)["p50_ms"] for name, values in stages.items()}
    summary["images_per_s"] = round(1000.0 / summary["p50_ms"], 3)
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
