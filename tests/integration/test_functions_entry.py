"""The Azure Functions entry point, driven with real ``azure.functions`` objects and no host.

``function_app`` is imported the way the Python worker imports it (settings
from the environment at import time); its indexed functions are checked with
``app.get_functions()`` (what the host receives) and its HTTP function is
called with real ``func.HttpRequest`` objects, through ``func.AsgiFunctionApp``
into the FastAPI application.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import azure.functions as func
import pytest

from tests.conftest import DEFAULT_MODELS, LOCAL_ENV, read_input


class InvocationContext(func.Context):
    """The invocation context the worker passes (the host is not here to make one)."""

    def __init__(self, name: str) -> None:
        self._name = name

    @property
    def invocation_id(self) -> str:
        return "test-invocation"

    @property
    def thread_local_storage(self) -> Any:
        return None

    @property
    def function_name(self) -> str:
        return self._name

    @property
    def function_directory(self) -> str:
        return os.getcwd()

    @property
    def trace_context(self) -> Any:
        return None

    @property
    def retry_context(self) -> Any:
        return None


def import_function_app(env: dict[str, str]) -> Any:
    """Import ``function_app`` afresh with ``env`` as the process environment."""
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        sys.modules.pop("function_app", None)
        return importlib.import_module("function_app")
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def function_app() -> Iterator[Any]:
    module = import_function_app(
        {**LOCAL_ENV, "MEDAI_MODELS_DIR": str(DEFAULT_MODELS), "MEDAI_MAX_BODY_BYTES": "100000"}
    )
    module.engine.registry.wait_loaded(30)
    yield module


_INDEXED: dict[int, dict[str, Any]] = {}


def functions_by_name(module: Any) -> dict[str, Any]:
    """The indexed functions; ``get_functions()`` may be called once per app, as the worker does."""
    if id(module.app) not in _INDEXED:
        _INDEXED[id(module.app)] = {f.get_function_name(): f for f in module.app.get_functions()}
    return _INDEXED[id(module.app)]


def call_http(module: Any, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None):
    function = functions_by_name(module)["http_app"]
    handler = function.get_user_function()
    request = func.HttpRequest(
        method=method,
        url=f"http://localhost:7071{path}",
        body=body,
        headers={"content-length": str(len(body)), **(headers or {})},
    )
    return asyncio.run(handler(request, InvocationContext("http_app")))


@pytest.mark.requirement("REQ-FUNC-020")
def test_indexed_functions_and_bindings(function_app):
    functions = functions_by_name(function_app)
    http = json.loads(functions["http_app"].get_function_json())
    trigger = next(b for b in http["bindings"] if b["type"] == "httpTrigger")
    assert trigger["route"] == "/{*route}"
    assert trigger["authLevel"] == "ANONYMOUS"  # the application authenticates, identically under uvicorn
    assert {"GET", "POST"} <= set(trigger["methods"])
    assert any(b["type"] == "http" and b["direction"] == "OUT" for b in http["bindings"])
    warmup = json.loads(functions["warmup"].get_function_json())
    assert warmup["bindings"] == [{"direction": "IN", "type": "warmupTrigger", "name": "warmup"}]


@pytest.mark.requirement("REQ-FUNC-001", "REQ-FUNC-013")
def test_real_ct_through_the_functions_entry(function_app):
    response = call_http(
        function_app,
        "POST",
        "/api/v1/models/ct-tissue-seg/infer",
        read_input("real_CT_small.dcm"),
        {"content-type": "application/dicom", "x-request-id": "functions-test-1"},
    )
    assert response.status_code == 200
    document = json.loads(response.get_body())
    assert document["request_id"] == "functions-test-1"
    assert response.headers["x-request-id"] == "functions-test-1"
    counts = {c["label"]: c["pixel_count"] for c in document["predictions"][0]["classes"]}
    assert counts == {"air": 3514, "soft_tissue": 11846, "bone": 1024}  # see test_models for the derivation


@pytest.mark.requirement("REQ-FUNC-001", "REQ-FUNC-013")
def test_binary_dicom_body_passes_byte_for_byte(function_app):
    data = read_input("real_CT_small.dcm")
    response = call_http(function_app, "POST", "/api/v1/models/ct-tissue-seg/infer", data)
    document = json.loads(response.get_body())
    assert document["input"]["sha256"] == __import__("hashlib").sha256(data).hexdigest()
    assert document["input"]["bytes"] == len(data)


@pytest.mark.requirement("REQ-FUNC-018", "REQ-SEC-009")
@pytest.mark.parametrize(
    "name, status, code",
    [
        ("empty.dcm", 400, "empty_body"),
        ("not_an_image.png", 415, "unsupported_media_type"),
        ("syn_ct_truncated_pixeldata.dcm", 422, "corrupt_pixel_data"),
        ("real_SEG_liver_1bit.dcm", 422, "unsupported_sop_class"),
        ("syn_dicom_header_bomb.dcm", 413, "image_too_large"),
        ("png_bomb_20000x20000_1bit.png", 413, "image_too_large"),
        ("real_fundus_retina.jpg", 413, "payload_too_large"),  # 269 KB > the 100 KB set for this app
    ],
)
def test_bad_inputs_are_problem_documents(function_app, name, status, code):
    response = call_http(function_app, "POST", "/api/v1/models/ct-tissue-seg/infer", read_input(name))
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    problem = json.loads(response.get_body())
    assert (problem["status"], problem["code"]) == (status, code)
    assert problem["request_id"] == response.headers["x-request-id"]


@pytest.mark.requirement("REQ-FUNC-015", "REQ-SEC-001")
def test_health_and_readiness(function_app):
    assert call_http(function_app, "GET", "/api/v1/health/live").status_code == 200
    ready = call_http(function_app, "GET", "/api/v1/health/ready")
    body = json.loads(ready.get_body())
    assert ready.status_code == 200 and body["status"] == "ready"
    assert body["models"]["ct-tissue-seg"]["warm"] is True
    assert body["authentication"].startswith("DISABLED")


@pytest.mark.requirement("REQ-FUNC-018")
def test_unknown_model_and_route(function_app):
    response = call_http(function_app, "POST", "/api/v1/models/nope/infer", read_input("real_CT_small.dcm"))
    assert (response.status_code, json.loads(response.get_body())["code"]) == (404, "model_not_found")
    response = call_http(function_app, "GET", "/api/v1/nowhere")
    assert (response.status_code, json.loads(response.get_body())["code"]) == (404, "not_found")


@pytest.mark.requirement("REQ-FUNC-015", "REQ-FUNC-020")
def test_warmup_function_loads_the_models():
    module = import_function_app(
        {**LOCAL_ENV, "MEDAI_MODELS_DIR": str(DEFAULT_MODELS), "MEDAI_MODEL_LOADING": "lazy"}
    )
    assert not module.engine.registry.ready
    warmup = functions_by_name(module)["warmup"].get_user_function()
    warmup(None)
    assert module.engine.registry.ready
