"""Media type detection from the bytes themselves.

The Content-Type header and the file name are hints only: a client or a PACS
export can label anything as ``image/png``. Only formats the service decodes are
recognised; everything else is refused with 415 before any decoder sees it.
"""

from __future__ import annotations

from .errors import EmptyBody, UnsupportedMediaType

DICOM = "application/dicom"
PNG = "image/png"
JPEG = "image/jpeg"

SUPPORTED = (DICOM, PNG, JPEG)

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOI = b"\xff\xd8\xff"


def sniff_media_type(data: bytes | memoryview, hint: str | None = None) -> str:
    """Return the media type of ``data`` judged from its content.

    DICOM is recognised in its Part 10 file format (128-byte preamble followed
    by ``DICM``, PS3.10 §7.1); PNG by its 8-byte signature; JPEG by its SOI
    marker followed by another marker.

    Args:
        data: The whole body (only the first 132 bytes are inspected).
        hint: The Content-Type the client sent; used only in the error message.

    Raises:
        EmptyBody: ``data`` is empty.
        UnsupportedMediaType: The content is none of the supported formats.
    """
    if len(data) == 0:
        raise EmptyBody("The request body is empty; send the image bytes as the body.")
    head = bytes(data[:132])
    if len(head) >= 132 and head[128:132] == b"DICM":
        return DICOM
    if head.startswith(_PNG_SIGNATURE):
        return PNG
    if head.startswith(_JPEG_SOI):
        return JPEG
    if _looks_like_nifti(head):
        raise UnsupportedMediaType(
            "NIfTI volumes are not supported; send DICOM (Part 10), PNG or JPEG.",
            supported=list(SUPPORTED),
        )
    claimed = f" (declared as {hint.split(';')[0].strip()!r})" if hint else ""
    raise UnsupportedMediaType(
        f"The body is not a DICOM Part 10 file, a PNG or a JPEG{claimed}; the content decides, not the header.",
        supported=list(SUPPORTED),
    )


def _looks_like_nifti(head: bytes) -> bool:
    # NIfTI-1: sizeof_hdr = 348 (either byte order) and magic "n+1\0" or "ni1\0" at offset 344.
    if len(head) < 4:
        return False
    return head[:4] in (b"\x5c\x01\x00\x00", b"\x00\x00\x01\x5c")
