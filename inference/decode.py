"""From body bytes to a :class:`~inference.image.DecodedImage`."""

from __future__ import annotations

import threading
from types import ModuleType

from . import sniff
from .image import DecodedImage
from .limits import check_body_size
from .settings import ImagingSettings, LimitSettings

_DICOM_IMPORT = threading.Lock()
_dicom: ModuleType | None = None


def dicom_module() -> ModuleType:
    """:mod:`inference.dicom`, imported (with pydicom) on first use, by one thread at a time.

    pydicom's package imports its own submodules circularly; two threads importing it at once
    (a first DICOM request and the decoder warm-up) can see the package half-initialised and
    fail with an ImportError. One lock makes the first import whole before anyone uses it.
    """
    global _dicom
    if _dicom is None:
        with _DICOM_IMPORT:
            if _dicom is None:
                from . import dicom

                _dicom = dicom
    return _dicom


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
        # pydicom is imported only when a DICOM arrives
        return dicom_module().decode_dicom(data, limits=limits, imaging=imaging)
    from .raster import decode_raster

    return decode_raster(data, media_type, limits=limits, imaging=imaging)
