"""From model outputs to the JSON a client reads.

* ``classification``: the top-k labels with probabilities (softmax or sigmoid
  applied when the manifest says the model emits logits).
* ``segmentation``: a label map (from a label output, per-class scores by
  argmax, or one channel by threshold) resized back to the image's own grid
  by nearest neighbour, then per class: pixel count, fraction, and area in mm²
  when the pixel spacing is known (DICOM). On request, the label map as a PNG.
* ``raw`` (no task declared): every output as the Open Inference Protocol v2
  returns tensors (``name``, ``datatype``, ``shape``, flattened ``data``);
  sequences and maps are kept as sequences and key/value pairs.

Non-finite floats are written as the strings ``"NaN"``, ``"Infinity"`` and
``"-Infinity"`` (the protobuf JSON mapping), since JSON has no such numbers.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from PIL import Image

from .errors import InternalError
from .manifest import Manifest
from .models import OIP_DATATYPES, LoadedModel
from .preprocess import PreparedFrame


def postprocess(
    model: LoadedModel,
    outputs: dict[str, Any],
    prepared: PreparedFrame,
    *,
    pixel_spacing_mm: tuple[float, float] | None,
    top_k: int | None = None,
    include_mask: bool = False,
) -> dict[str, Any]:
    """Build one prediction (one frame) for the response.

    Args:
        model: The model that produced ``outputs``.
        outputs: Output name to value, as ``session.run`` returned them.
        prepared: The frame's preprocessing record.
        pixel_spacing_mm: Row and column spacing of the image, if known.
        top_k: Classification: how many classes to return (manifest default if None).
        include_mask: Segmentation: add the label map as a base64 PNG.
    """
    manifest = model.manifest
    prediction: dict[str, Any] = {"frame": prepared.frame}
    if manifest.task == "classification":
        prediction.update(_classification(manifest, _pick(model, outputs), top_k))
    elif manifest.task == "segmentation":
        prediction.update(_segmentation(manifest, _pick(model, outputs), prepared, pixel_spacing_mm, include_mask))
    else:
        prediction["outputs"] = [encode_output(name, value) for name, value in outputs.items()]
    return prediction


def _pick(model: LoadedModel, outputs: dict[str, Any]) -> np.ndarray:
    name = model.manifest.postprocess.output or model.output_names[0]
    value = outputs[name]
    if not isinstance(value, np.ndarray):
        raise InternalError(f"Model {model.name!r}: output {name!r} is not a tensor; declare task raw.")
    return value


def _classification(manifest: Manifest, value: np.ndarray, top_k: int | None) -> dict[str, Any]:
    scores = value.astype(np.float64)
    if scores.ndim >= 2 and scores.shape[0] == 1:
        scores = scores[0]
    scores = scores.reshape(-1)
    activation = manifest.postprocess.activation
    if activation == "softmax":
        shifted = np.exp(scores - np.max(scores))
        scores = shifted / shifted.sum()
    elif activation == "sigmoid":
        scores = 1.0 / (1.0 + np.exp(-scores))
    k = min(top_k or manifest.postprocess.top_k, scores.size)
    order = np.argsort(-scores, kind="stable")[:k]
    return {
        "classes": int(scores.size),
        "top_k": [
            {"index": int(i), "label": manifest.label(int(i)), "probability": json_float(scores[i])} for i in order
        ],
    }


def _segmentation(
    manifest: Manifest,
    value: np.ndarray,
    prepared: PreparedFrame,
    spacing: tuple[float, float] | None,
    include_mask: bool,
) -> dict[str, Any]:
    post = manifest.postprocess
    array = value
    if array.ndim >= 3 and array.shape[0] == 1:
        array = array[0]  # batch
    if post.kind == "scores":
        if array.ndim == 2:
            array = array[np.newaxis]
        labels = np.argmax(array, axis=0)
    elif post.kind == "binary":
        plane = array.reshape(array.shape[-2:]) if array.ndim > 2 else array
        labels = (plane > post.threshold).astype(np.uint8)
    else:
        plane = array.reshape(array.shape[-2:]) if array.ndim > 2 else array
        if np.issubdtype(plane.dtype, np.integer):  # a label map already: no rounding (rint of uint8 is float16)
            labels = np.maximum(plane, 0) if np.issubdtype(plane.dtype, np.signedinteger) else plane
        else:
            labels = np.maximum(np.rint(plane), 0).astype(np.int64)
    labels = labels.astype(np.uint16 if labels.max(initial=0) > 255 else np.uint8, copy=False)

    original_hw = prepared.original_hw
    if labels.shape != original_hw:
        image = Image.fromarray(labels)
        labels = np.asarray(image.resize((original_hw[1], original_hw[0]), Image.Resampling.NEAREST))

    n_classes = max(len(manifest.labels), int(labels.max(initial=0)) + 1, 2 if post.kind == "binary" else 1)
    counts = np.bincount(labels.reshape(-1), minlength=n_classes)
    total = int(labels.size)
    pixel_area = spacing[0] * spacing[1] if spacing else None
    classes = []
    for index in range(n_classes):
        count = int(counts[index])
        classes.append(
            {
                "index": index,
                "label": _segmentation_label(manifest, index, post.kind),
                "pixel_count": count,
                "fraction": round(count / total, 6) if total else 0.0,
                "area_mm2": round(count * pixel_area, 4) if pixel_area is not None else None,
            }
        )
    result: dict[str, Any] = {
        "mask_shape": [int(labels.shape[0]), int(labels.shape[1])],
        "model_shape": list(prepared.model_hw),
        "pixel_area_mm2": pixel_area,
        "classes": classes,
    }
    if include_mask:
        buffer = io.BytesIO()
        Image.fromarray(labels).save(buffer, format="PNG", optimize=False)
        result["mask_png"] = base64.b64encode(buffer.getvalue()).decode("ascii")
    return result


def _segmentation_label(manifest: Manifest, index: int, kind: str) -> str:
    if manifest.labels:
        return manifest.label(index)
    if kind == "binary":
        return ("background", "foreground")[index] if index < 2 else f"class_{index}"
    return f"class_{index}"


def json_float(value: Any) -> float | str:
    """A float as JSON can carry it (non-finite values as protobuf-JSON strings)."""
    number = float(value)
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def _tensor_data(array: np.ndarray) -> list[Any]:
    flat = array.reshape(-1)
    if flat.dtype.kind == "f":
        if np.isfinite(flat).all():
            return flat.astype(np.float64).tolist()
        return [json_float(v) for v in flat]
    if flat.dtype.kind in "iub":
        return flat.tolist()
    return [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in flat.tolist()]


def encode_output(name: str | None, value: Any) -> dict[str, Any]:
    """Encode one output value like an OIP v2 output tensor; sequences and maps faithfully.

    Returns:
        ``{"name", "datatype", "shape", "data"}`` for tensors;
        ``{"name", "datatype": "SEQUENCE", "data": [...]}`` for sequences;
        ``{"name", "datatype": "MAP", "data": [[key, value], ...]}`` for maps.
    """
    encoded: dict[str, Any] = {"name": name} if name is not None else {}
    if isinstance(value, np.ndarray):
        kind = "str" if value.dtype.kind in "OUS" else str(value.dtype)
        encoded.update(
            {
                "datatype": OIP_DATATYPES.get(kind, kind.upper()),
                "shape": [int(d) for d in value.shape],
                "data": _tensor_data(value),
            }
        )
    elif isinstance(value, dict):
        encoded.update({"datatype": "MAP", "data": [[_scalar(k), _scalar(v)] for k, v in value.items()]})
    elif isinstance(value, (list, tuple)):
        encoded.update({"datatype": "SEQUENCE", "data": [encode_output(None, item) for item in value]})
    else:
        encoded.update({"datatype": "SCALAR", "data": _scalar(value)})
    return encoded


def _scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_output(None, value)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (np.floating, float)):
        return json_float(value)
    if isinstance(value, (np.integer, int)):
        return int(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, (str, bool)) or value is None else str(value)
