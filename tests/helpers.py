"""Small helpers for reading service responses in tests."""

from __future__ import annotations

from typing import Any

import numpy as np

_DTYPES = {"FP32": np.float32, "FP16": np.float16, "UINT8": np.uint8, "INT64": np.int64, "FP64": np.float64}


def output_tensor(result: dict[str, Any], frame: int = 0, output: int = 0) -> np.ndarray:
    """The ``output``-th raw output tensor of prediction ``frame``, as numpy."""
    encoded = result["predictions"][frame]["outputs"][output]
    return np.asarray(encoded["data"], dtype=_DTYPES[encoded["datatype"]]).reshape(encoded["shape"])


def image_plane(result: dict[str, Any], frame: int = 0) -> np.ndarray:
    """The tensor an identity NCHW model received, as (H, W, C)."""
    tensor = output_tensor(result, frame)
    return tensor[0].transpose(1, 2, 0)


def class_counts(result: dict[str, Any], frame: int = 0) -> dict[str, int]:
    """Segmentation: label -> pixel count."""
    return {c["label"]: c["pixel_count"] for c in result["predictions"][frame]["classes"]}
