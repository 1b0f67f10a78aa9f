"""Model manifests: what a model is and how to feed it.

A model is a directory holding an ``.onnx`` file and a ``manifest.json``::

    {
      "schema_version": 1,
      "name": "ct-tissue-seg",               # [a-z0-9][a-z0-9._-]* ; the URL name
      "version": "1.0.0",
      "description": "...",
      "task": "segmentation",                # classification | segmentation | raw
      "file": "model.onnx",                  # relative to the manifest
      "sha256": "<64 hex>",                  # verified before a session exists
      "input": {
        "name": "image",                     # the ONNX input fed with the image
        "layout": "NCHW",                    # NCHW | NHWC | CHW | HWC | HW
        "channels": 1,                       # 1 or 3 (images are adapted)
        "size": null,                        # [H, W]; null = the model's fixed size, or native
        "resize": "bilinear",                # nearest | bilinear | bicubic | lanczos | box
        "dtype": "float32",                  # float32 | float16 | uint8 (must match the model)
        "intensity": "display",              # display (VOI window -> [0,1]) | modality (e.g. HU)
        "window": {"center": 40, "width": 400, "priority": "model"},   # optional
        "range": [0, 1],                     # display values mapped to [lo, hi]
        "mean": [0.0], "std": [1.0],         # per channel, after range
        "modalities": ["CT"]                 # optional: DICOM Modality values accepted
      },
      "constants": {"other_input": {"dtype": "float32", "shape": [1], "value": [1.0]}},
      "labels": ["air", "soft tissue", "bone"],
      "postprocess": {                       # per task, see below
        "output": "labels",
        "kind": "label_map",                 # segmentation: label_map | scores | binary
        "threshold": 0.5,                    # binary
        "activation": "none",                # classification: softmax | sigmoid | none
        "top_k": 5
      }
    }

The manifest is checked twice: against this schema when it is read, and
against the ONNX graph's real inputs and outputs once the session exists.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelLoadError

LAYOUTS = ("NCHW", "NHWC", "CHW", "HWC", "HW")
RESIZE_METHODS = ("nearest", "bilinear", "bicubic", "lanczos", "box")
INPUT_DTYPES = ("float32", "float16", "uint8")
TASKS = ("classification", "segmentation", "raw")
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")

ONNX_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(double)": "float64",
    "tensor(uint8)": "uint8",
    "tensor(int8)": "int8",
    "tensor(uint16)": "uint16",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
}


@dataclass(frozen=True)
class WindowSpec:
    """A VOI window the model was trained with.

    ``priority`` ``model``: always used (the model's training window wins over the
    file's); ``default``: used only when the file has no VOI of its own.
    """

    center: float
    width: float
    priority: str = "model"


@dataclass(frozen=True)
class InputSpec:
    name: str
    layout: str = "NCHW"
    channels: int = 1
    size: tuple[int, int] | None = None
    resize: str = "bilinear"
    dtype: str = "float32"
    intensity: str = "display"
    window: WindowSpec | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    modalities: tuple[str, ...] = ()


@dataclass(frozen=True)
class Constant:
    dtype: str
    shape: tuple[int, ...]
    value: tuple[Any, ...]


@dataclass(frozen=True)
class PostprocessSpec:
    output: str | None = None
    kind: str = "label_map"
    threshold: float = 0.5
    activation: str = "none"
    top_k: int = 5


@dataclass(frozen=True)
class Manifest:
    """A validated model manifest."""

    name: str
    version: str
    sha256: str
    task: str
    model_path: Path
    input: InputSpec
    description: str = ""
    labels: tuple[str, ...] = ()
    constants: dict[str, Constant] = field(default_factory=dict)
    postprocess: PostprocessSpec = field(default_factory=PostprocessSpec)
    manifest_path: Path | None = None

    def label(self, index: int) -> str:
        """The label of class ``index``, or ``class_<index>`` when none is declared."""
        return self.labels[index] if 0 <= index < len(self.labels) else f"class_{index}"


def load_manifest(path: Path) -> Manifest:
    """Read and validate ``manifest.json``.

    Raises:
        ModelLoadError: The file is missing, not JSON, or breaks the schema; the
            message names the manifest and the field.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path}: cannot read the manifest ({err.__class__.__name__})") from err
    try:
        return parse_manifest(raw, base_dir=path.parent, manifest_path=path)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelLoadError(f"{path}: {err}") from err


def parse_manifest(raw: dict[str, Any], *, base_dir: Path, manifest_path: Path | None = None) -> Manifest:
    """Validate a manifest dict; see the module docstring for the schema.

    Raises:
        ValueError, KeyError, TypeError: Naming the offending field.
    """
    if not isinstance(raw, dict):
        raise TypeError("the manifest must be a JSON object")
    if raw.get("schema_version", 1) != 1:
        raise ValueError(f"schema_version {raw.get('schema_version')!r} is not supported (1 is)")
    name = _require(raw, "name", str)
    if not _NAME.match(name):
        raise ValueError(f"name {name!r} must match {_NAME.pattern}")
    sha256 = _require(raw, "sha256", str).lower()
    if not _SHA256.match(sha256):
        raise ValueError("sha256 must be 64 hexadecimal characters")
    task = raw.get("task") or "raw"
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, not {task!r}")
    file_name = _require(raw, "file", str)
    model_path = (base_dir / file_name).resolve()
    if base_dir.resolve() not in model_path.parents:
        raise ValueError("file must be inside the model's directory")

    spec = _require(raw, "input", dict)
    layout = spec.get("layout", "NCHW")
    if layout not in LAYOUTS:
        raise ValueError(f"input.layout must be one of {LAYOUTS}")
    channels = int(spec.get("channels", 1))
    if channels not in (1, 3):
        raise ValueError("input.channels must be 1 or 3")
    if "C" not in layout and channels != 1:
        raise ValueError(f"input.layout {layout} has no channel axis, so input.channels must be 1")
    size = spec.get("size")
    if size is not None:
        if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
            raise ValueError("input.size must be [height, width] with positive integers, or null")
        size = (size[0], size[1])
    resize = spec.get("resize", "bilinear")
    if resize not in RESIZE_METHODS:
        raise ValueError(f"input.resize must be one of {RESIZE_METHODS}")
    dtype = spec.get("dtype", "float32")
    if dtype not in INPUT_DTYPES:
        raise ValueError(f"input.dtype must be one of {INPUT_DTYPES}")
    intensity = spec.get("intensity", "display")
    if intensity not in ("display", "modality"):
        raise ValueError("input.intensity must be display or modality")
    window = None
    if spec.get("window") is not None:
        w = spec["window"]
        priority = w.get("priority", "model")
        if priority not in ("model", "default"):
            raise ValueError("input.window.priority must be model or default")
        window = WindowSpec(center=float(w["center"]), width=float(w["width"]), priority=priority)
        if window.width < 1:
            raise ValueError("input.window.width must be >= 1")
    value_range = tuple(float(v) for v in spec.get("range", (0.0, 1.0)))
    if len(value_range) != 2:
        raise ValueError("input.range must be [low, high]")
    mean = _per_channel(spec.get("mean", [0.0]), channels, "input.mean")
    std = _per_channel(spec.get("std", [1.0]), channels, "input.std")
    if any(s == 0 for s in std):
        raise ValueError("input.std must not contain 0")
    modalities = spec.get("modalities") or []
    if not isinstance(modalities, list) or not all(isinstance(m, str) and m for m in modalities):
        raise ValueError("input.modalities must be a list of DICOM Modality values, e.g. [\"CT\"]")

    constants = {}
    for cname, c in (raw.get("constants") or {}).items():
        constants[cname] = Constant(
            dtype=str(c["dtype"]), shape=tuple(int(d) for d in c["shape"]), value=tuple(c["value"])
        )

    labels = tuple(str(label) for label in raw.get("labels") or ())
    pp = raw.get("postprocess") or {}
    post = PostprocessSpec(
        output=pp.get("output"),
        kind=pp.get("kind", "label_map"),
        threshold=float(pp.get("threshold", 0.5)),
        activation=pp.get("activation", "none"),
        top_k=int(pp.get("top_k", 5)),
    )
    if post.kind not in ("label_map", "scores", "binary"):
        raise ValueError("postprocess.kind must be label_map, scores or binary")
    if post.activation not in ("softmax", "sigmoid", "none"):
        raise ValueError("postprocess.activation must be softmax, sigmoid or none")
    if post.top_k < 1:
        raise ValueError("postprocess.top_k must be >= 1")

    return Manifest(
        name=name,
        version=str(_require(raw, "version", str)),
        sha256=sha256,
        task=task,
        model_path=model_path,
        description=str(raw.get("description", "")),
        input=InputSpec(
            name=_require(spec, "name", str),
            layout=layout,
            channels=channels,
            size=size,
            resize=resize,
            dtype=dtype,
            intensity=intensity,
            window=window,
            value_range=(value_range[0], value_range[1]),
            mean=mean,
            std=std,
            modalities=tuple(m.upper() for m in modalities),
        ),
        constants=constants,
        labels=labels,
        postprocess=post,
        manifest_path=manifest_path,
    )


def _require(raw: dict[str, Any], key: str, kind: type) -> Any:
    if key not in raw:
        raise KeyError(f"missing required field {key!r}")
    value = raw[key]
    if not isinstance(value, kind):
        raise TypeError(f"field {key!r} must be a {kind.__name__}")
    return value


def _per_channel(values: Any, channels: int, label: str) -> tuple[float, ...]:
    numbers = tuple(float(v) for v in (values if isinstance(values, list) else [values]))
    if len(numbers) == 1:
        return numbers * channels
    if len(numbers) != channels:
        raise ValueError(f"{label} must have 1 or {channels} values")
    return numbers
