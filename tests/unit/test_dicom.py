"""DICOM decoding and preprocessing on real and constructed files.

Expected values come from ``tests/data/cases.json`` (the shared cases, each
traced to a public bug report) or are computed independently here with pydicom's
raw pixel reader and the DICOM formulas, never from the code under test.
"""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from inference.errors import ServiceError
from tests import dicom_factory
from tests.conftest import INPUTS, make_engine, read_input
from tests.helpers import image_plane, output_tensor


def predict(engine, model: str, name_or_bytes, **kw):
    data = read_input(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    return engine.predict(model, data, **kw)


def refused(engine, model: str, name_or_bytes) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        predict(engine, model, name_or_bytes)
    return info.value


# --- Modality LUT: Hounsfield units and rescale -----------------------------------------------


@pytest.mark.requirement("REQ-FUNC-005")
def test_ct_rescale_gives_hounsfield_units(engine):
    # dcm_rescale_ct: stored 0 / 24 / 1064 with intercept -1024 -> -1024 / -1000 / 40 HU.
    hu = image_plane(predict(engine, "identity-hu", "syn_ct_rescale.dcm"))[:, :, 0]
    assert hu[10, 10] == -1000
    assert hu[0, 0] == -1024
    assert hu[20, 20] == 40


@pytest.mark.requirement("REQ-FUNC-005")
def test_fractional_decimal_string_slope_is_not_truncated(engine):
    # dcm_rescale_fractional_slope: RescaleSlope '0.01', stored = row*100 + col.
    values = image_plane(predict(engine, "identity-hu", "syn_pt_fractional_slope.dcm"))[:, :, 0]
    assert values[50, 50] == pytest.approx(50.5, abs=1e-4)
    assert values[99, 99] == pytest.approx(99.99, abs=1e-4)
    assert len(np.unique(values)) > 1000


@pytest.mark.requirement("REQ-FUNC-005")
def test_missing_rescale_tags_default_to_identity(engine):
    # dcm_rescale_tags_missing: slope 1, intercept 0 -> value at (3,3) = 500.
    values = image_plane(predict(engine, "identity-hu", "syn_ct_no_rescale_tags.dcm"))[:, :, 0]
    assert values[3, 3] == 500


@pytest.mark.requirement("REQ-FUNC-005")
def test_real_ct_hounsfield_values(engine):
    # real_ct_hu: stored (0,0) = 175 -> -849 HU; HU range -896..1167.
    values = image_plane(predict(engine, "identity-hu", "real_CT_small.dcm"))[:, :, 0]
    assert values[0, 0] == -849
    assert values.min() == -896
    assert values.max() == 1167


@pytest.mark.requirement("REQ-FUNC-005", "REQ-FUNC-011")
def test_float64_rescale_reaches_the_model_as_its_declared_float32(engine):
    # onnx_dtype_float64: rescaled CT is float64 in numpy; the model declares tensor(float).
    result = predict(engine, "identity-hu", "real_CT_small.dcm")
    assert result["predictions"][0]["outputs"][0]["datatype"] == "FP32"


@pytest.mark.requirement("REQ-FUNC-005")
def test_negative_slope_is_applied(engine):
    stored = np.array([[0, 100], [200, 300]], dtype=np.uint16)
    data = dicom_factory.to_bytes(dicom_factory.image_dataset(stored, RescaleSlope=-0.5, RescaleIntercept=10))
    values = image_plane(predict(engine, "identity-hu", data))[:, :, 0]
    np.testing.assert_allclose(values, stored * -0.5 + 10)


@pytest.mark.requirement("REQ-FUNC-005")
def test_enhanced_ct_rescale_from_shared_functional_groups(engine):
    frames = [np.full((4, 4), 1000, np.int16), np.full((4, 4), 1100, np.int16)]
    data = dicom_factory.enhanced_ct(frames, slope=1.0, intercept=-1024.0)
    result = predict(engine, "identity-hu", data)
    assert len(result["predictions"]) == 2
    assert image_plane(result, 0)[0, 0, 0] == -24
    assert image_plane(result, 1)[0, 0, 0] == 76
    assert result["input"]["pixel_spacing_mm"] == [0.8, 0.8]
    assert result["input"]["pixel_spacing_source"] == "PixelMeasuresSequence.PixelSpacing"


# --- VOI and MONOCHROME1 -------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-006")
def test_multi_valued_window_uses_the_first_pair(engine):
    # dcm_window_multivalue: C=40, W=400 (DICOM LINEAR) -> row 0 = 0.0, 0.501, 1.0, 1.0.
    result = predict(engine, "identity-gray", "syn_ct_multivalue_window.dcm")
    row = image_plane(result)[0, :4, 0]
    assert row[0] == 0.0
    assert row[1] == pytest.approx(0.501, abs=0.002)
    assert row[2] == 1.0
    assert row[3] == 1.0
    assert result["predictions"][0]["voi"] == {"source": "file", "center": 40.0, "width": 400.0, "function": "LINEAR"}


@pytest.mark.requirement("REQ-FUNC-007")
def test_monochrome1_is_inverted(engine):
    # dcm_monochrome1_synthetic: raw col*65 (0..4095), no window: column 0 -> 1.0 (white), column 63 -> 0.0.
    plane = image_plane(predict(engine, "identity-gray", "syn_cr_monochrome1.dcm"))[:, :, 0]
    assert plane[:, 0] == pytest.approx(1.0)
    assert plane[:, 63] == pytest.approx(0.0)
    assert np.all(np.diff(plane[0]) <= 0)


@pytest.mark.requirement("REQ-FUNC-007")
def test_real_monochrome1_reverses_the_order_of_raw_values(engine):
    # dcm_monochrome1_real_cr: after VOI + inversion, raw 2802 is darker than raw 1994.
    raw = pydicom.dcmread(INPUTS / "real_CR_monochrome1.dcm").pixel_array
    plane = image_plane(predict(engine, "identity-gray", "real_CR_monochrome1.dcm"))[:, :, 0]
    brightest_raw = np.unravel_index(np.argmax(raw), raw.shape)
    darkest_raw = np.unravel_index(np.argmin(raw), raw.shape)
    assert raw[brightest_raw] == 2802 and raw[darkest_raw] == 1994
    assert plane[brightest_raw] < plane[darkest_raw]


@pytest.mark.requirement("REQ-FUNC-007", "REQ-FUNC-005")
@pytest.mark.parametrize("name", ["syn_cr_monochrome1.dcm", "real_CR_monochrome1.dcm"])
def test_monochrome1_is_not_inverted_for_a_model_of_modality_values(engine, name):
    # A modality model reads physical values; MONOCHROME1 is only a display convention.
    ds = pydicom.dcmread(INPUTS / name)
    slope, intercept = float(getattr(ds, "RescaleSlope", 1)), float(getattr(ds, "RescaleIntercept", 0))
    expected = ds.pixel_array.astype(np.float64) * slope + intercept
    plane = image_plane(predict(engine, "identity-hu", name))[:, :, 0]
    assert ds.PhotometricInterpretation == "MONOCHROME1"
    np.testing.assert_allclose(plane, expected, rtol=0, atol=1e-3)


@pytest.mark.requirement("REQ-FUNC-006")
def test_voi_lut_sequence_wins_over_window(engine):
    data, expected = dicom_factory.with_voi_lut_and_window()
    result = predict(engine, "identity-gray", data)
    plane = image_plane(result)[:, :, 0]
    assert result["predictions"][0]["voi"]["source"] == "file_voi_lut"
    assert plane[0, 0] == pytest.approx(expected[0])
    assert plane[0, 1] == pytest.approx(expected[1], abs=1e-6)
    assert plane[1, 0] == pytest.approx(expected[2], abs=1e-6)
    assert plane[1, 1] == pytest.approx(expected[3])


@pytest.mark.requirement("REQ-FUNC-006")
def test_manifest_window_with_model_priority_wins_over_the_file(tmp_path, engine):
    models = _copy_model(tmp_path, "identity-gray", window={"center": 0, "width": 2001, "priority": "model"})
    custom = make_engine(MEDAI_MODELS_DIR=str(models))
    result = predict(custom, "identity-gray", "syn_ct_multivalue_window.dcm")
    row = image_plane(result)[0, :4, 0]
    # HU -160, 40, 240, 1000 through LINEAR C=0 W=2001: ((x + 0.5) / 2000) + 0.5; above c - 0.5 + 1000 -> 1.
    np.testing.assert_allclose(row, [(x + 0.5) / 2000 + 0.5 for x in (-160, 40, 240)] + [1.0], atol=1e-6)
    assert result["predictions"][0]["voi"]["source"] == "model"


@pytest.mark.requirement("REQ-FUNC-006")
def test_manifest_default_window_applies_only_without_a_file_window(tmp_path):
    models = _copy_model(tmp_path, "identity-gray", window={"center": 40, "width": 400, "priority": "default"})
    custom = make_engine(MEDAI_MODELS_DIR=str(models))
    with_file_window = predict(custom, "identity-gray", "syn_ct_multivalue_window.dcm")
    without = predict(custom, "identity-gray", "syn_ct_rescale.dcm")  # no window tags
    assert with_file_window["predictions"][0]["voi"]["source"] == "file"
    assert without["predictions"][0]["voi"]["source"] == "model_default"
    plane = image_plane(without)[:, :, 0]
    assert plane[20, 20] == pytest.approx((40 - 39.5) / 399 + 0.5, abs=1e-6)  # 40 HU at the centre


@pytest.mark.requirement("REQ-FUNC-006")
def test_no_window_anywhere_uses_the_frame_min_max(engine):
    plane = image_plane(predict(engine, "identity-gray", "syn_ct_rescale.dcm"))[:, :, 0]
    assert plane.min() == 0.0 and plane.max() == 1.0
    assert plane[10, 10] == pytest.approx(24 / 1064)


def _copy_model(tmp_path, name: str, **input_overrides):
    import json
    import shutil

    from tests.conftest import TEST_MODELS

    target = tmp_path / "models" / name
    shutil.copytree(TEST_MODELS / name, target)
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["input"].update(input_overrides)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path / "models"


# --- colour ----------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-008")
def test_ybr_full_is_converted_to_rgb(engine):
    # dcm_ybr_full_colour: quadrants red, green, blue, white; raw YCbCr (76,85,255) would be a failure.
    rgb = image_plane(predict(engine, "identity-rgb", "syn_sc_ybr_full.dcm")) * 255
    np.testing.assert_allclose(rgb[0, 0], [255, 0, 0], atol=2)
    np.testing.assert_allclose(rgb[0, 15], [0, 255, 0], atol=2)
    np.testing.assert_allclose(rgb[15, 0], [0, 0, 255], atol=2)
    np.testing.assert_allclose(rgb[15, 15], [255, 255, 255], atol=2)


@pytest.mark.requirement("REQ-FUNC-008")
def test_palette_color_goes_through_its_lookup_tables(engine):
    data, expected = dicom_factory.palette_color()
    rgb = image_plane(predict(engine, "identity-rgb", data)) * 255
    np.testing.assert_allclose(rgb, expected, atol=1e-3)


@pytest.mark.requirement("REQ-FUNC-008", "REQ-FUNC-004")
def test_rgb_big_endian_ultrasound(engine):
    # real_us_rgb_big_endian: 60 x 80 x 3.
    result = predict(engine, "identity-rgb", "real_US_rgb_bigendian.dcm")
    assert output_tensor(result).shape == (1, 3, 60, 80)
    raw = pydicom.dcmread(INPUTS / "real_US_rgb_bigendian.dcm").pixel_array
    np.testing.assert_allclose(image_plane(result) * 255, raw, atol=1e-3)


@pytest.mark.requirement("REQ-FUNC-008")
def test_colour_image_to_a_one_channel_model_uses_bt601_luma(engine):
    rgb = image_plane(predict(engine, "identity-gray", "syn_sc_ybr_full.dcm"))[:, :, 0]
    raw = pydicom.dcmread(INPUTS / "syn_sc_ybr_full.dcm").pixel_array.astype(float)  # pydicom converts to RGB
    expected = (raw @ [0.299, 0.587, 0.114]) / 255
    np.testing.assert_allclose(rgb, expected, atol=1e-5)


# --- transfer syntaxes -----------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-004")
@pytest.mark.parametrize("name", ["real_MR_small_RLE.dcm", "real_MR_small_bigendian.dcm"])
def test_rle_and_big_endian_decode_to_the_uncompressed_values(engine, name):
    # real_mr_rle_equals_uncompressed / real_mr_big_endian: (0,0) = 905, mean 518.88 as MR_small.dcm.
    values = image_plane(predict(engine, "identity-hu", name))[:, :, 0]
    assert values[0, 0] == 905
    assert values.mean() == pytest.approx(518.88, abs=0.01)
    assert values.dtype == np.float32 and values.dtype.byteorder in ("=", "<")


@pytest.mark.requirement("REQ-FUNC-004")
def test_deflated_transfer_syntax(engine):
    # real_deflated: 512 x 512.
    result = predict(engine, "identity-gray", "real_image_dfl_deflated.dcm")
    assert (result["input"]["rows"], result["input"]["columns"]) == (512, 512)


@pytest.mark.requirement("REQ-FUNC-004", "REQ-FUNC-005")
def test_jpeg2000_ct_decodes_to_hounsfield_units(engine):
    # dcm_j2k_ct: HU at (256,256) = 32 with a J2K decoder.
    values = image_plane(predict(engine, "identity-hu", "real_CT_j2k_lossy_693.dcm"))[:, :, 0]
    assert values[256, 256] == 32


@pytest.mark.requirement("REQ-FUNC-004")
def test_jpeg2000_mr_with_empty_slice_thickness(engine):
    result = predict(engine, "identity-gray", "real_MR_siemens_j2k_empty_slicethickness.dcm")
    assert result["input"]["rows"] == 384


@pytest.mark.requirement("REQ-FUNC-004")
def test_jpeg_lossless_decodes_with_the_bundled_gdcm_decoder(engine):
    # dcm_jpeg_lossless_no_decoder: with a decoder installed -> 200, 100 x 100 x 3.
    result = predict(engine, "identity-rgb", "real_SC_jpeg_lossless_sv1.dcm")
    assert output_tensor(result).shape == (1, 3, 100, 100)
    assert result["input"]["transfer_syntax"] == "1.2.840.10008.1.2.4.70"


@pytest.mark.requirement("REQ-FUNC-004")
@pytest.mark.parametrize(
    "uid",
    [
        "1.2.840.10008.1.2.4.201",  # HTJ2K: known to pydicom, no plugin installed here
        "1.2.840.10008.1.2.4.100",  # MPEG2: no pixel decoder exists in pydicom
    ],
)
def test_transfer_syntax_without_a_decoder_is_415_naming_it(engine, uid):
    error = refused(engine, "identity-gray", dicom_factory.encapsulated(uid))
    assert (error.status, error.code) == (415, "unsupported_transfer_syntax")
    assert uid in error.detail
    assert error.extra["transfer_syntax"] == uid


# --- objects that are not images, corrupt data, limits ---------------------------------------


@pytest.mark.requirement("REQ-FUNC-003")
@pytest.mark.parametrize("name", ["real_SEG_liver_1bit.dcm", "real_RTDOSE_15frames.dcm"])
def test_non_image_sop_classes_are_refused(engine, name):
    error = refused(engine, "identity-gray", name)
    assert (error.status, error.code) == (422, "unsupported_sop_class")


@pytest.mark.requirement("REQ-FUNC-003")
def test_no_pixel_data_is_refused(engine):
    error = refused(engine, "identity-gray", dicom_factory.no_pixel_data())
    assert (error.status, error.code) == (422, "no_pixel_data")


@pytest.mark.requirement("REQ-FUNC-003")
@pytest.mark.parametrize(
    "cut",
    [
        274,  # inside the first element after the file meta: no data set at all
        459,  # inside the SOP Class UID (its value starts at 448 and is 26 bytes long)
        1000,  # inside a patient attribute, long before Pixel Data (which starts at byte 6300)
    ],
)
def test_a_file_cut_in_its_header_is_corrupt_not_an_object_without_pixel_data(engine, cut):
    error = refused(engine, "identity-gray", read_input("real_CT_small.dcm")[:cut])
    assert (error.status, error.code) == (422, "corrupt_image")


@pytest.mark.requirement("REQ-FUNC-003")
@pytest.mark.parametrize("name", ["syn_ct_truncated_pixeldata.dcm", "real_MR_truncated.dcm"])
def test_truncated_pixel_data_is_422(engine, name):
    error = refused(engine, "identity-gray", name)
    assert (error.status, error.code) == (422, "corrupt_pixel_data")


@pytest.mark.requirement("REQ-SEC-009")
def test_header_dimension_bomb_is_refused_before_allocation(engine):
    # dcm_header_dimension_bomb: 886 bytes declaring 65535 x 65535 x 1000 frames of 16 bits.
    error = refused(engine, "identity-gray", "syn_dicom_header_bomb.dcm")
    assert (error.status, error.code) == (413, "image_too_large")


@pytest.mark.requirement("REQ-SEC-009")
def test_deflate_bomb_is_refused_before_pydicom_inflates_it():
    data = dicom_factory.deflated_zeros(1024, 1024)  # 2 MiB inflated, a few KB on the wire
    assert len(data) < 20_000
    small = make_engine(MEDAI_MAX_DECODED_BYTES=str(1024 * 1024))
    with pytest.raises(ServiceError) as info:
        small.predict("identity-gray", data)
    assert (info.value.status, info.value.code) == (413, "image_too_large")
    assert "inflates" in info.value.detail


@pytest.mark.requirement("REQ-FUNC-003")
def test_dicom_that_is_not_readable_is_corrupt_image(engine):
    data = bytearray(read_input("real_CT_small.dcm"))
    data[140:400] = b"\xff" * 260  # destroy the meta group and the start of the dataset
    error = refused(engine, "identity-gray", bytes(data))
    assert error.status == 422
    assert error.code in ("corrupt_image", "corrupt_pixel_data")


# --- multi-frame policy ----------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-009", "REQ-FUNC-004")
def test_multiframe_all_frames_are_inferred(engine):
    # dcm_multiframe_us_jpeg: 30 frames 240 x 320, JPEG baseline YBR_FULL_422, decoded as RGB.
    result = predict(engine, "identity-rgb", "real_US_ybr422_jpeg_30frames.dcm")
    assert result["input"]["frames"] == 30 and result["input"]["frames_inferred"] == 30
    assert [p["frame"] for p in result["predictions"]] == list(range(30))
    assert output_tensor(result, 29).shape == (1, 3, 240, 320)
    reference = pydicom.dcmread(INPUTS / "real_US_ybr422_jpeg_30frames.dcm").pixel_array
    np.testing.assert_allclose(image_plane(result, 12) * 255, reference[12], atol=1e-3)


@pytest.mark.requirement("REQ-FUNC-009")
def test_multiframe_first_policy():
    first = make_engine(MEDAI_MULTIFRAME="first")
    result = first.predict("identity-rgb", read_input("real_US_ybr422_jpeg_30frames.dcm"))
    assert result["input"]["frames"] == 30 and result["input"]["frames_inferred"] == 1
    assert len(result["predictions"]) == 1


@pytest.mark.requirement("REQ-FUNC-009")
def test_multiframe_reject_policy():
    reject = make_engine(MEDAI_MULTIFRAME="reject")
    with pytest.raises(ServiceError) as info:
        reject.predict("identity-rgb", read_input("real_US_ybr422_jpeg_30frames.dcm"))
    assert (info.value.status, info.value.code) == (422, "multiframe_not_supported")


@pytest.mark.requirement("REQ-FUNC-009", "REQ-SEC-009")
def test_too_many_frames_is_413():
    small = make_engine(MEDAI_MAX_FRAMES="10")
    with pytest.raises(ServiceError) as info:
        small.predict("identity-rgb", read_input("real_US_ybr422_jpeg_30frames.dcm"))
    assert (info.value.status, info.value.code) == (413, "image_too_large")


@pytest.mark.requirement("REQ-FUNC-012", "REQ-FUNC-013", "REQ-SEC-005")
def test_pixel_spacing_reported_and_instance_uid_never(engine):
    result = predict(engine, "identity-hu", "real_CT_small.dcm")
    assert result["input"]["pixel_spacing_mm"] == [0.661468, 0.661468]
    ds = pydicom.dcmread(io.BytesIO(read_input("real_CT_small.dcm")))
    assert str(ds.SOPInstanceUID) not in str(result)


# --- native decoders that can abort the process ------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-019", "REQ-FUNC-004")
def test_a_codestream_that_aborts_gdcm_is_a_422_and_the_process_lives_on(engine):
    # Frame 26 of this real cine clip has 64 bytes zeroed (found by fuzzing): GDCM's C++ decoder calls
    # std::terminate on it. Were it decoded in this process, the test run itself would die here.
    error = refused(engine, "identity-rgb", "crafted_us_jpeg_gdcm_abort.dcm")
    assert (error.status, error.code) == (422, "corrupt_pixel_data")
    result = predict(engine, "identity-rgb", "real_SC_jpeg_lossless_sv1.dcm")  # GDCM-only syntax still works
    assert output_tensor(result).shape == (1, 3, 100, 100)


@pytest.mark.requirement("REQ-FUNC-019")
def test_the_isolated_decoder_survives_a_child_that_dies():
    from inference.isolation import ChildFailure, IsolatedDecoder

    decoder = IsolatedDecoder(size=1, timeout_s=30)
    try:
        with pytest.raises(ChildFailure) as info:
            decoder.decode(read_input("crafted_us_jpeg_gdcm_abort.dcm"), 26, "gdcm")
        assert "ended abruptly" in str(info.value)
        array, meta = decoder.decode(read_input("real_SC_jpeg_lossless_sv1.dcm"), None, "gdcm")
        reference = pydicom.dcmread(INPUTS / "real_SC_jpeg_lossless_sv1.dcm").pixel_array
        np.testing.assert_array_equal(array, reference)
        with pytest.raises(ChildFailure):  # a decoder error is reported, not a crash
            decoder.decode(read_input("real_SC_jpeg_lossless_sv1.dcm")[:-2000], None, "gdcm")
    finally:
        decoder.close()


@pytest.mark.requirement("REQ-SEC-005", "REQ-FUNC-003")
@pytest.mark.parametrize(
    "keyword, tag, code",
    [
        ("Modality", 0x00080060, "incompatible_input"),
        ("PhotometricInterpretation", 0x00280004, "unsupported_photometric_interpretation"),
    ],
)
def test_code_strings_echoed_in_a_refusal_are_short_and_printable(default_engine, keyword, tag, code):
    # A Code String holds at most 16 characters (PS3.5 table 6.2-1); a hostile file may hold kilobytes
    # and terminal escape sequences. The refusal still says what it saw, in that bounded form.
    ds = pydicom.dcmread(io.BytesIO(read_input("real_CT_small.dcm")))
    ds[keyword] = pydicom.DataElement(tag, "CS", "\x1b[2J\x07" + "X" * 4000)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    error = refused(default_engine, None, buffer.getvalue())
    assert error.code == code
    assert "?[2J?" + "X" * 11 + "..." in error.detail  # 16 characters, non-printables as ?, then the cut
    assert "X" * 12 not in error.detail and "\x1b" not in error.detail and "\x07" not in error.detail
