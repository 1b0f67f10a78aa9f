"""Preprocessing against the whole-image computation, step by step, in numpy and Pillow.

The service resizes and scales one channel at a time into the model's buffer
(``inference.preprocess._planes``). Here each step of the module's documented order is applied
to the whole image instead: display values, per-channel resize in float (Pillow ``F``), range,
``(x - mean) / std``, layout, dtype. Both are float32 throughout, so they must agree bit for bit.
The inputs are real files written by Pillow and pydicom and decoded by the service.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pydicom
import pytest
from PIL import Image

from inference.decode import decode
from inference.manifest import InputSpec
from inference.preprocess import prepare_frame
from inference.settings import ImagingSettings, LimitSettings
from tests import dicom_factory

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def decoded(data: bytes):
    return decode(data, limits=LimitSettings(), imaging=ImagingSettings())


def png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def whole_image(values: np.ndarray, spec: InputSpec) -> np.ndarray:
    """Steps 3 to 5 on the whole (rows, columns, channels) float32 image."""
    height, width = spec.size or values.shape[:2]
    if (height, width) != values.shape[:2]:
        planes = [
            np.asarray(Image.fromarray(np.ascontiguousarray(plane), "F").resize((width, height), Image.BILINEAR))
            for plane in values.transpose(2, 0, 1)
        ]
        values = np.stack(planes, axis=2)
    low, high = spec.value_range
    if spec.intensity == "display" and spec.value_range != (0.0, 1.0):
        values = values * np.float32(high - low) + np.float32(low)
    values = (values - np.float32(spec.mean)) / np.float32(spec.std)
    chw = values.transpose(2, 0, 1)
    tensor = {"NCHW": chw[None], "CHW": chw, "NHWC": values[None], "HWC": values, "HW": values[:, :, 0]}[spec.layout]
    if spec.dtype == "uint8":
        return np.clip(np.rint(tensor), 0, 255).astype(np.uint8)
    return tensor.astype(spec.dtype)


def check(image, spec: InputSpec, expected: np.ndarray) -> None:
    """prepare_frame gives ``expected``, twice, and leaves the decoded frame as it was."""
    before = hashlib.sha256(image.frame(0).tobytes()).hexdigest()
    first = prepare_frame(image, 0, spec, (None, None)).tensor
    second = prepare_frame(image, 0, spec, (None, None)).tensor
    assert hashlib.sha256(image.frame(0).tobytes()).hexdigest() == before, "the decoded frame was changed"
    assert first.dtype == expected.dtype and first.shape == expected.shape
    np.testing.assert_array_equal(first, expected)
    np.testing.assert_array_equal(second, expected)


@pytest.mark.requirement("REQ-FUNC-011")
@pytest.mark.parametrize("layout", ["NCHW", "NHWC", "CHW", "HWC"])
@pytest.mark.parametrize("value_range", [(0.0, 1.0), (-1.0, 1.0)])
@pytest.mark.parametrize("normalised", [True, False], ids=["imagenet", "identity"])
@pytest.mark.parametrize("size", [(16, 24), None], ids=["resized", "native"])
@pytest.mark.parametrize("dtype", ["float32", "float16", "uint8"])
def test_rgb_png_matches_the_whole_image_computation(layout, value_range, normalised, size, dtype):
    pixels = np.random.default_rng(11).integers(0, 256, size=(37, 41, 3), dtype=np.uint8)
    mean, std = IMAGENET if normalised else ((0.0,) * 3, (1.0,) * 3)
    spec = InputSpec(
        name="x", layout=layout, channels=3, size=size, resize="bilinear",
        value_range=value_range, mean=mean, std=std, dtype=dtype,
    )
    display = np.clip(pixels.astype(np.float32) * np.float32(1 / 255), 0, 1)
    check(decoded(png(pixels)), spec, whole_image(display, spec))


@pytest.mark.requirement("REQ-FUNC-011")
@pytest.mark.parametrize("layout", ["HW", "NCHW"])
@pytest.mark.parametrize("normalised", [True, False], ids=["scaled", "identity"])
@pytest.mark.parametrize("size", [(10, 12), None], ids=["resized", "native"])
def test_ct_hounsfield_units_match_the_whole_image_computation(layout, normalised, size):
    # A modality model reads the Hounsfield units themselves: stored value + RescaleIntercept -1024.
    data, _ = dicom_factory.ct_with_phi(rows=16, columns=20)
    image = decoded(data)
    ds = pydicom.dcmread(io.BytesIO(data))
    hu = (ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept))[:, :, None]
    spec = InputSpec(
        name="x", layout=layout, channels=1, size=size, resize="bilinear", intensity="modality",
        modalities=("CT",), mean=(40.0,) if normalised else (0.0,), std=(400.0,) if normalised else (1.0,),
    )
    check(image, spec, whole_image(hu, spec))


@pytest.mark.requirement("REQ-FUNC-011")
def test_greyscale_png_to_an_rgb_model_and_rgb_to_a_greyscale_model():
    grey = np.random.default_rng(5).integers(0, 256, size=(9, 14), dtype=np.uint8)
    rgb = np.random.default_rng(6).integers(0, 256, size=(9, 14, 3), dtype=np.uint8)
    to_rgb = InputSpec(name="x", layout="NCHW", channels=3, size=(5, 7), mean=IMAGENET[0], std=IMAGENET[1])
    values = np.repeat(np.clip(grey.astype(np.float32) * np.float32(1 / 255), 0, 1)[:, :, None], 3, axis=2)
    check(decoded(png(grey)), to_rgb, whole_image(values, to_rgb))

    to_grey = InputSpec(name="x", layout="HW", channels=1, size=None)
    luma = np.clip(rgb.astype(np.float32) * np.float32(1 / 255), 0, 1) @ np.float32([0.299, 0.587, 0.114])
    check(decoded(png(rgb)), to_grey, whole_image(luma[:, :, None].astype(np.float32), to_grey))
