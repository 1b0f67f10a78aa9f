"""Manifest-driven preprocessing: from a decoded frame to the model's input tensor.

Order of operations for one frame:

1. **Intensity.** ``modality`` models receive modality values (Hounsfield units
   for CT) unchanged; they need a greyscale DICOM. ``display`` models receive
   values in [0, 1]:

   * greyscale DICOM goes through VOI, chosen in this order (the VOI precedence
     policy): the manifest's window when its priority is ``model``; the file's
     VOI LUT Sequence (first item); the file's first Window Center/Width pair
     with its VOI LUT Function; the manifest's window when its priority is
     ``default``; finally the frame's own minimum and maximum. MONOCHROME1 is
     then inverted (``1 - v``) so that a higher value is always brighter;
   * colour DICOM, PNG and JPEG are divided by their full-scale value (255,
     65535 for 16-bit PNG, ``2**BitsStored - 1`` for DICOM).

2. **Channels.** RGB to one channel uses ITU-R BT.601 luma
   (0.299 R + 0.587 G + 0.114 B, as Pillow's ``L`` conversion); one channel to
   three replicates it.
3. **Size.** Resized (per channel, in float, by Pillow) to the manifest's size,
   else to the model's fixed height and width, else kept native.
4. **Scaling.** ``display`` values are mapped to the manifest's ``range``, then
   ``(x - mean) / std`` per channel.
5. **Layout and dtype.** Transposed to the manifest's layout, a batch axis
   added where the layout has one, and cast to the model's input dtype
   (``uint8`` is rounded and clipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from .errors import IncompatibleInput, shown_code_string
from .image import DecodedImage, Window
from .manifest import InputSpec

_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class PreparedFrame:
    """One frame ready for ``session.run``.

    Attributes:
        frame: Index of the frame in the object.
        tensor: The model input, already in layout and dtype.
        original_hw: (rows, columns) of the decoded frame.
        model_hw: (height, width) the model sees.
        voi: How intensities were windowed (``display`` models), for the response.
    """

    frame: int
    tensor: np.ndarray
    original_hw: tuple[int, int]
    model_hw: tuple[int, int]
    voi: dict[str, Any] | None


def prepare_frame(
    image: DecodedImage,
    frame_index: int,
    spec: InputSpec,
    fixed_hw: tuple[int | None, int | None],
) -> PreparedFrame:
    """Turn frame ``frame_index`` of ``image`` into the model's input tensor.

    Args:
        image: The decoded image.
        frame_index: Which frame of the object.
        spec: The manifest's input specification.
        fixed_hw: The model's fixed height and width (None where dynamic).

    Raises:
        IncompatibleInput: A ``modality`` model was sent an image without
            modality values (PNG, JPEG or colour DICOM).
    """
    check_compatible(image, spec)
    frame = image.frame(frame_index)
    voi: dict[str, Any] | None = None
    if spec.intensity == "modality":
        values = frame.astype(np.float32, copy=False)  # only read: the planes are new buffers
    else:
        values, voi = display_values(image, frame, spec)

    values = _adapt_channels(values, spec.channels)
    target = (spec.size[0], spec.size[1]) if spec.size else (fixed_hw[0] or image.rows, fixed_hw[1] or image.columns)
    planes = _planes(values, target, spec)
    tensor = _cast(_to_layout(planes, spec.layout), spec.dtype)
    return PreparedFrame(
        frame=frame_index,
        tensor=tensor,
        original_hw=(image.rows, image.columns),
        model_hw=target,
        voi=voi,
    )


def check_compatible(image: DecodedImage, spec: InputSpec) -> None:
    """Refuse an image the model cannot meaningfully read.

    Raises:
        IncompatibleInput: The manifest restricts DICOM modalities and this one is
            not among them, or a ``modality`` model was sent an image without
            modality values.
    """
    if spec.modalities and image.source == "dicom" and (image.modality or "").upper() not in spec.modalities:
        raise IncompatibleInput(
            f"This model accepts DICOM modalities {', '.join(spec.modalities)}; "
            f"the image's Modality is {shown_code_string(image.modality or '') or '(missing)'}.",
            accepted_modalities=list(spec.modalities),
        )
    if spec.intensity == "modality" and not image.has_modality_values:
        raise IncompatibleInput(
            "This model reads modality values (such as CT Hounsfield units) and needs a greyscale DICOM "
            f"image; a {image.source.upper()} {image.photometric} image has none.",
        )


def display_values(image: DecodedImage, frame: np.ndarray, spec: InputSpec) -> tuple[np.ndarray, dict | None]:
    """Map a frame to display values in [0, 1] (see the module docstring).

    Returns:
        The values (float32, same shape as ``frame``) and, for greyscale DICOM,
        a description of the VOI applied.
    """
    if not image.has_modality_values:
        scale = np.float32(1.0 / image.full_scale) if image.full_scale else np.float32(1.0)
        values = frame * scale
        return np.clip(values, 0.0, 1.0, out=values).astype(np.float32, copy=False), None

    window: Window | None = None
    manifest_window = spec.window
    voi: dict[str, Any]
    if manifest_window is not None and manifest_window.priority == "model":
        window = Window(manifest_window.center, manifest_window.width, "LINEAR", "model")
    elif image.voi_lut is not None:
        lut = image.voi_lut
        index = np.clip(np.rint(frame).astype(np.int64) - lut.first_mapped, 0, lut.table.size - 1)
        values = lut.table[index] / float(2**lut.bits - 1)
        voi = {"source": "file_voi_lut"}
        return _invert_if_monochrome1(values.astype(np.float32), image), voi
    elif image.windows:
        window = image.windows[0]
    elif manifest_window is not None:
        window = Window(manifest_window.center, manifest_window.width, "LINEAR", "model_default")

    if window is None:
        low, high = float(frame.min()), float(frame.max())
        values = (frame - low) / (high - low) if high > low else np.zeros_like(frame)
        voi = {"source": "min_max", "low": low, "high": high}
    else:
        values = apply_window(frame, window)
        voi = {"source": window.source, "center": window.center, "width": window.width, "function": window.function}
    return _invert_if_monochrome1(values.astype(np.float32, copy=False), image), voi


def apply_window(values: np.ndarray, window: Window) -> np.ndarray:
    """Apply a VOI window with output range [0, 1] (PS3.3 C.11.2.1.2.1 and C.11.2.1.3.2).

    Args:
        values: Modality values.
        window: Center, width and VOI LUT Function.

    Returns:
        float64 values in [0, 1].
    """
    x = values.astype(np.float64, copy=False)
    c, w = window.center, window.width
    if window.function == "SIGMOID":
        return 1.0 / (1.0 + np.exp(-4.0 * (x - c) / w))
    if window.function == "LINEAR_EXACT":
        return np.clip((x - c) / w + 0.5, 0.0, 1.0)
    # LINEAR: below c - 0.5 - (w-1)/2 -> 0; above c - 0.5 + (w-1)/2 -> 1.
    if w <= 1:
        return (x > c - 0.5).astype(np.float64)
    return np.clip((x - (c - 0.5)) / (w - 1) + 0.5, 0.0, 1.0)


def _invert_if_monochrome1(values: np.ndarray, image: DecodedImage) -> np.ndarray:
    return (1.0 - values) if image.photometric == "MONOCHROME1" else values


def _adapt_channels(values: np.ndarray, channels: int) -> np.ndarray:
    have = values.shape[2]
    if have == channels:
        return values
    if channels == 1:
        return (values @ _LUMA)[:, :, np.newaxis].astype(np.float32, copy=False)
    return np.repeat(values, channels, axis=2)


def _planes(values: np.ndarray, size: tuple[int, int], spec: InputSpec) -> np.ndarray:
    """Steps 3 and 4, one channel at a time, into one new (channels, height, width) float32 buffer.

    Each channel is resized (if its size differs) and scaled straight into its plane of the
    buffer, so no whole-image temporary is made for either step. The arithmetic is the same,
    element by element, as applying each step to the whole image (float32 throughout).
    """
    height, width = size
    channels = values.shape[2]
    planes = np.empty((channels, height, width), dtype=np.float32)
    resize = (height, width) != (values.shape[0], values.shape[1])
    ranged = spec.intensity == "display" and spec.value_range != (0.0, 1.0)
    low, high = spec.value_range
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    normalise = bool(np.any(mean != 0) or np.any(std != 1))
    for c in range(channels):
        plane = planes[c]
        source = values[:, :, c]
        if resize:
            source = _resize_plane(source, (width, height), spec.resize)
        if ranged:
            np.multiply(source, np.float32(high - low), out=plane)
            np.add(plane, np.float32(low), out=plane)
            source = plane
        if normalise:
            np.subtract(source, mean[c], out=plane)
            np.divide(plane, std[c], out=plane)
        elif source is not plane:
            np.copyto(plane, source)
    return planes


def _resize_plane(plane: np.ndarray, size: tuple[int, int], method: str) -> np.ndarray:
    """One channel resized by Pillow in float (mode ``F``) to ``size`` (width, height)."""
    image = Image.fromarray(np.ascontiguousarray(plane, dtype=np.float32), mode="F")
    return np.asarray(image.resize(size, _RESAMPLE[method]), dtype=np.float32)


def _to_layout(planes: np.ndarray, layout: str) -> np.ndarray:
    """From (channels, height, width) to the manifest's layout."""
    if layout == "NCHW":
        return planes[np.newaxis]
    if layout == "CHW":
        return planes
    if layout == "NHWC":
        return np.ascontiguousarray(planes.transpose(1, 2, 0)[np.newaxis])
    if layout == "HWC":
        return np.ascontiguousarray(planes.transpose(1, 2, 0))
    return planes[0]  # HW: one channel (the manifest allows no other)


def _cast(tensor: np.ndarray, dtype: str) -> np.ndarray:
    if dtype == "uint8":
        return np.clip(np.rint(tensor), 0, 255).astype(np.uint8)
    return tensor.astype(np.dtype(dtype), copy=False)
