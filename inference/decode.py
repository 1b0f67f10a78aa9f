"""From body bytes to a :class:`~inference.image.DecodedImage`."""

from __future__ import annotations

from . import sniff
from .image import DecodedImage
from .limits import check_body_size
from .settings import ImagingSettings, LimitSettings


def decode(
    data: bytes,
    *,
    limits: LimitSettings,
    imaging: ImagingSettings,
    media_type_hint: str | None = None,
) -> DecodedImage:
    """Sniff, size-check and decode an image body.

    Args:
        data: The body or blob content.
        limits: Size limits.
        imaging: Decoding policies.
        media_type_hint: The declared Content-Type; used only in error messages,
            the content decides the format.

    Raises:
        ServiceError: A 4xx subclass for every input the service cannot decode.
    """
    check_body_size(len(data), limits)
    media_type = sniff.sniff_media_type(data, media_type_hint)
    if media_type == sniff.DICOM:
        from .dicom import decode_dicom  # pydicom is imported only when a DICOM arrives

        return decode_dicom(data, limits=limits, imaging=imaging)
    from .raster import decode_raster

    return decode_raster(data, media_type, limits=limits, imaging=imaging)
