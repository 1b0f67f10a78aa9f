"""Settings, the error tree, output encoding, the CLI, and 'no input gives a 5xx'."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.errors import ConfigurationError, ServiceError, all_error_types, problem_details
from inference.postprocess import encode_output
from inference.settings import Settings, describe_settings
from tests.conftest import INPUTS, ROOT, TEST_MODELS, read_input

# --- settings ----------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-001", "REQ-SEC-009", "REQ-FUNC-026")
def test_defaults_are_closed_and_below_the_host_limits():
    settings = Settings.from_env({})
    assert settings.environment == "production"
    assert settings.auth.mode == ("entra", "api-key")
    assert not settings.auth_disabled
    assert settings.limits.max_body_bytes < 100 * 1024 * 1024  # the Functions host answers 500-ish above 100 MB


@pytest.mark.requirement("REQ-SEC-001", "REQ-FUNC-026")
def test_auth_can_be_disabled_only_for_local_development():
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"MEDAI_AUTH_MODE": "none"})
    assert "MEDAI_AUTH_MODE" in info.value.detail
    assert Settings.from_env({"MEDAI_AUTH_MODE": "none", "MEDAI_ENVIRONMENT": "local"}).auth_disabled
    with pytest.raises(ConfigurationError):
        Settings.from_env({"MEDAI_AUTH_MODE": "none,api-key", "MEDAI_ENVIRONMENT": "local"})


@pytest.mark.requirement("REQ-SEC-001", "REQ-FUNC-026")
@pytest.mark.parametrize("value", ["", " ", ",", " , "])
def test_an_empty_auth_mode_says_it_is_empty_and_what_is_accepted(value):
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"MEDAI_AUTH_MODE": value})
    assert info.value.detail.startswith("MEDAI_AUTH_MODE is empty")
    assert all(mode in info.value.detail for mode in ("entra", "api-key", "none"))
    assert "[]" not in info.value.detail


@pytest.mark.requirement("REQ-SEC-001", "REQ-SEC-004")
def test_dev_secrets_are_refused_outside_local():
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env({"MEDAI_DEV_SECRETS_JSON": "{}"})
    assert "MEDAI_DEV_SECRETS_JSON" in info.value.detail


@pytest.mark.requirement("REQ-FUNC-026")
@pytest.mark.parametrize(
    "env",
    [
        {"MEDAI_MAX_BODY_BYTES": "lots"},
        {"MEDAI_MAX_PIXELS": "0"},
        {"MEDAI_MULTIFRAME": "some"},
        {"MEDAI_MODEL_WARMUP": "perhaps"},
        {"MEDAI_ALPHA_BACKGROUND": "1,2"},
        {"MEDAI_AUTH_MODE": "basic"},
    ],
)
def test_bad_settings_name_the_variable(env):
    with pytest.raises(ConfigurationError) as info:
        Settings.from_env(env)
    assert next(iter(env)) in info.value.detail


@pytest.mark.requirement("REQ-FUNC-026")
def test_settings_parse_types():
    settings = Settings.from_env(
        {
            "MEDAI_MODELS": "a, b",
            "MEDAI_MODEL_WARMUP": "off",
            "MEDAI_ALPHA_BACKGROUND": "255,255,255",
            "MEDAI_QUEUE_TIMEOUT_S": "2.5",
            "MEDAI_ORT_OPTIMIZED_MODEL_DIR": "",
        }
    )
    assert settings.models.enabled == ("a", "b")
    assert settings.models.warmup is False
    assert settings.imaging.alpha_background == (255, 255, 255)
    assert settings.runtime.queue_timeout_s == 2.5
    assert settings.runtime.optimized_model_dir is None


@pytest.mark.requirement("REQ-FUNC-026")
def test_nothing_but_settings_reads_the_environment():
    offenders = []
    for path in [*ROOT.glob("inference/*.py"), *ROOT.glob("security/*.py"), *ROOT.glob("service/*.py")]:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv") and path.name != "settings.py":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


@pytest.mark.requirement("REQ-FUNC-026", "REQ-REG-003")
def test_readme_configuration_table_is_generated_from_the_settings():
    readme = (ROOT / "README.md").read_text()
    for row in describe_settings():
        assert f"| `{row['env']}` | `{row['default']}` |" in readme, f"{row['env']} missing: make docs"


@pytest.mark.requirement("REQ-REG-003")
def test_readme_generated_sections_are_current():
    """Every generated section of the README (settings, errors, presets, the published benchmark run and
    the included infra, pipeline and compliance documents) equals a fresh rendering."""
    run = subprocess.run([sys.executable, "tools/make_docs.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


@pytest.mark.requirement("REQ-REG-006")
def test_core_does_not_import_hosting_frameworks():
    code = (
        "import sys, inference.engine, inference.dicom, inference.raster, inference.__main__\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('azure', 'fastapi', 'starlette', 'uvicorn', 'security', 'service')]\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-018")
def test_every_error_has_a_unique_stable_code_and_a_status():
    types = all_error_types()
    codes = [cls.code for cls in types]
    assert len(codes) == len(set(codes))
    for cls in types:
        assert 400 <= cls.status < 600
        assert cls.code.replace("_", "").isalnum() and cls.code.islower()


@pytest.mark.requirement("REQ-FUNC-018", "REQ-SEC-008")
def test_problem_details_of_a_server_error_leak_nothing():
    error = ConfigurationError("secret path /etc/x and value hunter2")
    body = problem_details(error, request_id="r1", instance="/api/v1/x")
    assert "hunter2" not in json.dumps(body)
    assert body["status"] == 500 and body["request_id"] == "r1" and body["detail"] == error.title


@pytest.mark.requirement("REQ-FUNC-018")
def test_problem_details_of_a_client_error_explain():
    from inference.errors import UnsupportedTransferSyntax

    body = problem_details(UnsupportedTransferSyntax("no decoder for X", transfer_syntax="1.2.3"), request_id="r")
    assert body["code"] == "unsupported_transfer_syntax" and body["status"] == 415
    assert body["detail"] == "no decoder for X" and body["transfer_syntax"] == "1.2.3"
    assert body["type"].endswith("/unsupported_transfer_syntax")


@pytest.mark.requirement("REQ-FUNC-018")
def test_errors_survive_copy_and_pickle():
    import copy
    import pickle

    from inference.errors import Overloaded

    error = Overloaded("busy", retry_after=7, depth=3)
    for clone in (copy.copy(error), pickle.loads(pickle.dumps(error))):  # noqa: S301 - our own object
        assert (clone.detail, clone.retry_after, clone.extra, clone.code) == ("busy", 7, {"depth": 3}, "overloaded")


# --- output encoding ------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-012")
def test_non_finite_floats_use_the_protobuf_json_strings():
    encoded = encode_output("y", np.array([1.5, np.nan, np.inf, -np.inf], dtype=np.float32))
    assert encoded["data"] == [1.5, "NaN", "Infinity", "-Infinity"]
    json.dumps(encoded, allow_nan=False)


@pytest.mark.requirement("REQ-FUNC-012")
def test_maps_and_sequences_keep_their_structure():
    encoded = encode_output("m", [{"a": np.float32(0.25), "b": 1}, np.array([[1, 2]], dtype=np.int64)])
    assert encoded == {
        "name": "m",
        "datatype": "SEQUENCE",
        "data": [
            {"datatype": "MAP", "data": [["a", 0.25], ["b", 1]]},
            {"datatype": "INT64", "shape": [1, 2], "data": [1, 2]},
        ],
    }


@pytest.mark.requirement("REQ-FUNC-012")
def test_string_and_bool_tensors():
    assert encode_output("s", np.array(["x", "y"]))["datatype"] == "BYTES"
    assert encode_output("b", np.array([True, False]))["data"] == [True, False]


# --- no client input gives a server error ---------------------------------------------------------


def _mutations(data: bytes, rng: random.Random, count: int):
    for _ in range(count):
        choice = rng.random()
        blob = bytearray(data)
        if choice < 0.4 and len(blob) > 2:
            yield bytes(blob[: rng.randrange(1, len(blob))])  # truncation
        elif choice < 0.8:
            for _ in range(rng.randrange(1, 16)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)  # byte flips
            yield bytes(blob)
        else:
            start = rng.randrange(len(blob))
            yield bytes(blob[:start] + bytes(rng.randrange(256) for _ in range(64)) + blob[start:])  # insertion


@pytest.mark.requirement("REQ-FUNC-019")
@pytest.mark.slow
@pytest.mark.parametrize(
    "name, model",
    [
        ("real_CT_small.dcm", "identity-hu"),
        ("real_MR_small_RLE.dcm", "identity-gray"),
        ("real_CT_j2k_lossy_693.dcm", "identity-gray"),
        ("real_SC_jpeg_lossless_sv1.dcm", "identity-rgb"),
        ("syn_sc_ybr_full.dcm", "identity-rgb"),
        ("real_image_dfl_deflated.dcm", "identity-gray"),
        ("png_16bit_ramp.png", "identity-gray"),
        ("png_palette_trns.png", "identity-rgb"),
        ("real_fundus_retina.jpg", "light-squeezenet"),
        ("jpeg_exif_orientation6.jpg", "identity-gray"),
    ],
)
def test_mutated_real_files_never_cause_a_server_error(engine, name, model):
    rng = random.Random(f"{name}-20261203")  # deterministic
    outcomes = {"ok": 0}
    for mutated in _mutations(read_input(name), rng, 60):
        try:
            engine.predict(model, mutated)
            outcomes["ok"] += 1
        except ServiceError as err:
            assert err.status < 500, f"{err.code}: {err.detail}"
            outcomes[err.code] = outcomes.get(err.code, 0) + 1
    assert sum(outcomes.values()) == 60


# --- CLI -----------------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-025")
def test_cli_prints_the_api_document_and_problem_documents(tmp_path: Path):
    good, bad = INPUTS / "real_CT_small.dcm", INPUTS / "not_an_image.png"
    single = subprocess.run(
        [sys.executable, "-m", "inference", "predict", str(good)], cwd=ROOT, capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr
    document = json.loads(single.stdout)
    assert document["model"]["name"] == "ct-tissue-seg"
    assert {c["label"] for c in document["predictions"][0]["classes"]} == {"air", "soft_tissue", "bone"}

    several = subprocess.run(
        [sys.executable, "-m", "inference", "predict", str(good), str(bad), "--models-dir", str(TEST_MODELS),
         "--model", "identity-hu"],
        cwd=ROOT, capture_output=True, text=True,
    )  # fmt: skip
    assert several.returncode == 1
    lines = [json.loads(line) for line in several.stdout.splitlines()]
    assert lines[0]["file"] == str(good) and lines[0]["model"]["name"] == "identity-hu"
    assert lines[1]["status"] == 415 and lines[1]["code"] == "unsupported_media_type"


@pytest.mark.requirement("REQ-FUNC-025", "REQ-FUNC-014")
def test_cli_manifest_draft_loads(tmp_path: Path):
    model = TEST_MODELS / "light-shufflenet" / "model.onnx"
    out = subprocess.run(
        [sys.executable, "-m", "inference", "manifest", str(model), "--name", "draft", "--task", "classification"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    target = tmp_path / "draft"
    target.mkdir()
    (target / "model.onnx").write_bytes(model.read_bytes())
    (target / "manifest.json").write_text(out.stdout)
    from inference.manifest import load_manifest

    manifest = load_manifest(target / "manifest.json")
    assert (manifest.input.name, manifest.input.channels, manifest.input.layout) == ("gpu_0/data_0", 3, "NCHW")
    assert manifest.sha256 == __import__("hashlib").sha256(model.read_bytes()).hexdigest()


@pytest.mark.requirement("REQ-FUNC-026")
@pytest.mark.parametrize(
    "command, env, message",
    [
        (["-m", "service.backfill", "--local-dir", "."], {}, "error: missing_secret: Secret 'phi-hash-key'"),
        (["-m", "service", "--port", "1"], {"MEDAI_MAX_FRAMES": "abc"}, "error: configuration_error: MEDAI_MAX_FRAMES"),
        (["-m", "service", "--port", "1"], {"MEDAI_AUTH_MODE": "none"}, "MEDAI_AUTH_MODE=none is allowed only"),
        (["-m", "service", "--port", "1"],
         {"MEDAI_ENTRA_TENANT_ID": "t", "MEDAI_ENTRA_AUDIENCE": "a", "MEDAI_ENTRA_JWKS_URI": "notaurl"},
         "error: configuration_error: MEDAI_ENTRA_JWKS_URI must be an https URL"),
    ],
)
def test_a_misconfigured_start_names_the_problem_without_a_traceback(tmp_path, command, env, message):
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDAI_")}
    args = command + (["--out", str(tmp_path)] if "--local-dir" in command else [])
    run = subprocess.run([sys.executable, *args], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr


@pytest.mark.requirement("REQ-FUNC-025", "REQ-FUNC-014")
def test_cli_manifest_draft_of_a_probability_map_thresholds_it(tmp_path: Path):
    """A one-channel float output is drafted as a binary mask; served as drafted, its foreground is
    the pixels where onnxruntime's own output, on the image as Pillow decodes it, exceeds 0.5."""
    import onnxruntime as ort
    from PIL import Image

    from inference.engine import InferenceEngine

    source = TEST_MODELS / "syn-seg-dynamic-gray-nchw" / "model.onnx"
    target = tmp_path / "models" / "my-seg"
    target.mkdir(parents=True)
    (target / "seg.onnx").write_bytes(source.read_bytes())
    subprocess.run(
        [sys.executable, "-m", "inference", "manifest", str(target / "seg.onnx"), "--name", "my-seg",
         "--task", "segmentation", "--out", str(target / "manifest.json")],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    draft = json.loads((target / "manifest.json").read_text())
    assert draft["file"] == "seg.onnx"
    assert draft["postprocess"] == {"output": "mask", "kind": "binary", "threshold": 0.5}

    engine = InferenceEngine(Settings.from_env({"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none",
                                                "MEDAI_MODELS_DIR": str(tmp_path / "models")}))  # fmt: skip
    engine.registry.start(background=False)
    [prediction] = engine.predict("my-seg", read_input("gray_ok_64.jpg"))["predictions"]

    pixels = np.asarray(Image.open(INPUTS / "gray_ok_64.jpg").convert("L"), dtype=np.float32) / 255.0
    [mask] = ort.InferenceSession(str(source)).run(None, {"image": pixels[None, None]})
    foreground = int((mask[0, 0] > 0.5).sum())
    counts = {c["index"]: c["pixel_count"] for c in prediction["classes"]}
    assert counts == {0: pixels.size - foreground, 1: foreground}


@pytest.mark.requirement("REQ-FUNC-025")
def test_cli_manifest_draft_of_an_integer_output_is_a_label_map():
    out = subprocess.run(
        [sys.executable, "-m", "inference", "manifest", str(ROOT / "models" / "ct-tissue-seg" / "model.onnx"),
         "--name", "x", "--task", "segmentation"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["postprocess"] == {"output": "labels", "kind": "label_map"}


def _tiny_classifier(path: Path, *, softmax: bool) -> None:
    """A 3-channel 8 x 8 input, global average pooled, times a 3 x 4 matrix: logits of four classes,
    or their softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.array([[1, -2, 0.5, 3], [-1, 1, 2, -3], [0.25, 0, -1, 1]], np.float32), "w")
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w"], ["logits"]),
    ]
    if softmax:
        nodes.append(helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1))
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("probabilities" if softmax else "logits", TensorProto.FLOAT, [1, 4])],
        initializer=[weights],
    )  # fmt: skip
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))


@pytest.mark.requirement("REQ-FUNC-025")
@pytest.mark.parametrize("softmax, activation", [(False, "softmax"), (True, "none")])
def test_cli_manifest_draft_applies_softmax_only_to_logits(tmp_path: Path, softmax: bool, activation: str):
    model = tmp_path / "classifier.onnx"
    _tiny_classifier(model, softmax=softmax)
    out = subprocess.run(
        [sys.executable, "-m", "inference", "manifest", str(model), "--name", "x", "--task", "classification"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(out.stdout)["postprocess"]["activation"] == activation
