"""Generate the benchmark models reproducibly (no download, no torch): ``onnx.helper`` and numpy.

* ``bench-resnet18``: a ResNet-18-shaped classifier (conv 7x7/2, max-pool, four stages of two
  BasicBlocks with 64/128/256/512 channels, 1x1/2 projection shortcuts, global average pool,
  fully connected 512 -> 1000): 11,689,512 parameters and about 1.82 GMAC (multiply-adds) on its
  fixed 1x3x224x224 input, like the real ResNet-18, with random He-initialised weights from a
  fixed seed. Conv + BatchNormalization + Relu + Add, so onnxruntime's graph optimiser fuses it
  exactly as it fuses an exported torchvision ResNet-18.
* ``bench-unet``: a small U-Net (1 channel in, 2 classes out, 4-8-16 channels and a 32-channel
  bottleneck, max-pool down, nearest-neighbour ``Resize`` up, skip connections by ``Concat``)
  with dynamic batch, height and width (height and width multiples of 8 are not required: the
  decoder resizes to the skip tensor's shape), about 0.2 GMAC at 512x512.

The files are large (the classifier is about 47 MB), so they are not committed: they are written
on demand under ``.bench/models/`` (git-ignored) and cached by a content hash of this file and
of the library versions that serialise them. Each model gets a ``manifest.json`` in the format of
the README's "Models" section; ``ct-tissue-seg`` (the bundled default model) is copied next to
them so one service process serves all three.

    python -m bench models            # generate (or reuse the cache) and print the directory
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".bench"
MODELS_DIR = CACHE / "models"
DEFAULT_MODEL_DIR = ROOT / "models" / "ct-tissue-seg"
IR_VERSION = 8
OPSET = 17
SEED_RESNET = 18
SEED_UNET = 2015

RESNET_NAME = "bench-resnet18"
UNET_NAME = "bench-unet"
DEFAULT_NAME = "ct-tissue-seg"
RESNET18_PARAMS = 11_689_512
"""torchvision's resnet18 parameter count (conv weights without bias, BN scale/shift, fc)."""


@dataclass
class _Graph:
    """Accumulates nodes, initializers and an analytic multiply-add count."""

    rng: np.random.Generator
    nodes: list[onnx.NodeProto]
    inits: list[onnx.TensorProto]
    macs: int = 0
    counter: int = 0

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.counter}"

    def weight(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(array.astype(np.float32), name))
        return name

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int, out_hw: int | None, bias: bool = False) -> str:
        """A bias-free convolution (He initialisation); ``out_hw`` (square side) feeds the MAC count."""
        w = self.rng.standard_normal((cout, cin, k, k), dtype=np.float32) * np.float32(np.sqrt(2.0 / (cin * k * k)))
        wname = self.weight(self.name("conv_w"), w)
        inputs = [x, wname]
        if bias:
            inputs.append(self.weight(self.name("conv_b"), np.zeros(cout, dtype=np.float32)))
        out = self.name("conv")
        pad = k // 2
        self.nodes.append(
            helper.make_node(
                "Conv", inputs, [out], kernel_shape=[k, k], strides=[stride, stride], pads=[pad, pad, pad, pad]
            )
        )
        if out_hw is not None:
            self.macs += cout * cin * k * k * out_hw * out_hw
        return out

    def bn(self, x: str, channels: int) -> str:
        # Scale below 1 keeps the activations of the random residual stack finite (values do not matter
        # for timing, but NaN logits would make every response carry "NaN" strings).
        scale = self.weight(self.name("bn_scale"), np.full(channels, 0.5, dtype=np.float32))
        shift = self.weight(self.name("bn_shift"), self.rng.normal(0, 0.01, channels).astype(np.float32))
        mean = self.weight(self.name("bn_mean"), np.zeros(channels, dtype=np.float32))
        var = self.weight(self.name("bn_var"), np.ones(channels, dtype=np.float32))
        out = self.name("bn")
        self.nodes.append(helper.make_node("BatchNormalization", [x, scale, shift, mean, var], [out], epsilon=1e-5))
        return out

    def op(self, op_type: str, inputs: list[str], **attrs: Any) -> str:
        out = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [out], **attrs))
        return out


def _finish(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="medai-flow bench/models.py",
        producer_version="1",
    )
    model.ir_version = IR_VERSION
    return model


def resnet18(num_classes: int = 1000) -> tuple[onnx.ModelProto, int]:
    """The ResNet-18-shaped classifier and its multiply-add count on 1x3x224x224.

    Returns:
        The model (checked) and the analytic number of multiply-adds of its convolutions and fc.
    """
    g = _Graph(np.random.default_rng(SEED_RESNET), [], [])
    x = g.conv("input", 3, 64, 7, 2, 112)
    x = g.op("Relu", [g.bn(x, 64)])
    x = g.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin, hw = 64, 56
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if (stage > 0 and block == 0) else 1
            out_hw = hw // stride
            y = g.op("Relu", [g.bn(g.conv(x, cin, cout, 3, stride, out_hw), cout)])
            y = g.bn(g.conv(y, cout, cout, 3, 1, out_hw), cout)
            shortcut = x
            if stride != 1 or cin != cout:
                shortcut = g.bn(g.conv(x, cin, cout, 1, stride, out_hw), cout)
            x = g.op("Relu", [g.op("Add", [y, shortcut])])
            cin, hw = cout, out_hw
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    fc_w = g.weight("fc_w", g.rng.standard_normal((512, num_classes), dtype=np.float32) * np.float32(0.01))
    fc_b = g.weight("fc_b", np.zeros(num_classes, dtype=np.float32))
    g.nodes.append(helper.make_node("Gemm", [x, fc_w, fc_b], ["logits"]))
    g.macs += 512 * num_classes
    graph = helper.make_graph(
        g.nodes,
        "bench_resnet18",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 224, 224])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, num_classes])],
        initializer=g.inits,
    )
    model = _finish(graph)
    onnx.checker.check_model(model, full_check=True)
    return model, g.macs


def unet(base: int = 4, depth: int = 3, num_classes: int = 2, reference_side: int = 512) -> tuple[onnx.ModelProto, int]:
    """A small U-Net with dynamic N, H and W (1 channel in, ``num_classes`` scores out).

    Returns:
        The model (checked) and the analytic multiply-adds of its convolutions on a
        ``reference_side`` x ``reference_side`` image.
    """
    g = _Graph(np.random.default_rng(SEED_UNET), [], [])

    def double_conv(x: str, cin: int, cout: int, side: int) -> str:
        x = g.op("Relu", [g.bn(g.conv(x, cin, cout, 3, 1, side), cout)])
        return g.op("Relu", [g.bn(g.conv(x, cout, cout, 3, 1, side), cout)])

    skips: list[tuple[str, int, int]] = []
    x, cin, side = "image", 1, reference_side
    for level in range(depth):
        cout = base * 2**level
        x = double_conv(x, cin, cout, side)
        skips.append((x, cout, side))
        x = g.op("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2])
        cin, side = cout, side // 2
    x = double_conv(x, cin, base * 2**depth, side)
    cin = base * 2**depth
    empty_roi = g.weight("empty_roi", np.zeros(0, dtype=np.float32))
    empty_scales = g.weight("empty_scales", np.zeros(0, dtype=np.float32))
    for skip, channels, skip_side in reversed(skips):
        # Upsample to the skip's exact size (odd sizes are fine), then concatenate and convolve.
        skip_shape = g.op("Shape", [skip])
        up = g.conv(x, cin, channels, 1, 1, side)  # channels first, so the skip's shape is the target shape
        up = g.op("Resize", [up, empty_roi, empty_scales, skip_shape], mode="nearest", nearest_mode="floor")
        x = double_conv(g.op("Concat", [up, skip], axis=1), 2 * channels, channels, skip_side)
        cin, side = channels, skip_side
    g.nodes.append(
        helper.make_node(
            "Conv",
            [x, g.weight("head_w", g.rng.standard_normal((num_classes, cin, 1, 1), dtype=np.float32) * 0.1),
             g.weight("head_b", np.zeros(num_classes, dtype=np.float32))],
            ["scores"],
            kernel_shape=[1, 1],
        )
    )  # fmt: skip
    g.macs += num_classes * cin * side * side
    graph = helper.make_graph(
        g.nodes,
        "bench_unet",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 1, "H", "W"])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", num_classes, "H", "W"])],
        initializer=g.inits,
    )
    model = _finish(graph)
    onnx.checker.check_model(model, full_check=True)
    return model, g.macs


def parameter_count(model: onnx.ModelProto) -> int:
    """Trainable parameters: every initializer except BatchNormalization running statistics."""
    stats = set()
    for node in model.graph.node:
        if node.op_type == "BatchNormalization":
            stats.update(node.input[3:5])
    return sum(int(np.prod(init.dims)) for init in model.graph.initializer if init.name not in stats)


def manifests(resnet_sha: str, unet_sha: str) -> dict[str, dict[str, Any]]:
    """The manifests of the generated models (README "Models" format)."""
    base = {"schema_version": 1, "version": "1.0.0", "file": "model.onnx"}
    return {
        RESNET_NAME: {
            **base,
            "name": RESNET_NAME,
            "description": "Benchmark: ResNet-18-shaped classifier with random weights (bench/models.py).",
            "task": "classification",
            "sha256": resnet_sha,
            "input": {
                "name": "input", "layout": "NCHW", "channels": 3, "size": [224, 224], "resize": "bilinear",
                "dtype": "float32", "intensity": "display", "range": [0, 1],
                "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
            },
            "labels": [f"class_{i}" for i in range(1000)],
            "postprocess": {"output": "logits", "activation": "softmax", "top_k": 5},
        },
        UNET_NAME: {
            **base,
            "name": UNET_NAME,
            "description": "Benchmark: small U-Net, dynamic height and width, random weights (bench/models.py).",
            "task": "segmentation",
            "sha256": unet_sha,
            "input": {
                "name": "image", "layout": "NCHW", "channels": 1, "size": None, "resize": "bilinear",
                "dtype": "float32", "intensity": "display",
            },
            "labels": ["background", "foreground"],
            "postprocess": {"output": "scores", "kind": "scores"},
        },
    }  # fmt: skip


def generator_hash() -> str:
    """Content hash of what determines the generated bytes: this file and the onnx/numpy versions."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    digest.update(f"onnx {onnx.__version__} numpy {np.__version__}".encode())
    return digest.hexdigest()


def ensure_models(directory: Path = MODELS_DIR, *, force: bool = False) -> Path:
    """Generate the benchmark models into ``directory`` unless the cache there is current.

    Returns:
        The models directory (one sub-directory per model, each with ``manifest.json``).
    """
    stamp = directory / ".generator.sha256"
    wanted = generator_hash()
    default_src = DEFAULT_MODEL_DIR / "model.onnx"
    default_copy = directory / DEFAULT_NAME / "model.onnx"
    fresh = (
        not force
        and stamp.exists()
        and stamp.read_text().strip() == wanted
        and default_copy.exists()
        and default_copy.read_bytes() == default_src.read_bytes()
    )
    if fresh:
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    blobs = {
        RESNET_NAME: resnet18()[0].SerializeToString(deterministic=True),
        UNET_NAME: unet()[0].SerializeToString(deterministic=True),
    }
    shas = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    for name, manifest in manifests(shas[RESNET_NAME], shas[UNET_NAME]).items():
        target = directory / name
        target.mkdir(parents=True, exist_ok=True)
        (target / "model.onnx").write_bytes(blobs[name])
        (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    shutil.copytree(DEFAULT_MODEL_DIR, directory / DEFAULT_NAME, dirs_exist_ok=True)
    stamp.write_text(wanted + "\n")
    return directory
