"""PNG and JPEG decoding, sniffing and the bad inputs a client can send.

Expected values are those of ``tests/data/cases.json`` or are computed here with
Pillow and numpy from the same file.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from inference import sniff
from inference.errors import ServiceError
from tests.conftest import INPUTS, make_engine, read_input
from tests.helpers import image_plane, output_tensor


def predict(engine, model, name_or_bytes):
    data = read_input(name_or_bytes) if isinstance(name_or_bytes, str) else name_or_bytes
    return engine.predict(model, data)


def error_of(engine, model, name_or_bytes) -> ServiceError:
    with pytest.raises(ServiceError) as info:
        predict(engine, model, name_or_bytes)
    return info.value


def png_bytes(image: Image.Image, fmt: str = "PNG", **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kw)
    return buffer.getvalue()


@pytest.mark.requirement("REQ-FUNC-010")
def test_16bit_greyscale_is_scaled_not_clamped(engine):
    # png_16bit_grayscale: value = col*257 -> col/255 (col 128 -> 0.502); .convert('L') would give 1.0.
    plane = image_plane(predict(engine, "identity-gray", "png_16bit_ramp.png"))[:, :, 0]
    assert plane[0, 128] == pytest.approx(128 / 255, abs=1e-6)
    np.testing.assert_allclose(plane[0], np.arange(256) / 255, atol=1e-6)


@pytest.mark.requirement("REQ-FUNC-010")
def test_exif_orientation_is_applied(engine):
    # jpeg_exif_orientation: 40x20 with Orientation=6 -> 20 wide x 40 high, top half black, bottom half white.
    result = predict(engine, "identity-gray", "jpeg_exif_orientation6.jpg")
    plane = image_plane(result)[:, :, 0]
    assert plane.shape == (40, 20)
    assert plane[:20].mean() * 255 < 3
    assert plane[20:].mean() * 255 > 252


@pytest.mark.requirement("REQ-FUNC-010")
def test_palette_with_transparency_is_composited_on_the_background(engine):
    # png_palette_transparency: index 0 transparent black, index 1 red -> right half red, left half background.
    rgb = image_plane(predict(engine, "identity-rgb", "png_palette_trns.png")) * 255
    np.testing.assert_allclose(rgb[:, 16:], np.broadcast_to([255, 0, 0], rgb[:, 16:].shape))
    np.testing.assert_allclose(rgb[:, :16], 0)  # default background: black


@pytest.mark.requirement("REQ-FUNC-010")
def test_background_colour_is_configurable():
    white = make_engine(MEDAI_ALPHA_BACKGROUND="255,255,255")
    rgb = image_plane(white.predict("identity-rgb", read_input("png_palette_trns.png"))) * 255
    np.testing.assert_allclose(rgb[:, :16], 255)
    np.testing.assert_allclose(rgb[:, 16:], np.broadcast_to([255, 0, 0], rgb[:, 16:].shape))


@pytest.mark.requirement("REQ-FUNC-010")
def test_rgba_alpha_is_not_a_fourth_channel(engine):
    # png_rgba_transparent_background: transparent background, opaque white square.
    result = predict(engine, "identity-rgb", "png_rgba_transparent_bg.png")
    assert output_tensor(result).shape[1] == 3
    rgb = image_plane(result) * 255
    np.testing.assert_allclose(rgb[0, 0], [0, 0, 0])
    np.testing.assert_allclose(rgb[16, 16], [255, 255, 255])


@pytest.mark.requirement("REQ-FUNC-010")
def test_partial_alpha_blends_with_the_background():
    image = Image.new("RGBA", (2, 1), (200, 100, 50, 128))
    white = make_engine(MEDAI_ALPHA_BACKGROUND="255,255,255")
    rgb = image_plane(white.predict("identity-rgb", png_bytes(image)))[0, 0] * 255
    alpha = 128 / 255
    np.testing.assert_allclose(rgb, np.array([200, 100, 50]) * alpha + 255 * (1 - alpha), atol=1.0)


@pytest.mark.requirement("REQ-FUNC-010")
def test_la_png_is_composited_to_grey(engine):
    image = Image.new("LA", (4, 4), (200, 0))
    image.putpixel((0, 0), (200, 255))
    plane = image_plane(predict(engine, "identity-gray", png_bytes(image)))[:, :, 0] * 255
    assert plane[0, 0] == pytest.approx(200)
    assert plane[1, 1] == pytest.approx(0)


@pytest.mark.requirement("REQ-FUNC-010")
def test_cmyk_jpeg_becomes_rgb(engine):
    image = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red in CMYK
    rgb = image_plane(predict(engine, "identity-rgb", png_bytes(image, "JPEG", quality=100))) * 255
    np.testing.assert_allclose(rgb.mean(axis=(0, 1)), [255, 0, 0], atol=6)


@pytest.mark.requirement("REQ-FUNC-008")
def test_greyscale_is_replicated_for_a_three_channel_model(engine):
    # real_fundus_grayscale_png: 8-bit L 102 x 102 -> the grey plane on all three channels.
    rgb = image_plane(predict(engine, "identity-rgb", "real_fundus_microaneurysms_L.png"))
    grey = np.asarray(Image.open(INPUTS / "real_fundus_microaneurysms_L.png"), dtype=np.float32) / 255
    for channel in range(3):
        np.testing.assert_allclose(rgb[:, :, channel], grey, atol=1e-6)


@pytest.mark.requirement("REQ-FUNC-010")
def test_one_bit_png(engine):
    image = Image.new("1", (8, 8), 0)
    image.putpixel((1, 1), 1)
    plane = image_plane(predict(engine, "identity-gray", png_bytes(image)))[:, :, 0]
    assert plane[1, 1] == 1.0 and plane.sum() == 1.0


@pytest.mark.requirement("REQ-FUNC-011")
def test_uint8_nhwc_model_gets_the_original_8bit_values(engine):
    pixels = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3) * 4
    result = predict(engine, "identity-nhwc-u8", png_bytes(Image.fromarray(pixels, "RGB")))
    tensor = output_tensor(result)
    assert result["predictions"][0]["outputs"][0]["datatype"] == "UINT8"
    np.testing.assert_array_equal(tensor[0], pixels)


@pytest.mark.requirement("REQ-FUNC-011")
def test_fixed_size_float16_model_gets_a_nearest_resize(engine):
    pixels = np.kron(np.arange(16, dtype=np.uint8).reshape(4, 4) * 16, np.ones((4, 4), np.uint8))  # 16 x 16 blocks
    result = predict(engine, "identity-f16-8x8", png_bytes(Image.fromarray(pixels, "L")))
    tensor = output_tensor(result)
    assert tensor.shape == (8, 8)
    assert result["predictions"][0]["outputs"][0]["datatype"] == "FP16"
    expected = np.asarray(Image.fromarray(pixels, "L").resize((8, 8), Image.Resampling.NEAREST)) / 255
    np.testing.assert_allclose(tensor.astype(np.float32), expected, atol=1e-3)


# --- refusals -----------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-010")
@pytest.mark.parametrize("name", ["jpeg_truncated.jpg", "png_truncated.png"])
def test_truncated_files_are_corrupt_image(engine, name):
    error = error_of(engine, "identity-gray", name)
    assert (error.status, error.code) == (422, "corrupt_image")


@pytest.mark.requirement("REQ-FUNC-010")
def test_truncated_images_are_never_loaded_leniently():
    from PIL import ImageFile

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    assert Image.MAX_IMAGE_PIXELS is not None


@pytest.mark.requirement("REQ-SEC-009")
def test_decompression_bomb_is_413(engine):
    # png_decompression_bomb: 48 KB declaring 20000 x 20000.
    error = error_of(engine, "identity-gray", "png_bomb_20000x20000_1bit.png")
    assert (error.status, error.code) == (413, "image_too_large")


@pytest.mark.requirement("REQ-SEC-009")
def test_image_over_the_pixel_limit_is_413():
    small = make_engine(MEDAI_MAX_PIXELS="1000")
    with pytest.raises(ServiceError) as info:
        small.predict("identity-gray", read_input("real_fundus_microaneurysms_L.png"))  # 102 x 102
    assert (info.value.status, info.value.code) == (413, "image_too_large")


@pytest.mark.requirement("REQ-FUNC-002")
@pytest.mark.parametrize("name", ["empty.dcm", "empty.png"])
def test_empty_body_is_400(engine, name):
    error = error_of(engine, "identity-gray", name)
    assert (error.status, error.code) == (400, "empty_body")


@pytest.mark.requirement("REQ-FUNC-002")
def test_text_named_png_is_415(engine):
    # not_an_image: plain text with a .png name.
    error = error_of(engine, "identity-gray", "not_an_image.png")
    assert (error.status, error.code) == (415, "unsupported_media_type")


@pytest.mark.requirement("REQ-FUNC-002")
def test_nifti_is_415_until_supported(engine):
    error = error_of(engine, "identity-gray", "real_anatomical.nii")
    assert (error.status, error.code) == (415, "unsupported_media_type")
    assert "NIfTI" in error.detail


@pytest.mark.requirement("REQ-FUNC-002")
@pytest.mark.parametrize("fmt", ["GIF", "BMP", "TIFF", "WEBP"])
def test_formats_pillow_could_open_are_still_refused(engine, fmt):
    error = error_of(engine, "identity-gray", png_bytes(Image.new("RGB", (4, 4)), fmt))
    assert (error.status, error.code) == (415, "unsupported_media_type")


@pytest.mark.requirement("REQ-SEC-009")
def test_body_over_the_limit_is_413_before_decoding():
    small = make_engine(MEDAI_MAX_BODY_BYTES="1000")
    with pytest.raises(ServiceError) as info:
        small.predict("identity-gray", read_input("png_truncated.png"))  # 2536 bytes
    assert (info.value.status, info.value.code) == (413, "payload_too_large")


@pytest.mark.requirement("REQ-FUNC-002")
def test_the_content_decides_not_the_declared_type():
    assert sniff.sniff_media_type(read_input("real_CT_small.dcm"), "image/png") == sniff.DICOM
    assert sniff.sniff_media_type(read_input("gray_ok_64.jpg"), "application/dicom") == sniff.JPEG
    assert sniff.sniff_media_type(read_input("png_16bit_ramp.png"), None) == sniff.PNG
