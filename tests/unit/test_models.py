"""Models: manifests, integrity, the warm cache, any ONNX model, and the bundled default model."""

from __future__ import annotations

import errno
import hashlib
import json
import pathlib
import shutil
import struct
import threading

import numpy as np
import onnx
import pydicom
import pytest
from onnx import numpy_helper

from inference.engine import InferenceEngine, PredictOptions
from inference.errors import ConfigurationError, ModelIntegrityError, ModelLoadError, ModelNotFound, ServiceError
from inference.manifest import load_manifest
from inference import models as models_module
from inference.models import ModelRegistry
from tests.conftest import DEFAULT_MODELS, INPUTS, TEST_MODELS, make_engine, make_settings, read_input
from tests.helpers import class_counts, output_tensor


def copy_models(tmp_path, *names):
    for name in names:
        shutil.copytree(TEST_MODELS / name, tmp_path / name)
    return tmp_path


def edit_manifest(directory, **changes):
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(manifest.get(key), dict):
            manifest[key].update(value)
        else:
            manifest[key] = value
    path.write_text(json.dumps(manifest))


# --- the bundled default model -------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-005", "REQ-FUNC-012", "REQ-FUNC-013")
def test_default_model_segments_the_real_ct_by_hounsfield_thresholds(default_engine):
    result = default_engine.predict(None, read_input("real_CT_small.dcm"))
    # Independent: HU from pydicom's raw pixels and the DICOM rescale, thresholds from the model card.
    ds = pydicom.dcmread(INPUTS / "real_CT_small.dcm")
    hu = ds.pixel_array.astype(float) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = {
        "air": int((hu < -500).sum()),
        "soft_tissue": int(((hu >= -500) & (hu < 300)).sum()),
        "bone": int((hu >= 300).sum()),
    }
    assert class_counts(result) == expected
    spacing = [float(v) for v in ds.PixelSpacing]
    areas = {c["label"]: c["area_mm2"] for c in result["predictions"][0]["classes"]}
    for label, count in expected.items():
        assert areas[label] == pytest.approx(count * spacing[0] * spacing[1], abs=1e-3)
    assert result["model"]["name"] == "ct-tissue-seg"
    manifest = json.loads((DEFAULT_MODELS / "ct-tissue-seg" / "manifest.json").read_text())
    assert result["model"]["sha256"] == manifest["sha256"]


@pytest.mark.requirement("REQ-FUNC-016")
def test_default_model_refuses_other_modalities_and_raster_images(default_engine):
    for name in ("real_MR_small_RLE.dcm", "gray_ok_64.jpg"):
        with pytest.raises(ServiceError) as info:
            default_engine.predict(None, read_input(name))
        assert (info.value.status, info.value.code) == (422, "incompatible_input")


@pytest.mark.requirement("REQ-FUNC-012")
def test_default_model_mask_png_matches_the_counts(default_engine):
    import base64
    import io

    from PIL import Image

    result = default_engine.predict(None, read_input("real_CT_small.dcm"), options=PredictOptions(include_mask=True))
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(result["predictions"][0]["mask_png"]))))
    assert mask.shape == (128, 128)
    counts = class_counts(result)
    assert [int((mask == i).sum()) for i in range(3)] == [counts["air"], counts["soft_tissue"], counts["bone"]]


@pytest.mark.requirement("REQ-SEC-010", "REQ-REG-003")
def test_default_model_is_reproducible_from_its_generator():
    from tools import make_default_model

    for path, content in make_default_model.outputs().items():
        assert path.read_bytes() == content, f"{path} differs from a fresh build: run make model"


@pytest.mark.requirement("REQ-REG-003")
def test_test_models_are_reproducible_from_their_generator():
    from tools import make_test_models

    for path, content in make_test_models.outputs().items():
        assert path.read_bytes() == content, f"{path} differs: run python tools/make_test_models.py"


# --- integrity and manifests ----------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-010", "REQ-FUNC-015")
def test_sha256_mismatch_refuses_to_load(tmp_path):
    models = copy_models(tmp_path, "identity-gray")
    edit_manifest(models / "identity-gray", sha256="0" * 64)
    engine = make_engine(MEDAI_MODELS_DIR=str(models))
    assert not engine.registry.ready
    assert engine.registry.status()["identity-gray"]["error"] == "model_integrity_failed"
    with pytest.raises(ModelIntegrityError):
        engine.registry.get("identity-gray")


@pytest.mark.requirement("REQ-SEC-010")
def test_tampered_model_file_refuses_to_load(tmp_path):
    models = copy_models(tmp_path, "identity-gray")
    with (models / "identity-gray" / "model.onnx").open("ab") as handle:
        handle.write(b"\x00")
    with pytest.raises(ModelIntegrityError):
        make_engine(MEDAI_MODELS_DIR=str(models)).registry.get("identity-gray")


@pytest.mark.requirement("REQ-SEC-010", "REQ-PERF-007")
@pytest.mark.parametrize("size", [0, 1, 4095, 4096, 4097, 3 * 4096 + 17])
def test_streamed_file_digest_is_the_sha256_of_the_whole_file(tmp_path, monkeypatch, size):
    """The model and graph checks hash files in steps; every step boundary gives hashlib's digest."""
    monkeypatch.setattr(models_module, "HASH_CHUNK_BYTES", 4096)
    path = tmp_path / "blob"
    path.write_bytes(np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes())
    assert models_module.sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.requirement("REQ-SEC-010")
def test_a_byte_changed_after_the_first_hashing_step_refuses_the_model(tmp_path, monkeypatch):
    """A model file spanning several hashing steps: a change in its last step is still caught."""
    monkeypatch.setattr(models_module, "HASH_CHUNK_BYTES", 16)
    models = copy_models(tmp_path, "identity-gray")
    model_file = models / "identity-gray" / "model.onnx"
    assert model_file.stat().st_size > 3 * 16
    make_engine(MEDAI_MODELS_DIR=str(models)).registry.get("identity-gray")  # intact: loads

    data = bytearray(model_file.read_bytes())
    data[-1] ^= 0x01  # the last byte, far past the first step
    model_file.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError):
        make_engine(MEDAI_MODELS_DIR=str(models)).registry.get("identity-gray")


@pytest.mark.requirement("REQ-SEC-010", "REQ-PERF-007")
def test_tampered_model_file_refuses_to_load_even_with_its_graph_cached(tmp_path):
    """A start that finds the optimised graph cached loads that graph, but still checks the file."""
    models = copy_models(tmp_path, "syn-seg-dynamic-gray-nchw")
    cache = tmp_path / "ort-cache"
    env = {"MEDAI_MODELS_DIR": str(models), "MEDAI_ORT_OPTIMIZED_MODEL_DIR": str(cache)}
    filled = make_engine(**env).registry.get("syn-seg-dynamic-gray-nchw")
    [graph] = cache.glob("*.onnx")
    assert filled.graph_path == graph
    hit = make_engine(**env).registry.get("syn-seg-dynamic-gray-nchw")
    assert hit.session.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"  # from the cache

    with (models / "syn-seg-dynamic-gray-nchw" / "model.onnx").open("ab") as handle:
        handle.write(b"\x00")
    engine = make_engine(**env)
    assert graph.is_file()  # the cached graph is still there, and is not served
    assert engine.registry.status()["syn-seg-dynamic-gray-nchw"]["error"] == "model_integrity_failed"
    with pytest.raises(ModelIntegrityError):
        engine.registry.get("syn-seg-dynamic-gray-nchw")


def _bundled_reference(body):
    """The bundled model's answer from a start without any cache (the reference of the cache tests)."""
    return make_engine(MEDAI_MODELS_DIR=str(DEFAULT_MODELS)).predict("ct-tissue-seg", body)["predictions"]


def _bundled_with_cache(tmp_path):
    models = tmp_path / "models"
    shutil.copytree(DEFAULT_MODELS / "ct-tissue-seg", models / "ct-tissue-seg")
    cache = tmp_path / "ort-cache"
    env = {"MEDAI_MODELS_DIR": str(models), "MEDAI_ORT_OPTIMIZED_MODEL_DIR": str(cache)}
    make_engine(**env).registry.get("ct-tissue-seg")  # fills the cache
    [graph] = cache.glob("*.onnx")
    return env, cache, graph


@pytest.mark.requirement("REQ-SEC-010", "REQ-PERF-007")
def test_a_cached_graph_changed_on_disk_is_rebuilt_not_served(tmp_path):
    """The bundled model's graph holds its bone threshold (300 HU) as one float32; a cached graph
    with 3000 there still loads and would answer 'no bone'. Its recorded sha256 catches it."""
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    env, cache, graph = _bundled_with_cache(tmp_path)
    recorded = (cache / (graph.name + ".sha256")).read_text().strip()
    assert recorded == hashlib.sha256(graph.read_bytes()).hexdigest()

    data = graph.read_bytes()
    assert data.count(struct.pack("<f", 300.0)) == 1
    graph.write_bytes(data.replace(struct.pack("<f", 300.0), struct.pack("<f", 3000.0)))
    engine = make_engine(**env)
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference
    assert hashlib.sha256(graph.read_bytes()).hexdigest() == recorded  # rewritten from the verified model
    assert engine.registry.get("ct-tissue-seg").graph_path == graph


@pytest.mark.requirement("REQ-PERF-007")
def test_a_cached_graph_replaced_by_another_models_is_rebuilt_and_stays_cacheable(tmp_path):
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    env, cache, graph = _bundled_with_cache(tmp_path)
    other = TEST_MODELS / "identity-gray" / "model.onnx"
    graph.write_bytes(other.read_bytes())
    (cache / (graph.name + ".sha256")).write_text(hashlib.sha256(other.read_bytes()).hexdigest())  # recorded too
    engine = make_engine(**env)
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference
    assert engine.registry.get("ct-tissue-seg").graph_path == graph  # rebuilt, served from the cache again
    assert graph.read_bytes() != other.read_bytes()
    assert not list(cache.glob("*.uncacheable"))
    again = make_engine(**env).registry.get("ct-tissue-seg")
    assert again.session.get_session_options().graph_optimization_level.name == "ORT_DISABLE_ALL"


@pytest.mark.requirement("REQ-FUNC-014")
@pytest.mark.parametrize(
    "change, message",
    [
        ({"input": {"name": "nope"}}, "not an input of the graph"),
        ({"input": {"channels": 3}}, "channels"),
        ({"input": {"dtype": "uint8"}}, "tensor(float)"),
        ({"input": {"layout": "HWC"}}, "rank"),
        ({"postprocess": {"output": "missing"}}, "postprocess.output"),
    ],
)
def test_manifest_that_contradicts_the_graph_refuses_to_load(tmp_path, change, message):
    models = copy_models(tmp_path, "identity-gray")
    edit_manifest(models / "identity-gray", **change)
    with pytest.raises(ModelLoadError) as info:
        make_engine(MEDAI_MODELS_DIR=str(models)).registry.get("identity-gray")
    assert message in info.value.detail


@pytest.mark.requirement("REQ-FUNC-014")
@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": "Bad Name"}, "name"),
        ({"sha256": "abc"}, "sha256"),
        ({"task": "detection"}, "task"),
        ({"input": {"layout": "NCWH"}}, "layout"),
        ({"input": {"std": [0]}}, "std"),
        ({"file": "../escape.onnx"}, "inside the model's directory"),
        ({"schema_version": 2}, "schema_version"),
    ],
)
def test_invalid_manifest_is_a_clear_load_error(tmp_path, change, message):
    models = copy_models(tmp_path, "identity-gray")
    edit_manifest(models / "identity-gray", **change)
    with pytest.raises(ModelLoadError) as info:
        load_manifest(models / "identity-gray" / "manifest.json")
    assert message in info.value.detail


@pytest.mark.requirement("REQ-FUNC-014")
def test_duplicate_model_names_and_unknown_enabled_models_fail_at_start(tmp_path):
    models = copy_models(tmp_path, "identity-gray")
    shutil.copytree(models / "identity-gray", models / "copy")
    with pytest.raises(ConfigurationError):
        ModelRegistry(make_settings(MEDAI_MODELS_DIR=str(models)))
    with pytest.raises(ConfigurationError):
        ModelRegistry(make_settings(MEDAI_MODELS="no-such-model"))


@pytest.mark.requirement("REQ-FUNC-018")
def test_unknown_model_is_404(engine):
    with pytest.raises(ModelNotFound) as info:
        engine.predict("no-such-model", read_input("gray_ok_64.jpg"))
    assert info.value.status == 404 and info.value.code == "model_not_found"


# --- the warm cache ------------------------------------------------------------------------


@pytest.mark.requirement("REQ-PERF-002")
def test_sessions_are_created_once_and_reused_across_threads(tmp_path):
    models = copy_models(tmp_path, "identity-gray")
    engine = InferenceEngine(make_settings(MEDAI_MODELS_DIR=str(models), MEDAI_MODEL_LOADING="lazy"))
    assert engine.registry.status()["identity-gray"]["loaded"] is False
    sessions = []

    def call():
        engine.predict("identity-gray", read_input("gray_ok_64.jpg"))
        sessions.append(id(engine.registry.get("identity-gray").session))

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(sessions) == 8 and len(set(sessions)) == 1
    assert engine.registry.ready


@pytest.mark.requirement("REQ-FUNC-015", "REQ-PERF-002")
def test_readiness_needs_every_model_warm(tmp_path):
    models = copy_models(tmp_path, "identity-gray", "identity-rgb")
    registry = ModelRegistry(make_settings(MEDAI_MODELS_DIR=str(models)))
    assert not registry.ready
    registry.get("identity-gray")
    assert not registry.ready
    registry.get("identity-rgb")
    assert registry.ready
    assert all(s["warm"] for s in registry.status().values())


@pytest.mark.requirement("REQ-FUNC-015", "REQ-PERF-002")
def test_background_loading_reaches_readiness(tmp_path):
    models = copy_models(tmp_path, "identity-gray")
    registry = ModelRegistry(make_settings(MEDAI_MODELS_DIR=str(models)))
    registry.start(background=True)
    registry.start(background=True)  # idempotent
    assert registry.wait_loaded(timeout=30)


# --- any ONNX model with a manifest ----------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-011", "REQ-FUNC-012")
def test_classifier_with_fixed_input_resizes_a_large_photo(engine):
    # onnx_fixed_shape_resize: 1411 x 1411 fundus JPEG into SqueezeNet's fixed 1x3x224x224.
    result = engine.predict("light-squeezenet", read_input("real_fundus_retina.jpg"), options=PredictOptions(top_k=7))
    top = result["predictions"][0]["top_k"]
    assert len(top) == 7 and result["predictions"][0]["classes"] == 1000
    probabilities = [entry["probability"] for entry in top]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 <= p <= 1.0 for p in probabilities)


@pytest.mark.requirement("REQ-FUNC-012", "REQ-FUNC-014")
def test_input_and_output_names_with_slashes(engine):
    result = engine.predict("light-shufflenet", read_input("gray_ok_64.jpg"))
    assert len(result["predictions"][0]["top_k"]) == 3


@pytest.mark.requirement("REQ-FUNC-011")
def test_alexnet_with_a_0_255_range(engine):
    result = engine.predict("light-bvlc-alexnet", read_input("real_fundus_microaneurysms_L.png"))
    assert len(result["predictions"][0]["top_k"]) == 5


@pytest.mark.requirement("REQ-FUNC-011")
def test_two_dimensional_model_input(engine):
    # ort-dataset-mul-1: X [3, 2] * W. Independent: W from the graph, X the resized image.
    result = engine.predict("ort-dataset-mul-1", read_input("gray_ok_64.jpg"))
    y = output_tensor(result)
    assert y.shape == (3, 2)
    weights = numpy_helper.to_array(onnx.load(TEST_MODELS / "ort-dataset-mul-1" / "model.onnx").graph.initializer[0])
    x = engine.registry.get("ort-dataset-mul-1")  # the model runs; y / W gives back a [0, 1] image
    assert x.fixed_hw == (3, 2)
    np.testing.assert_array_less(-1e-6, y / weights)
    np.testing.assert_array_less(y / weights, 1 + 1e-6)


@pytest.mark.requirement("REQ-FUNC-011")
def test_chw_model_without_batch_axis(engine):
    result = engine.predict("ort-dataset-sigmoid", read_input("syn_sc_ybr_full.dcm"))
    y = output_tensor(result)
    assert y.shape == (3, 4, 5)
    assert np.all((y >= 0.5) & (y <= 1 / (1 + np.exp(-1)) + 1e-6))  # sigmoid of values in [0, 1]


@pytest.mark.requirement("REQ-FUNC-011", "REQ-FUNC-012")
def test_dynamic_segmentation_model_against_an_independent_convolution(engine):
    # syn-seg-dynamic-gray-nchw: 3x3 conv (pad 1) + sigmoid, threshold 0.5; computed here with numpy.
    graph = onnx.load(TEST_MODELS / "syn-seg-dynamic-gray-nchw" / "model.onnx").graph
    params = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    result = engine.predict("syn-seg-dynamic-gray-nchw", read_input("real_fundus_microaneurysms_L.png"))
    from PIL import Image

    x = np.asarray(Image.open(INPUTS / "real_fundus_microaneurysms_L.png"), dtype=np.float64) / 255
    padded = np.pad(x, 1)
    kernel = params["w"][0, 0]
    conv = sum(kernel[i, j] * padded[i : i + x.shape[0], j : j + x.shape[1]] for i in range(3) for j in range(3))
    expected_foreground = int(((1 / (1 + np.exp(-(conv + params["b"][0])))) > 0.5).sum())
    assert class_counts(result) == {"background": x.size - expected_foreground, "foreground": expected_foreground}


@pytest.mark.requirement("REQ-FUNC-012")
def test_sequence_of_maps_output_is_serialised_faithfully(engine):
    result = engine.predict("zipmap-classifier", read_input("gray_ok_64.jpg"))
    outputs = {o["name"]: o for o in result["predictions"][0]["outputs"]}
    zipmap = outputs["probability_map"]
    assert zipmap["datatype"] == "SEQUENCE" and len(zipmap["data"]) == 1
    pairs = zipmap["data"][0]
    assert pairs["datatype"] == "MAP"
    keys = [k for k, _ in pairs["data"]]
    probabilities = np.array([v for _, v in pairs["data"]])
    assert keys == [0, 1, 2]
    # Independent: the 2 x 2 box-resized image times the graph's weights, softmaxed.
    from PIL import Image

    image = Image.open(INPUTS / "gray_ok_64.jpg").convert("F").resize((2, 2), Image.Resampling.BOX)
    flat = (np.asarray(image, dtype=np.float64) / 255).reshape(1, 4)
    weights = numpy_helper.to_array(onnx.load(TEST_MODELS / "zipmap-classifier" / "model.onnx").graph.initializer[0])
    logits = flat @ weights
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(probabilities, expected[0], atol=1e-5)
    assert outputs["label"] == {"name": "label", "datatype": "INT64", "shape": [1], "data": [int(expected.argmax())]}


@pytest.mark.requirement("REQ-FUNC-017")
def test_model_description_lists_signature_and_preprocessing(engine):
    described = engine.registry.get("light-shufflenet").describe()
    assert described["inputs"][0] == {
        "name": "gpu_0/data_0",
        "datatype": "FP32",
        "shape": [1, 3, 224, 224],
        "onnx_type": "tensor(float)",
    }
    assert described["preprocessing"]["model_fixed_size"] == [224, 224]
    assert described["sha256"] == json.loads((TEST_MODELS / "light-shufflenet" / "manifest.json").read_text())["sha256"]


def _swap_cached_bone_threshold(graph):
    """Edit the cached graph's bone threshold (300 -> 3000 HU) and record the edited bytes' sha256."""
    data = graph.read_bytes().replace(struct.pack("<f", 300.0), struct.pack("<f", 3000.0))
    graph.write_bytes(data)
    graph.with_name(graph.name + ".sha256").write_text(hashlib.sha256(data).hexdigest())


@pytest.mark.requirement("REQ-SEC-010", "REQ-PERF-007")
def test_the_concurrent_session_is_built_from_the_verified_model_not_the_cache(tmp_path):
    """A graph swapped in the cache after start-up, its record rewritten to match, never serves."""
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    env, cache, graph = _bundled_with_cache(tmp_path)
    engine = make_engine(**env)
    model = engine.registry.get("ct-tissue-seg")
    assert model.concurrent_session is None
    _swap_cached_bone_threshold(graph)
    model.add_concurrent_session(engine.settings.runtime)
    assert model.concurrent_session is not None
    assert engine.predict("ct-tissue-seg", body, concurrent=True)["predictions"] == reference
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference


@pytest.mark.requirement("REQ-PERF-007")
def test_a_damaged_entry_that_cannot_be_replaced_is_served_around(tmp_path):
    """Its record path is a directory: neither removed nor rewritten. The model serves, uncached."""
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    env, cache, graph = _bundled_with_cache(tmp_path)
    record = graph.with_name(graph.name + ".sha256")
    record.unlink()
    (record / "in-the-way").mkdir(parents=True)
    engine = make_engine(**env)
    assert engine.registry.ready
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference
    assert engine.registry.get("ct-tissue-seg").graph_path is None


@pytest.mark.requirement("REQ-PERF-007")
def test_a_damaged_graph_in_a_read_only_cache_is_not_served_and_the_model_still_loads(tmp_path, monkeypatch):
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    env, cache, graph = _bundled_with_cache(tmp_path)
    _swap_cached_bone_threshold(graph)
    graph.with_name(graph.name + ".sha256").write_text("0" * 64)  # damaged: its record does not match
    # A cache the service cannot write to: the tests run as root, which ignores permission bits, so
    # removing an entry is refused here the way the kernel refuses it to the service's own user.
    real_unlink = pathlib.Path.unlink

    def unlink(self, *args, **kwargs):
        if self.parent == cache:
            raise PermissionError(13, "Permission denied", str(self))
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    engine = make_engine(**env)
    assert engine.registry.ready
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference
    assert engine.registry.get("ct-tissue-seg").graph_path is None


@pytest.mark.requirement("REQ-PERF-007")
def test_a_cache_directory_nothing_can_be_written_to_serves_without_the_cache(tmp_path):
    """/proc/self exists and is read-only even for root: the usual empty read-only mount."""
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    engine = make_engine(MEDAI_MODELS_DIR=str(DEFAULT_MODELS), MEDAI_ORT_OPTIMIZED_MODEL_DIR="/proc/self")
    assert engine.registry.ready
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference
    assert engine.registry.get("ct-tissue-seg").graph_path is None


@pytest.mark.requirement("REQ-PERF-007")
def test_a_cache_on_a_read_only_file_system_serves_without_the_cache(tmp_path, monkeypatch):
    """A read-only mount answers EROFS to every write and every unlink, even of a file that is not
    there. Mounting one needs privileges a test run may not have, so the file system's answers are
    given here, for paths in the cache directory only."""
    body = read_input("real_CT_small.dcm")
    reference = _bundled_reference(body)
    cache = tmp_path / "ro-cache"
    cache.mkdir()
    real_open, real_unlink = pathlib.Path.open, pathlib.Path.unlink

    def erofs(path):
        return OSError(errno.EROFS, "Read-only file system", str(path))

    def open_(self, mode="r", *args, **kwargs):
        if self.parent == cache and any(flag in mode for flag in "wax+"):
            raise erofs(self)
        return real_open(self, mode, *args, **kwargs)

    def unlink(self, *args, **kwargs):
        if self.parent == cache:
            raise erofs(self)
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "open", open_)
    monkeypatch.setattr(pathlib.Path, "unlink", unlink)
    engine = make_engine(MEDAI_MODELS_DIR=str(DEFAULT_MODELS), MEDAI_ORT_OPTIMIZED_MODEL_DIR=str(cache))
    assert engine.registry.ready
    assert engine.predict("ct-tissue-seg", body)["predictions"] == reference
    assert engine.registry.get("ct-tissue-seg").graph_path is None
    assert list(cache.iterdir()) == []
