"""Command line of the inference core.

    python -m inference predict FILE... [--model NAME]   # the HTTP API's JSON, without a server
    python -m inference manifest MODEL.onnx --name NAME  # draft a manifest for any ONNX model
    python -m inference settings-doc                     # the configuration table of the README
    python -m inference errors-doc                       # the error code table of the README

``predict`` prints exactly the document ``POST /api/v1/models/{name}/infer``
returns (one file: indented JSON; several: one JSON document per line), or the
problem document for a file that fails, and exits 1 if any file failed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ServiceError, all_error_types, problem_details
from .settings import Settings, describe_settings


def _predict(args: argparse.Namespace) -> int:
    import dataclasses

    from .engine import InferenceEngine, PredictOptions

    settings = Settings.from_env()
    if args.models_dir:
        settings = dataclasses.replace(
            settings, models=dataclasses.replace(settings.models, models_dir=Path(args.models_dir), enabled=())
        )
    if args.model:
        settings = dataclasses.replace(
            settings, models=dataclasses.replace(settings.models, enabled=(args.model,), default_model=args.model)
        )
    engine = InferenceEngine(settings)
    options = PredictOptions(top_k=args.top_k, include_mask=args.include_mask)
    failed = 0
    for name in args.files:
        path = Path(name)
        try:
            data = path.read_bytes()
            document: dict[str, Any] = engine.predict(args.model, data, options=options)
        except OSError as err:
            failed += 1
            document = {"file": name, "error": f"cannot read the file ({err.strerror})"}
        except ServiceError as err:
            failed += 1
            document = problem_details(err, instance=name)
        if len(args.files) == 1:
            print(json.dumps(document, indent=2))
        else:
            print(json.dumps({"file": name, **document}))
    return 1 if failed else 0


def _manifest(args: argparse.Namespace) -> int:
    import onnxruntime as ort

    from .manifest import ONNX_TYPES

    path = Path(args.model)
    data = path.read_bytes()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    first = session.get_inputs()[0]
    shape = list(first.shape)
    layout = {4: "NCHW", 3: "CHW", 2: "HW"}.get(len(shape), "NCHW")
    if len(shape) == 4 and isinstance(shape[3], int) and shape[3] in (1, 3) and shape[1] not in (1, 3):
        layout = "NHWC"
    dims = dict(zip(layout, shape))
    channels = dims.get("C") if isinstance(dims.get("C"), int) else 1
    draft = {
        "schema_version": 1,
        "name": args.name,
        "version": args.version,
        "description": "",
        "task": args.task,
        "file": path.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "input": {
            "name": first.name,
            "layout": layout,
            "channels": channels if channels in (1, 3) else 1,
            "size": None,
            "resize": "bilinear",
            "dtype": ONNX_TYPES.get(first.type, "float32"),
            "intensity": "display",
        },
        "labels": [],
        "postprocess": _draft_postprocess(args.task, session.get_outputs()[0], layout),
    }
    if args.task == "classification" and _already_probabilities(session, layout):
        draft["postprocess"]["activation"] = "none"  # the graph ends in a softmax: not a second one
    text = json.dumps(draft, indent=2) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        print(
            f"wrote {args.out}: check input.intensity, size, range, mean/std, labels and postprocess.activation",
            file=sys.stderr,
        )
    else:
        sys.stdout.write(text)
    return 0


def _already_probabilities(session: Any, layout: str) -> bool:
    """Whether the first output already holds class probabilities (the graph ends in a softmax).

    Judged from one run on a mid-grey input: every value non-negative and each row summing to 1.
    A model the probe cannot run (unusual inputs) is assumed to output logits.
    """
    import numpy as np

    from .manifest import ONNX_TYPES

    first = session.get_inputs()[0]
    fixed = {"N": 1, "C": 3, "H": 224, "W": 224}
    shape = [dim if isinstance(dim, int) and dim > 0 else fixed.get(axis, 1) for axis, dim in zip(layout, first.shape)]
    try:
        probe = np.full(shape, 0.5, dtype=np.dtype(ONNX_TYPES.get(first.type, "float32")))
        [output, *_] = session.run([session.get_outputs()[0].name], {first.name: probe})
        values = np.asarray(output, dtype=np.float64).reshape(shape[0], -1)
    except Exception:  # noqa: BLE001 - a probe only: any failure means "cannot tell"
        return False
    return bool(values.size) and bool(np.all(values >= 0)) and bool(np.allclose(values.sum(axis=1), 1.0, atol=1e-3))


def _draft_postprocess(task: str, output: Any, layout: str) -> dict[str, Any]:
    """The postprocess section a draft proposes, from the first output's type and shape.

    Segmentation: an integer output is a label map; a float output with one channel (or none) is a
    probability map, thresholded (``binary``); a float output with several channels holds one score
    per class (``scores``, argmax). Classification: softmax over the logits, top 5.
    """
    post: dict[str, Any] = {"output": output.name}
    if task == "classification":
        post.update(activation="softmax", top_k=5)
    elif task == "segmentation":
        shape = list(output.shape)
        channel = shape[layout.index("C")] if len(shape) == len(layout) and "C" in layout else 1
        if output.type not in ("tensor(float)", "tensor(float16)", "tensor(double)"):
            post["kind"] = "label_map"
        elif isinstance(channel, int) and channel > 1:
            post["kind"] = "scores"
        else:
            post.update(kind="binary", threshold=0.5)
    return post


def _settings_doc(_: argparse.Namespace) -> int:
    print("| Variable | Default | Meaning |")
    print("|---|---|---|")
    for row in describe_settings():
        print(f"| `{row['env']}` | `{row['default']}` | {row['doc']} |")
    return 0


def _errors_doc(_: argparse.Namespace) -> int:
    print("| Status | Code | Meaning | Retry helps |")
    print("|---|---|---|---|")
    for cls in all_error_types():
        if cls.__subclasses__() and cls.code in ("internal_error", "bad_request", "unprocessable_image"):
            continue
        print(f"| {cls.status} | `{cls.code}` | {cls.title} | {'yes' if cls.retryable else 'no'} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    predict = sub.add_parser("predict", help="run a model on image files and print the API's JSON")
    predict.add_argument("files", nargs="+", help="DICOM, PNG or JPEG files")
    predict.add_argument("--model", help="model name (default: MEDAI_DEFAULT_MODEL)")
    predict.add_argument("--models-dir", help="models directory (default: MEDAI_MODELS_DIR)")
    predict.add_argument("--top-k", type=int, help="classification: number of classes")
    predict.add_argument("--include-mask", action="store_true", help="segmentation: include the label map PNG")
    predict.set_defaults(func=_predict)

    manifest = sub.add_parser("manifest", help="print a draft manifest for an ONNX model")
    manifest.add_argument("model", help="the .onnx file")
    manifest.add_argument("--name", required=True)
    manifest.add_argument("--version", default="1.0.0")
    manifest.add_argument("--task", default="raw", choices=("classification", "segmentation", "raw"))
    manifest.add_argument("--out", help="write the draft to this file (default: standard output)")
    manifest.set_defaults(func=_manifest)

    sub.add_parser("settings-doc", help="print the configuration table").set_defaults(func=_settings_doc)
    sub.add_parser("errors-doc", help="print the error code table").set_defaults(func=_errors_doc)

    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except ServiceError as err:  # configuration and model loading errors
        print(f"error: {err.code}: {err.detail}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
