"""Response schemas, for the OpenAPI document and for response validation in tests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Problem(_Open):
    """RFC 9457 problem details, with the service's stable ``code``."""

    type: str = Field(examples=["https://medaiflow.example/problems/corrupt_pixel_data"])
    title: str
    status: int
    code: str = Field(description="Stable machine-readable error code.", examples=["corrupt_pixel_data"])
    detail: str
    retryable: bool
    instance: str | None = None
    request_id: str | None = None


class Liveness(BaseModel):
    status: str = Field(examples=["alive"])


class ModelStatus(BaseModel):
    version: str
    sha256: str
    loaded: bool
    warm: bool
    error: str | None


class Readiness(BaseModel):
    status: str = Field(description="`ready` or `not_ready`.")
    models: dict[str, ModelStatus]
    authentication: str


class VersionInfo(BaseModel):
    service: str
    version: str
    git_commit: str | None
    models: dict[str, dict[str, str]]
    runtime: dict[str, str | None]


class ModelSummary(BaseModel):
    name: str
    version: str
    sha256: str
    task: str
    description: str
    loaded: bool
    warm: bool


class ModelList(BaseModel):
    models: list[ModelSummary]


class TensorSpec(BaseModel):
    name: str
    datatype: str = Field(description="Open Inference Protocol v2 datatype (FP32, UINT8, ...).")
    shape: list[int] = Field(description="-1 marks a dynamic axis.")
    onnx_type: str


class ModelDescription(_Open):
    name: str
    version: str
    sha256: str
    task: str
    description: str
    labels: list[str]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    preprocessing: dict[str, Any]
    loaded: bool
    warm: bool


class ModelRef(BaseModel):
    name: str
    version: str
    sha256: str
    task: str


class InputInfo(_Open):
    media_type: str
    sha256: str
    bytes: int
    rows: int
    columns: int
    samples_per_pixel: int
    photometric_interpretation: str
    frames: int
    frames_inferred: int
    modality: str | None = None
    sop_class_uid: str | None = None
    transfer_syntax: str | None = None
    pixel_spacing_mm: list[float] | None = None
    pixel_spacing_source: str | None = None
    instance_ref: str | None = Field(None, description="Keyed hash of the SOP Instance UID (never the UID).")


class InferenceResult(BaseModel):
    request_id: str
    model: ModelRef
    input: InputInfo
    predictions: list[dict[str, Any]] = Field(
        description="One per inferred frame. Classification: `top_k`; segmentation: `classes` with "
        "`pixel_count`, `fraction`, `area_mm2` (and `mask_png` on request); raw models: `outputs` "
        "as Open Inference Protocol v2 tensors."
    )
    timing_ms: dict[str, float]
