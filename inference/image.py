"""The decoded image handed from the decoders to preprocessing."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Window:
    """A DICOM VOI window (PS3.3 C.11.2.1.2).

    Attributes:
        center: Window Center.
        width: Window Width (> 0; >= 1 for LINEAR).
        function: VOI LUT Function: ``LINEAR``, ``LINEAR_EXACT`` or ``SIGMOID``.
        source: Where the window came from, reported in the response.
    """

    center: float
    width: float
    function: str = "LINEAR"
    source: str = "file"


@dataclass(frozen=True)
class VoiLut:
    """A VOI LUT Sequence item, already read into numbers.

    Attributes:
        first_mapped: First input value mapped (LUT Descriptor, value 2).
        bits: Bits per entry (LUT Descriptor, value 3); output full scale.
        table: LUT Data as integers.
    """

    first_mapped: int
    bits: int
    table: np.ndarray = field(repr=False)


@dataclass(frozen=True)
class DecodedImage:
    """Pixels and the few attributes preprocessing needs; no patient data.

    Frames are decoded one at a time by :meth:`frame`, so a multi-frame object
    never holds more than one decoded frame in memory. A frame has shape
    (rows, columns, samples), dtype float32, and holds:

    * greyscale DICOM: *modality* values (after the Modality LUT / rescale,
      e.g. Hounsfield units for CT);
    * colour DICOM and PNG/JPEG: sample values in ``0..full_scale``.

    Attributes:
        source: ``dicom``, ``png`` or ``jpeg``.
        media_type: The sniffed media type.
        rows: Rows of every frame.
        columns: Columns of every frame.
        samples: Samples per pixel after colour conversion (1 or 3).
        photometric: ``MONOCHROME1``, ``MONOCHROME2`` or ``RGB`` (after conversion).
        full_scale: Value that maps to 1.0 for display (colour and raster images).
        loader: Decodes one frame of the object by its index.
        total_frames: Frames in the object before the multi-frame policy applied.
        frame_indices: Which frames of the object are inferred, per the policy.
        windows: VOI windows found in the file, first one first.
        voi_lut: First VOI LUT Sequence item, if any.
        pixel_spacing_mm: (row spacing, column spacing) in mm, if known.
        spacing_source: The DICOM attribute the spacing came from.
        modality: DICOM Modality (not identifying).
        transfer_syntax: DICOM Transfer Syntax UID.
        sop_class_uid: DICOM SOP Class UID.
        instance_uid: SOP Instance UID; identifying, used only for a keyed hash,
            never logged or returned.
    """

    source: Literal["dicom", "png", "jpeg"]
    media_type: str
    rows: int
    columns: int
    samples: int
    photometric: str
    full_scale: float
    loader: Callable[[int], np.ndarray] = field(repr=False)
    total_frames: int = 1
    frame_indices: tuple[int, ...] = (0,)
    windows: tuple[Window, ...] = ()
    voi_lut: VoiLut | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    spacing_source: str | None = None
    modality: str | None = None
    transfer_syntax: str | None = None
    sop_class_uid: str | None = None
    instance_uid: str | None = field(default=None, repr=False)

    def frame(self, index: int) -> np.ndarray:
        """Decode frame ``index`` of the object (see the class docstring)."""
        return self.loader(index)

    @property
    def is_greyscale(self) -> bool:
        return self.photometric in ("MONOCHROME1", "MONOCHROME2")

    @property
    def has_modality_values(self) -> bool:
        """True when pixels are physical modality values (greyscale DICOM)."""
        return self.source == "dicom" and self.is_greyscale
