"""The benchmark inputs: real files from ``tests/data/inputs`` and two generated PNGs.

Generated deterministically (fixed seed, Pillow's PNG encoder at its default settings) under
``.bench/inputs/``: a 512x512 RGB PNG for the classifier (the issue's reference input) and a
512x512 greyscale PNG for the U-Net. Both are smooth gradients with seeded noise, so the PNG
decoder does real work (neither blank nor incompressible noise).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .models import CACHE, DEFAULT_NAME, RESNET_NAME, ROOT, UNET_NAME

TEST_INPUTS = ROOT / "tests" / "data" / "inputs"
VARYING_SIZES = TEST_INPUTS / "varying_sizes"
INPUTS_DIR = CACHE / "inputs"
SEED = 512


@dataclass(frozen=True)
class Workload:
    """One model and the input every measurement sends it."""

    model: str
    input_path: Path
    media_type: str

    @property
    def body(self) -> bytes:
        return self.input_path.read_bytes()


def synthetic_png(side: int, mode: str, seed: int = SEED) -> bytes:
    """A deterministic ``side`` x ``side`` PNG (``RGB`` or ``L``): gradients plus seeded noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / max(1, side - 1)
    channels = 3 if mode == "RGB" else 1
    planes = []
    for c in range(channels):
        base = 0.5 + 0.25 * np.sin(2 * np.pi * (x * (c + 1) + y * (2 - c * 0.5))) + 0.2 * (x - y)
        noise = rng.normal(0.0, 0.04, size=(side, side)).astype(np.float32)
        planes.append(np.clip((base + noise) * 255.0, 0, 255).astype(np.uint8))
    array = np.stack(planes, axis=2) if channels == 3 else planes[0]
    out = io.BytesIO()
    Image.fromarray(array, mode=mode).save(out, format="PNG")
    return out.getvalue()


def ensure_inputs(directory: Path = INPUTS_DIR) -> dict[str, Workload]:
    """Write the generated inputs (if missing or different) and return the workload of each model."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "rgb_512.png": synthetic_png(512, "RGB"),
        "gray_512.png": synthetic_png(512, "L"),
    }
    for name, content in files.items():
        path = directory / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)
    return {
        DEFAULT_NAME: Workload(DEFAULT_NAME, TEST_INPUTS / "real_CT_small.dcm", "application/dicom"),
        RESNET_NAME: Workload(RESNET_NAME, directory / "rgb_512.png", "image/png"),
        UNET_NAME: Workload(UNET_NAME, directory / "gray_512.png", "image/png"),
    }


def varying_size_inputs() -> list[Path]:
    """The 20 PNGs of different sizes used by the memory measurement, sorted by name."""
    return sorted(VARYING_SIZES.glob("*.png"))
