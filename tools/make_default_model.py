"""Build the bundled default model, ``models/ct-tissue-seg``, reproducibly.

The model is a CT tissue segmentation by Hounsfield-unit thresholds, written as
an ONNX graph, so a new user gets an answer on a real CT slice that can be
checked by hand:

* class 0 ``air``: HU < -500 (outside the body, lung air, bowel gas);
* class 1 ``soft_tissue``: -500 <= HU < 300 (fat, water, muscle, organs, blood);
* class 2 ``bone``: HU >= 300 (cortical and most trabecular bone, contrast, metal).

The thresholds are conventional CT values (air -1000 HU, fat about -100 HU,
water 0 HU, cancellous bone from about +300 HU). The graph reads modality
values (``"intensity": "modality"``) at the image's native size, so the area of
each class in mm² follows from the DICOM Pixel Spacing.

Usage::

    python tools/make_default_model.py          # write models/ct-tissue-seg/
    python tools/make_default_model.py --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
MODEL_DIR = ROOT / "models" / "ct-tissue-seg"
NAME = "ct-tissue-seg"
VERSION = "1.0.0"
AIR_BELOW_HU = -500.0
BONE_FROM_HU = 300.0
LABELS = ["air", "soft_tissue", "bone"]
OPSET = 17
IR_VERSION = 8  # readable by onnxruntime >= 1.13


def build_model() -> bytes:
    """Return the serialised ONNX model (deterministic bytes)."""
    hu = helper.make_tensor_value_info("hu", TensorProto.FLOAT, ["N", 1, "H", "W"])
    labels = helper.make_tensor_value_info("labels", TensorProto.UINT8, ["N", 1, "H", "W"])
    initializers = [
        numpy_helper.from_array(np.array(AIR_BELOW_HU, dtype=np.float32), "soft_tissue_from_hu"),
        numpy_helper.from_array(np.array(BONE_FROM_HU, dtype=np.float32), "bone_from_hu"),
    ]
    nodes = [
        helper.make_node("GreaterOrEqual", ["hu", "soft_tissue_from_hu"], ["is_tissue"], name="tissue_threshold"),
        helper.make_node("GreaterOrEqual", ["hu", "bone_from_hu"], ["is_bone"], name="bone_threshold"),
        helper.make_node("Cast", ["is_tissue"], ["tissue_u8"], to=TensorProto.UINT8, name="tissue_to_u8"),
        helper.make_node("Cast", ["is_bone"], ["bone_u8"], to=TensorProto.UINT8, name="bone_to_u8"),
        helper.make_node("Add", ["tissue_u8", "bone_u8"], ["labels"], name="label_sum"),
    ]
    graph = helper.make_graph(
        nodes,
        "ct_tissue_segmentation",
        [hu],
        [labels],
        initializer=initializers,
        doc_string=(
            "Label map of a CT slice in Hounsfield units: 0 air (HU < -500), "
            "1 soft tissue (-500 <= HU < 300), 2 bone (HU >= 300)."
        ),
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="medai-flow tools/make_default_model.py",
        producer_version=VERSION,
        model_version=1,
        doc_string="MedAI Flow bundled default model: CT tissue segmentation by HU thresholds.",
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString(deterministic=True)


def build_manifest(model_bytes: bytes) -> str:
    """Return the manifest JSON text for ``model_bytes``."""
    manifest = {
        "schema_version": 1,
        "name": NAME,
        "version": VERSION,
        "description": (
            "CT tissue segmentation by Hounsfield-unit thresholds: air (HU < -500), "
            "soft tissue (-500 <= HU < 300), bone (HU >= 300). Reports pixel counts and areas in mm². "
            "A reference model for checking the pipeline end to end, not a diagnostic device."
        ),
        "task": "segmentation",
        "file": "model.onnx",
        "sha256": hashlib.sha256(model_bytes).hexdigest(),
        "input": {
            "name": "hu",
            "layout": "NCHW",
            "channels": 1,
            "size": None,
            "resize": "bilinear",
            "dtype": "float32",
            "intensity": "modality",
            "modalities": ["CT"],
        },
        "labels": LABELS,
        "postprocess": {"output": "labels", "kind": "label_map"},
        "thresholds_hu": {"soft_tissue_from": AIR_BELOW_HU, "bone_from": BONE_FROM_HU},
    }
    return json.dumps(manifest, indent=2) + "\n"


def outputs() -> dict[Path, bytes]:
    """Every file this tool writes, with its content."""
    model_bytes = build_model()
    return {
        MODEL_DIR / "model.onnx": model_bytes,
        MODEL_DIR / "manifest.json": build_manifest(model_bytes).encode("utf-8"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed files instead of writing")
    args = parser.parse_args(argv)
    stale = []
    for path, content in outputs().items():
        if args.check:
            if not path.exists() or path.read_bytes() != content:
                stale.append(path)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            print(f"wrote {path.relative_to(ROOT)} ({len(content)} bytes)")
    if stale:
        print("stale: " + ", ".join(str(p.relative_to(ROOT)) for p in stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
