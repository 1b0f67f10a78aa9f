"""The obvious FastAPI server, the peer the service is compared with (issue 8).

One ``async def`` handler that reads the body, decodes, preprocesses, runs the onnxruntime session
and postprocesses, all on the event loop: no thread pool, no admission control. It reuses the
service's own decode, preprocess and postprocess functions, so only the serving strategy differs.
Its sessions are created the obvious way, with onnxruntime's default options
(``ort.InferenceSession(path)``: one intra-op thread per core, the CPU memory arena on).

    python -m bench.peer_server --port 8001 --models-dir .bench/models

Served by uvicorn with the same options ``python -m service`` uses. Not part of the product.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


def load_models(models_dir: Path, names: list[str] | None = None) -> dict[str, Any]:
    """One ``LoadedModel`` per manifest under ``models_dir``, sessions with onnxruntime defaults."""
    import onnxruntime as ort

    from inference.manifest import load_manifest
    from inference.models import LoadedModel, check_signature

    models: dict[str, Any] = {}
    for path in sorted(models_dir.glob("*/manifest.json")):
        manifest = load_manifest(path)
        if names and manifest.name not in names:
            continue
        session = ort.InferenceSession(str(manifest.model_path), providers=["CPUExecutionProvider"])
        fixed_hw, constants = check_signature(manifest, session)
        model = LoadedModel(
            manifest=manifest,
            session=session,
            fixed_hw=fixed_hw,
            output_names=[o.name for o in session.get_outputs()],
            signature={"inputs": [], "outputs": []},
            constants=constants,
        )
        model.warm_up()
        models[manifest.name] = model
    return models


def create_app(models_dir: Path, names: list[str] | None = None) -> FastAPI:
    """The peer application; models are loaded before the first request is served."""
    from inference.decode import decode
    from inference.postprocess import postprocess
    from inference.preprocess import prepare_frame
    from inference.settings import ImagingSettings, LimitSettings

    models = load_models(models_dir, names)
    limits, imaging = LimitSettings(), ImagingSettings()
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ready", "models": sorted(models)}

    @app.post("/api/v1/models/{name}/infer")
    async def infer(name: str, request: Request) -> JSONResponse:
        model = models.get(name)
        if model is None:
            return JSONResponse({"detail": "no such model"}, status_code=404)
        body = await request.body()
        image = decode(body, limits=limits, imaging=imaging)
        predictions = []
        for index in image.frame_indices:
            frame = prepare_frame(image, index, model.manifest.input, model.fixed_hw)
            outputs = model.run(frame.tensor)
            predictions.append(postprocess(model, outputs, frame, pixel_spacing_mm=image.pixel_spacing_mm))
        return JSONResponse({"model": name, "predictions": predictions})

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.peer_server", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--models-dir", type=Path, required=True)
    parser.add_argument("--models", default="", help="comma-separated model names (default: all)")
    args = parser.parse_args(argv)

    import uvicorn

    names = [n for n in args.models.split(",") if n] or None
    uvicorn.run(
        create_app(args.models_dir, names),
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
