"""PNG and JPEG decoding with Pillow.

Policies (documented in the README):

* Only the PNG and JPEG plugins are allowed to open a body; the content was
  sniffed before, and other Pillow formats are never tried.
* The frame size is checked against ``MEDAI_MAX_PIXELS`` from the header,
  before decoding. Pillow's decompression-bomb guard stays at its default and is
  never raised or disabled; ``ImageFile.LOAD_TRUNCATED_IMAGES`` is never set, so
  a truncated file is a 422 ``corrupt_image``.
* EXIF orientation is applied (``ImageOps.exif_transpose``).
* 16-bit greyscale is scaled to its full 16-bit range, not clamped to 8 bits.
* Transparency (RGBA, LA, palette with tRNS) is composited on the configured
  background colour (``MEDAI_ALPHA_BACKGROUND``, black by default); alpha never
  reaches the model as a channel.
* Palette images become RGB; CMYK and YCbCr become RGB; 1-bit becomes 0/255.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps

from . import sniff
from .errors import CorruptImage, ImageTooLarge
from .image import DecodedImage
from .limits import check_image_geometry
from .settings import ImagingSettings, LimitSettings

_FORMATS = {sniff.PNG: ("PNG",), sniff.JPEG: ("JPEG",)}

# Pillow warns (and does not refuse) between MAX_IMAGE_PIXELS and twice that. The size check
# below refuses those images anyway (MEDAI_MAX_PIXELS is capped at Pillow's limit), so the
# warning is noise. Set once, process-wide: ``warnings.catch_warnings`` is not thread-safe.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def decode_raster(
    data: bytes,
    media_type: str,
    *,
    limits: LimitSettings,
    imaging: ImagingSettings,
) -> DecodedImage:
    """Decode a PNG or JPEG body.

    Raises:
        CorruptImage: The file is truncated or malformed.
        ImageTooLarge: The declared size exceeds the limits, or Pillow's
            decompression-bomb guard fired.
    """
    try:
        image = Image.open(io.BytesIO(data), formats=_FORMATS[media_type])
        width, height = image.size
        check_image_geometry(
            rows=height,
            columns=width,
            frames=1,
            samples=len(image.getbands()),
            bytes_per_sample=2 if image.mode.startswith("I") else 1,
            limits=limits,
        )
        image.load()
        image = ImageOps.exif_transpose(image)
    except ImageTooLarge:
        raise
    except Image.DecompressionBombError as err:
        raise ImageTooLarge("The image declares more pixels than the decoder accepts.") from err
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # anything Pillow raises on client bytes is a client error
        raise CorruptImage(f"The {media_type.split('/')[1].upper()} file is truncated or corrupt.") from err

    pixels, full_scale, photometric = _to_array(image, imaging.alpha_background)
    frame = pixels.astype(np.float32, copy=False)
    if frame.ndim == 2:
        frame = frame[:, :, np.newaxis]
    return DecodedImage(
        source="png" if media_type == sniff.PNG else "jpeg",
        media_type=media_type,
        rows=int(frame.shape[0]),
        columns=int(frame.shape[1]),
        samples=int(frame.shape[2]),
        photometric=photometric,
        full_scale=full_scale,
        loader=lambda index: frame,
    )


def _to_array(image: Image.Image, background: tuple[int, int, int]) -> tuple[np.ndarray, float, str]:
    """Return (pixels, full-scale value, photometric) for a loaded Pillow image."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.uint16), 65535.0, "MONOCHROME2"
    if mode == "I":
        # 16-bit PNGs decode as "I" in some Pillow versions; their range is 16-bit.
        return np.clip(np.asarray(image, dtype=np.int64), 0, 65535), 65535.0, "MONOCHROME2"
    if mode == "F":
        return np.asarray(image, dtype=np.float32), 1.0, "MONOCHROME2"
    if mode == "1":
        return np.asarray(image.convert("L")), 255.0, "MONOCHROME2"
    if mode == "LA" or (mode == "L" and "transparency" in image.info):
        grey = _composite(image.convert("RGBA"), background).convert("L")
        return np.asarray(grey), 255.0, "MONOCHROME2"
    if mode == "L":
        return np.asarray(image), 255.0, "MONOCHROME2"
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        image = image.convert("RGBA" if has_alpha else "RGB")
        mode = image.mode
    if mode in ("RGBA", "RGBa"):
        image = _composite(image.convert("RGBA"), background)
    elif mode == "RGB" and "transparency" in image.info:
        image = _composite(image.convert("RGBA"), background)
    elif mode != "RGB":
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return np.asarray(image), 255.0, "RGB"


def _composite(rgba: Image.Image, background: tuple[int, int, int]) -> Image.Image:
    base = Image.new("RGBA", rgba.size, (*background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")
