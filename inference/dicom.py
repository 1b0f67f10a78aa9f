"""DICOM decoding with pydicom, the way a viewer would.

What happens to a DICOM body, in order:

1. The file meta group is read by a small bounded parser; a Deflated dataset is
   inflated once under a size cap, so a deflate bomb is refused (413) before
   pydicom inflates it in full.
2. pydicom parses the dataset. Anything it raises on client bytes is a client
   error (422 ``corrupt_image``).
3. Objects that are not images are refused (422): the SOP Class must be an
   *Image Storage* class and the object must have Pixel Data.
4. The Image Pixel module is checked and the declared geometry is held against
   the limits *before* a pixel buffer exists (413 ``image_too_large``).
5. The transfer syntax must have an installed decoder, otherwise 415
   ``unsupported_transfer_syntax`` naming the UID.
6. Frames are decoded one at a time, colour is converted to RGB (YBR_FULL,
   YBR_FULL_422, PALETTE COLOR), and greyscale frames go through the Modality
   LUT (Rescale Slope/Intercept with defaults 1/0, fractional and negative
   slopes, or a Modality LUT Sequence), top-level or from functional groups.

VOI (windowing) and MONOCHROME1 inversion are *display* steps; they are applied
in :mod:`inference.preprocess` because the model's manifest decides whether a
model sees display values or modality values.

No value of any identifying attribute is logged: pydicom's own logger is
silenced and its reading validation (whose warnings quote values) is off.
"""

from __future__ import annotations

import atexit
import io
import logging
import struct
import threading
import warnings
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pydicom
import pydicom.config
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi, convert_color_space, get_decoder
from pydicom.uid import UID

from . import sniff
from .errors import (
    CorruptImage,
    CorruptPixelData,
    MultiframeNotSupported,
    NoPixelData,
    ServiceError,
    UnsupportedPhotometric,
    UnsupportedSopClass,
    UnsupportedTransferSyntax,
    shown_code_string,
)
from .image import DecodedImage, VoiLut, Window
from .isolation import ChildFailure, IsolatedDecoder
from .limits import check_image_geometry
from .settings import ImagingSettings, LimitSettings

log = logging.getLogger(__name__)

# pydicom quotes element values in its reading-validation warnings and debug
# log; those values can be patient data. Validation is switched off for
# reading and its logger is cut off from ours.
pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
_pydicom_log = logging.getLogger("pydicom")
_pydicom_log.handlers[:] = [logging.NullHandler()]
_pydicom_log.propagate = False
_pydicom_log.setLevel(logging.CRITICAL + 1)
# Its Python warnings can quote values too. Filters are process-wide and set once here:
# ``warnings.catch_warnings`` is not thread-safe, and requests decode on several threads.
warnings.filterwarnings("ignore", module=r"pydicom(\.|$)")

DEFLATED = "1.2.840.10008.1.2.1.99"

# Decoder plugins whose failures are Python exceptions run in this process; GDCM, whose C++
# exceptions can abort the process on a crafted codestream, runs in a child (inference.isolation).
_IN_PROCESS_PLUGINS = ("pydicom", "pillow", "pylibjpeg")
_ISOLATED = IsolatedDecoder()
atexit.register(_ISOLATED.close)

_SUPPORTED_PHOTOMETRIC = {
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "YBR_FULL",
    "YBR_FULL_422",
    "YBR_RCT",
    "YBR_ICT",
    "PALETTE COLOR",
}
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


def decode_dicom(data: bytes, *, limits: LimitSettings, imaging: ImagingSettings) -> DecodedImage:
    """Decode a DICOM Part 10 body into a :class:`DecodedImage`.

    The first frame to be inferred is decoded here, so a corrupt or
    undecodable object fails before any model runs; further frames are decoded
    on demand.

    Args:
        data: The whole file.
        limits: Size limits applied to the declared geometry.
        imaging: The multi-frame policy.

    Raises:
        CorruptImage, CorruptPixelData, NoPixelData, UnsupportedSopClass,
        UnsupportedTransferSyntax, ImageTooLarge, MultiframeNotSupported.
    """
    transfer_syntax = _meta_transfer_syntax(data)
    if transfer_syntax == DEFLATED:
        _check_inflated_size(data, limits.max_decoded_bytes)
    ds = _read(data)
    try:
        return _decode_dataset(ds, data, transfer_syntax, limits=limits, imaging=imaging)
    except ServiceError:
        raise
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # pydicom converts elements lazily: a malformed element raises on first access
        raise CorruptImage("The DICOM header holds a malformed element.") from err


def _decode_dataset(
    ds: Dataset, data: bytes, transfer_syntax: str | None, *, limits: LimitSettings, imaging: ImagingSettings
) -> DecodedImage:
    transfer_syntax = str(ds.file_meta.get("TransferSyntaxUID", transfer_syntax or "")) or None
    if not transfer_syntax:
        raise CorruptImage("The DICOM file meta information has no Transfer Syntax UID.")

    if "PixelData" not in ds and _cut_short(ds, len(data)):
        raise CorruptImage("The DICOM file ends inside an element, before any Pixel Data: it is truncated.")
    sop_class = ds.get("SOPClassUID") or ds.file_meta.get("MediaStorageSOPClassUID")
    _check_sop_class(sop_class)
    if "PixelData" not in ds:
        raise NoPixelData("The DICOM object has no Pixel Data (7FE0,0010) element.")

    rows = _int_attr(ds, "Rows")
    columns = _int_attr(ds, "Columns")
    samples = _int_attr(ds, "SamplesPerPixel", default=1)
    bits_allocated = _int_attr(ds, "BitsAllocated")
    frames = _int_attr(ds, "NumberOfFrames", default=1) or 1
    if rows <= 0 or columns <= 0 or samples not in (1, 3) or bits_allocated not in (1, 8, 16, 32, 64):
        raise CorruptPixelData(
            "The Image Pixel module is inconsistent (Rows, Columns, Samples per Pixel or Bits Allocated)."
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in _SUPPORTED_PHOTOMETRIC:
        raise UnsupportedPhotometric(
            f"Photometric Interpretation {shown_code_string(photometric) or '(missing)'} is not supported.",
            supported=sorted(_SUPPORTED_PHOTOMETRIC),
        )
    check_image_geometry(
        rows=rows,
        columns=columns,
        frames=frames,
        samples=samples,
        bytes_per_sample=max(1, bits_allocated // 8),
        limits=limits,
    )
    decoder = _decoder(transfer_syntax)

    if frames > 1 and imaging.multiframe == "reject":
        raise MultiframeNotSupported(
            f"The object has {frames} frames and the service is configured to refuse multi-frame images "
            "(MEDAI_MULTIFRAME=reject).",
            frames=frames,
        )
    indices = tuple(range(frames)) if imaging.multiframe == "all" else (0,)

    out_samples = 3 if (samples == 3 or photometric == "PALETTE COLOR") else 1
    loader = _FrameLoader(ds, decoder, photometric, frames, data)
    first = loader(indices[0])  # validates the pixel data before any model runs
    out_photometric = "RGB" if out_samples == 3 else photometric
    full_scale = loader.full_scale
    spacing, spacing_source = _pixel_spacing(ds)
    return DecodedImage(
        source="dicom",
        media_type=sniff.DICOM,
        rows=rows,
        columns=columns,
        samples=int(first.shape[2]),
        photometric=out_photometric,
        full_scale=full_scale,
        loader=loader,
        total_frames=frames,
        frame_indices=indices,
        windows=_windows(ds) if out_samples == 1 else (),
        voi_lut=_voi_lut(ds) if out_samples == 1 else None,
        pixel_spacing_mm=spacing,
        spacing_source=spacing_source,
        modality=str(ds.get("Modality", "")) or None,
        transfer_syntax=transfer_syntax,
        sop_class_uid=str(sop_class) if sop_class else None,
        instance_uid=str(ds.get("SOPInstanceUID", "")) or None,
    )


class _FrameLoader:
    """Decodes one frame at a time; remembers the last one decoded."""

    def __init__(self, ds: Dataset, decoder: Any, photometric: str, frames: int, data: bytes) -> None:
        self._ds = ds
        self._data = data
        self._decoder = decoder
        self._photometric = photometric
        self._frames = frames
        self._lock = threading.Lock()
        self._cached: tuple[int, np.ndarray] | None = None
        bits_stored = _int_attr(ds, "BitsStored", default=_int_attr(ds, "BitsAllocated"))
        self.full_scale = float(2 ** min(bits_stored, 16) - 1)

    def __call__(self, index: int) -> np.ndarray:
        if not 0 <= index < self._frames:
            raise IndexError(index)
        with self._lock:
            if self._cached is not None and self._cached[0] == index:
                return self._cached[1]
            frame = self._decode(index)
            self._cached = (index, frame)
            return frame

    def _decode(self, index: int) -> np.ndarray:
        ds = self._ds
        arr, meta = self._raw_frame(index if self._frames > 1 else None)
        if arr.ndim == 4:  # a single frame asked of a decoder that returned all
            arr = arr[0]
        photometric = str(meta.get("photometric_interpretation", self._photometric)).upper()
        try:
            if photometric == "PALETTE COLOR":
                arr = apply_color_lut(arr, ds)
                lut_bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
                self.full_scale = 255.0 if lut_bits == 8 else 65535.0
            elif photometric.startswith("YBR"):
                arr = convert_color_space(arr, photometric, "RGB")
            if arr.ndim == 2:
                values = self._modality(arr, index)
                return values.astype(np.float32, copy=False)[:, :, np.newaxis]
            return arr.astype(np.float32, copy=False)
        except (MemoryError, KeyboardInterrupt):
            raise
        except Exception as err:
            raise CorruptPixelData("The colour or modality lookup tables of the object are invalid.") from err

    def _raw_frame(self, index: int | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Decode with an in-process plugin when one can, else with GDCM in a child process."""
        plugins = tuple(self._decoder.available_plugins)
        local = [p for p in _IN_PROCESS_PLUGINS if p in plugins]
        failure: BaseException | None = None
        if self._decoder.is_native or local:  # native pixel data needs no plugin: numpy reads it
            try:
                options = {"decoding_plugin": local[0]} if local and not self._decoder.is_native else {}
                decoded = self._decoder.as_array(self._ds, index=index, as_rgb=True, **options)
                return decoded  # type: ignore[no-any-return]
            except (MemoryError, KeyboardInterrupt):
                raise
            except Exception as err:  # corrupt, or a variant this plugin cannot read: GDCM may still
                failure = err
        if "gdcm" in plugins:
            try:
                return _ISOLATED.decode(self._data, index, "gdcm")
            except ChildFailure as err:
                failure = err
        raise CorruptPixelData(
            "The pixel data cannot be decoded: it is truncated, corrupt, or inconsistent with the "
            "Image Pixel module.",
        ) from failure

    def _modality(self, arr: np.ndarray, index: int) -> np.ndarray:
        ds = self._ds
        if ds.get("ModalityLUTSequence"):
            return apply_modality_lut(arr, ds).astype(np.float64)
        slope, intercept = _rescale(ds, index)
        values = arr.astype(np.float64)
        if slope != 1.0:
            values *= slope
        if intercept != 0.0:
            values += intercept
        return values


def _meta_transfer_syntax(data: bytes) -> str | None:
    """Read (0002,0010) from the file meta group without pydicom.

    The group is Explicit VR Little Endian by definition (PS3.10 §7.1). Reading
    it here lets a Deflated dataset be size-checked before pydicom inflates it.
    """
    offset = 132
    end = len(data)
    for _ in range(64):
        if offset + 8 > end:
            return None
        group, element = struct.unpack_from("<HH", data, offset)
        if group != 0x0002:
            return None
        vr = data[offset + 4 : offset + 6]
        if vr in _LONG_VRS:
            if offset + 12 > end:
                return None
            length = struct.unpack_from("<I", data, offset + 8)[0]
            value_at = offset + 12
        else:
            length = struct.unpack_from("<H", data, offset + 6)[0]
            value_at = offset + 8
        if element == 0x0010:
            return data[value_at : value_at + length].rstrip(b"\x00 ").decode("ascii", "replace")
        offset = value_at + length
    return None


def _meta_end(data: bytes) -> int:
    group_length = struct.unpack_from("<I", data, 132 + 8)[0]
    return 132 + 12 + group_length


def _check_inflated_size(data: bytes, limit: int) -> None:
    """Inflate a Deflated dataset in bounded steps, refusing it past ``limit`` bytes."""
    from .errors import ImageTooLarge

    try:
        start = _meta_end(data)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = len(inflater.decompress(data[start:], 1 << 20))
        while inflater.unconsumed_tail:
            if total > limit:
                break
            total += len(inflater.decompress(inflater.unconsumed_tail, 1 << 20))
    except (struct.error, zlib.error) as err:
        raise CorruptImage("The Deflated DICOM dataset cannot be inflated.") from err
    if total > limit:
        raise ImageTooLarge(
            f"The Deflated DICOM dataset inflates to more than {limit} bytes.",
            limit=limit,
        )


def _read(data: bytes) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=False)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as err:  # anything the parser raises on client bytes is a client error
        raise CorruptImage("The body is not a readable DICOM Part 10 file.") from err


def _cut_short(ds: Dataset, size: int) -> bool:
    """Whether the file ends inside its data set: nothing after the file meta, or a last element
    that does not end where the file does.

    pydicom stops silently at the end of the data, so a file cut in its header parses as an object
    without Pixel Data. The last element is judged in its raw form (the SOP Class is read, and so
    converted, only after this); a cut exactly between two elements cannot be told from a
    complete object.
    """
    if not ds._dict:  # noqa: SLF001 - the raw elements keep their file offsets
        return True
    last = next(reversed(ds._dict.values()))  # noqa: SLF001
    tell, length = getattr(last, "value_tell", None), getattr(last, "length", None)
    if not isinstance(tell, int) or not isinstance(length, int) or length == 0xFFFFFFFF:
        return False
    return tell + length != size


def _check_sop_class(sop_class: Any) -> None:
    if not sop_class:
        return  # no SOP Class: judged by its Pixel Data and Image Pixel module alone
    uid = UID(str(sop_class))
    name = uid.name if uid.is_valid else ""
    if "Image Storage" not in name:
        label = f"{name} ({uid})" if name and name != str(uid) else str(uid)
        raise UnsupportedSopClass(
            f"SOP Class {label} is not an image; only Image Storage SOP Classes are inferred.",
            sop_class_uid=str(uid),
        )


def _decoder(transfer_syntax: str) -> Any:
    uid = UID(transfer_syntax)
    label = f"{uid.name} ({uid})" if uid.name != str(uid) else str(uid)
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as err:
        raise UnsupportedTransferSyntax(
            f"Transfer syntax {label} has no pixel data decoder in this service.",
            transfer_syntax=str(uid),
        ) from err
    except Exception as err:
        raise CorruptImage(f"Transfer syntax {label} is not a valid transfer syntax.") from err
    if not decoder.is_available:
        raise UnsupportedTransferSyntax(
            f"Transfer syntax {label} is recognised but no decoder for it is installed in this deployment.",
            transfer_syntax=str(uid),
        )
    return decoder


def _int_attr(ds: Dataset, keyword: str, default: int | None = None) -> int:
    value = ds.get(keyword)
    if value is None or value == "":
        if default is None:
            raise CorruptPixelData(f"The Image Pixel module lacks {keyword}.")
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as err:
        raise CorruptPixelData(f"{keyword} is not an integer.") from err


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if np.isfinite(result) else None


def _functional_item(ds: Dataset, index: int, sequence: str) -> Dataset | None:
    """Find ``sequence``'s first item in the per-frame, then the shared functional groups."""
    for groups, position in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items and len(items) > position:
            inner = items[position].get(sequence)
            if inner:
                return inner[0]
    return None


def _rescale(ds: Dataset, index: int) -> tuple[float, float]:
    """Rescale Slope and Intercept for a frame; 1 and 0 when absent (PS3.3 C.11.1)."""
    source: Dataset | None = ds if "RescaleSlope" in ds or "RescaleIntercept" in ds else None
    if source is None:
        source = _functional_item(ds, index, "PixelValueTransformationSequence")
    if source is None:
        return 1.0, 0.0
    slope = _float(source.get("RescaleSlope"))
    intercept = _float(source.get("RescaleIntercept"))
    return (1.0 if slope is None else slope), (0.0 if intercept is None else intercept)


def _as_list(value: Any) -> list[Any]:
    if value is None or value == "":
        return []
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def _windows(ds: Dataset) -> tuple[Window, ...]:
    source: Dataset | None = ds if "WindowCenter" in ds else _functional_item(ds, 0, "FrameVOILUTSequence")
    if source is None:
        return ()
    centers = _as_list(source.get("WindowCenter"))
    widths = _as_list(source.get("WindowWidth"))
    functions = _as_list(source.get("VOILUTFunction")) or ["LINEAR"]
    windows = []
    for i, (center, width) in enumerate(zip(centers, widths)):
        c, w = _float(center), _float(width)
        function = str(functions[min(i, len(functions) - 1)]).strip().upper() or "LINEAR"
        if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
            function = "LINEAR"
        if c is None or w is None or w <= 0 or (function == "LINEAR" and w < 1):
            continue  # an invalid window is skipped, as viewers do
        windows.append(Window(center=c, width=w, function=function, source="file"))
    return tuple(windows)


def _voi_lut(ds: Dataset) -> VoiLut | None:
    items = ds.get("VOILUTSequence")
    if not items:
        return None
    try:
        descriptor = [int(v) for v in items[0].LUTDescriptor]
        bits = descriptor[2]
        probe = np.arange(descriptor[1], descriptor[1] + (descriptor[0] or 65536), dtype=np.int64)
        table = apply_voi(probe, ds, 0).astype(np.float64)
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception:
        return None  # an unusable VOI LUT is ignored; windowing falls back to the next rule
    return VoiLut(first_mapped=descriptor[1], bits=bits, table=table)


def _pixel_spacing(ds: Dataset) -> tuple[tuple[float, float] | None, str | None]:
    candidates: list[tuple[Any, str]] = [(ds.get("PixelSpacing"), "PixelSpacing")]
    measures = _functional_item(ds, 0, "PixelMeasuresSequence")
    if measures is not None:
        candidates.append((measures.get("PixelSpacing"), "PixelMeasuresSequence.PixelSpacing"))
    candidates.append((ds.get("ImagerPixelSpacing"), "ImagerPixelSpacing"))
    for value, name in candidates:
        values = [_float(v) for v in _as_list(value)]
        if len(values) == 2 and all(v is not None and v > 0 for v in values):
            return (float(values[0]), float(values[1])), name  # type: ignore[arg-type]
    return None, None


def tiny_dicom() -> bytes:
    """An 8 x 8 MONOCHROME2 CT image, Explicit VR Little Endian, built in memory (no patient data)."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.zeros((8, 8), dtype=np.int16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
