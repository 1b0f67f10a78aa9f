"""Build small DICOM Part 10 files with pydicom for cases the shared inputs do not cover.

Every file is written by pydicom's own writer, so it is a real DICOM file; the
tests then read it back through the service like any upload.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    EnhancedCTImageStorage,
    ExplicitVRLittleEndian,
    SecondaryCaptureImageStorage,
    UID,
    generate_uid,
)

# Values a PHI test searches for in every captured output. None of them can occur by chance.
PHI_VALUES = {
    "PatientName": "Zzyzx^Quintilla^Marguerite",
    "PatientID": "MRN-7741-ZQX",
    "PatientBirthDate": "19230417",
    "PatientAddress": "77 Quillfeather Lane, Oxbridge",
    "OtherPatientIDs": "ALT-ID-55321-QZ",
    "AccessionNumber": "ACC9981377QZ",
    "InstitutionName": "St Wendeline Quiet Hospital",
    "ReferringPhysicianName": "Ophelwick^Doctor",
    "PerformingPhysicianName": "Brannigast^Perf",
    "OperatorsName": "Tekkeldorn^Op",
    "StudyID": "STUDY-QZ-4471",
}


def to_bytes(ds: Dataset, transfer_syntax: str = ExplicitVRLittleEndian) -> bytes:
    """Serialise a dataset as a Part 10 file with the given transfer syntax."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID", SecondaryCaptureImageStorage)
    meta.MediaStorageSOPInstanceUID = ds.get("SOPInstanceUID", generate_uid())
    meta.TransferSyntaxUID = UID(transfer_syntax)
    ds.file_meta = meta
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def image_dataset(
    pixels: np.ndarray,
    *,
    sop_class: str = CTImageStorage,
    modality: str = "CT",
    photometric: str = "MONOCHROME2",
    **attributes: Any,
) -> Dataset:
    """A greyscale or colour image dataset holding ``pixels`` natively."""
    ds = Dataset()
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.Rows, ds.Columns = int(pixels.shape[0]), int(pixels.shape[1])
    ds.SamplesPerPixel = 3 if pixels.ndim == 3 else 1
    if pixels.ndim == 3:
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = pixels.dtype.itemsize * 8
    ds.BitsStored = ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    ds.PixelData = pixels.tobytes()
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def with_phi(ds: Dataset) -> Dataset:
    """Fill every identifying attribute of the confidentiality profile with a recognisable value."""
    for keyword, value in PHI_VALUES.items():
        setattr(ds, keyword, value)
    return ds


def ct_with_phi(rows: int = 16, columns: int = 16) -> tuple[bytes, dict[str, str]]:
    """A CT slice (HU -1000 .. +1000 ramp) carrying PHI; returns the file and every identifying value."""
    stored = np.linspace(24, 2024, rows * columns).astype(np.int16).reshape(rows, columns)
    ds = with_phi(image_dataset(stored, RescaleSlope=1, RescaleIntercept=-1024, PixelSpacing=[0.5, 0.5]))
    values = dict(PHI_VALUES)
    values.update(
        SOPInstanceUID=str(ds.SOPInstanceUID),
        StudyInstanceUID=str(ds.StudyInstanceUID),
        SeriesInstanceUID=str(ds.SeriesInstanceUID),
    )
    return to_bytes(ds), values


def palette_color() -> tuple[bytes, np.ndarray]:
    """A 4 x 4 PALETTE COLOR image with indices 0..3 and an 8-bit 4-entry palette.

    Returns:
        The file and the expected RGB image.
    """
    indices = np.array([[0, 1, 2, 3]] * 4, dtype=np.uint8)
    red, green, blue = [10, 200, 0, 255], [20, 0, 150, 255], [30, 0, 0, 255]
    ds = image_dataset(indices, sop_class=SecondaryCaptureImageStorage, modality="OT", photometric="PALETTE COLOR")
    for colour, data in (("Red", red), ("Green", green), ("Blue", blue)):
        setattr(ds, f"{colour}PaletteColorLookupTableDescriptor", [4, 0, 8])
        setattr(ds, f"{colour}PaletteColorLookupTableData", bytes(np.array(data, dtype=np.uint16).tobytes()))
    expected = np.stack([np.take(red, indices), np.take(green, indices), np.take(blue, indices)], axis=-1)
    return to_bytes(ds), expected.astype(np.uint8)


def with_voi_lut_and_window() -> tuple[bytes, dict[int, float]]:
    """A CT with both a VOI LUT Sequence and a Window Center/Width.

    The LUT maps stored values 0..3 to 0, 1000, 3000, 4095 (12-bit); the window
    (40/400) would give other values, so the test can tell which one was applied.

    Returns:
        The file and the expected display value for each stored value.
    """
    stored = np.array([[0, 1], [2, 3]], dtype=np.uint16)
    ds = image_dataset(stored, WindowCenter=40, WindowWidth=400)
    item = Dataset()
    item.add_new("LUTDescriptor", "US", [4, 0, 12])
    item.add_new("LUTData", "US", [0, 1000, 3000, 4095])
    ds.VOILUTSequence = [item]
    return to_bytes(ds), {0: 0.0, 1: 1000 / 4095, 2: 3000 / 4095, 3: 1.0}


def no_pixel_data() -> bytes:
    """A CT Image Storage object without Pixel Data."""
    ds = image_dataset(np.zeros((2, 2), np.int16))
    del ds.PixelData
    return to_bytes(ds)


def encapsulated(transfer_syntax: str) -> bytes:
    """A CT whose Pixel Data is encapsulated under ``transfer_syntax`` (the fragment is not real codestream)."""
    ds = image_dataset(np.zeros((8, 8), np.uint16))
    ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + bytes(60)])
    ds["PixelData"].VR = "OB"
    return to_bytes(ds, transfer_syntax)


def deflated_zeros(rows: int, columns: int) -> bytes:
    """A Deflated Explicit VR Little Endian CT of zeros: tiny on the wire, ``rows*columns*2`` bytes inflated."""
    ds = image_dataset(np.zeros((rows, columns), np.int16))
    return to_bytes(ds, DeflatedExplicitVRLittleEndian)


def enhanced_ct(frames: list[np.ndarray], slope: float, intercept: float) -> bytes:
    """An Enhanced CT whose rescale lives only in the shared functional groups."""
    stack = np.stack(frames).astype(np.int16)
    ds = image_dataset(stack[0], sop_class=EnhancedCTImageStorage)
    ds.NumberOfFrames = len(frames)
    ds.PixelData = stack.tobytes()
    transform = Dataset()
    transform.RescaleSlope = slope
    transform.RescaleIntercept = intercept
    transform.RescaleType = "HU"
    measures = Dataset()
    measures.PixelSpacing = [0.8, 0.8]
    measures.SliceThickness = 1.0
    shared = Dataset()
    shared.PixelValueTransformationSequence = [transform]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    return to_bytes(ds)
