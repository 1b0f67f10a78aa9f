"""Size limits checked from headers, before any large allocation."""

from __future__ import annotations

from .errors import ImageTooLarge, PayloadTooLarge
from .settings import LimitSettings


def check_body_size(size: int, limits: LimitSettings) -> None:
    """Refuse a body or blob larger than the configured maximum.

    Raises:
        PayloadTooLarge: ``size`` exceeds ``limits.max_body_bytes``.
    """
    if size > limits.max_body_bytes:
        raise PayloadTooLarge(
            f"The body is {size} bytes; the limit is {limits.max_body_bytes} bytes. "
            "Upload larger studies to the batch input container instead.",
            limit=limits.max_body_bytes,
        )


def check_image_geometry(
    *,
    rows: int,
    columns: int,
    frames: int,
    samples: int,
    bytes_per_sample: int,
    limits: LimitSettings,
) -> None:
    """Refuse an image whose declared geometry exceeds the limits.

    Called with the values a header declares, before any pixel buffer exists,
    so a 1 KB file declaring 65535 x 65535 x 1000 frames costs nothing.

    Raises:
        ImageTooLarge: A frame has too many pixels, there are too many frames,
            or the decoded buffer would exceed ``limits.max_decoded_bytes``.
    """
    pixels = rows * columns
    if pixels > limits.max_pixels:
        raise ImageTooLarge(
            f"A frame of {rows} x {columns} pixels exceeds the limit of {limits.max_pixels} pixels.",
            limit=limits.max_pixels,
        )
    if frames > limits.max_frames:
        raise ImageTooLarge(
            f"The object declares {frames} frames; the limit is {limits.max_frames}.",
            limit=limits.max_frames,
        )
    decoded = pixels * frames * samples * bytes_per_sample
    if decoded > limits.max_decoded_bytes:
        raise ImageTooLarge(
            f"The decoded pixel data would take {decoded} bytes; the limit is {limits.max_decoded_bytes}.",
            limit=limits.max_decoded_bytes,
        )
