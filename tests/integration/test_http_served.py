"""The service over real HTTP: ``python -m service`` (uvicorn) started as the README says."""

from __future__ import annotations

import base64
import io
import json
import re
import socket

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import read_input
from tests.helpers import class_counts

pytestmark = [pytest.mark.integration, pytest.mark.slow]

INFER = "/api/v1/models/ct-tissue-seg/infer"


@pytest.fixture(scope="module")
def client(served_default):
    with httpx.Client(base_url=served_default.base_url, timeout=30) as http:
        yield http


@pytest.mark.requirement("REQ-FUNC-015", "REQ-FUNC-017", "REQ-REG-004")
def test_liveness_readiness_version(client):
    assert client.get("/api/v1/health/live").json() == {"status": "alive"}
    ready = client.get("/api/v1/health/ready").json()
    assert ready["status"] == "ready" and ready["models"]["ct-tissue-seg"]["warm"]
    version = client.get("/api/v1/version").json()
    assert version["version"] == "0.1.0"
    assert version["models"]["ct-tissue-seg"]["version"] == "1.0.0"
    assert version["runtime"]["onnxruntime"] and version["runtime"]["pydicom"]
    assert version["git_commit"] is None or re.fullmatch(r"[0-9a-f]{40}", version["git_commit"])


@pytest.mark.requirement("REQ-FUNC-017")
def test_models_list_and_description(client):
    listed = client.get("/api/v1/models").json()["models"]
    assert [m["name"] for m in listed] == ["ct-tissue-seg"]
    described = client.get("/api/v1/models/ct-tissue-seg").json()
    assert described["labels"] == ["air", "soft_tissue", "bone"]
    assert described["inputs"][0]["name"] == "hu" and described["inputs"][0]["shape"] == [-1, 1, -1, -1]
    assert described["outputs"][0]["datatype"] == "UINT8"
    assert described["preprocessing"]["intensity"] == "modality"


@pytest.mark.requirement("REQ-FUNC-017")
def test_openapi_document_and_interactive_docs(client):
    spec = client.get("/api/v1/openapi.json").json()
    assert {"/api/v1/models/{name}/infer", "/api/v1/health/ready", "/api/v1/models"} <= set(spec["paths"])
    body = spec["paths"]["/api/v1/models/{name}/infer"]["post"]["requestBody"]["content"]
    assert "application/dicom" in body and "image/png" in body
    docs = client.get("/api/v1/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer" and schemes["APIKeyHeader"]["name"] == "X-API-Key"
    infer = spec["paths"]["/api/v1/models/{name}/infer"]["post"]
    assert infer["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}]
    assert "security" not in spec["paths"]["/api/v1/health/ready"]["get"]


@pytest.mark.requirement("REQ-FUNC-001", "REQ-FUNC-013", "REQ-SEC-005")
def test_real_ct_over_http(client):
    data = read_input("real_CT_small.dcm")
    response = client.post(INFER, content=data, headers={"Content-Type": "application/dicom"})
    assert response.status_code == 200
    document = response.json()
    assert class_counts(document) == {"air": 3514, "soft_tissue": 11846, "bone": 1024}
    assert document["request_id"] == response.headers["x-request-id"]
    assert document["input"]["instance_ref"].startswith("h1:")
    assert document["model"]["sha256"] == client.get("/api/v1/models/ct-tissue-seg").json()["sha256"]


@pytest.mark.requirement("REQ-FUNC-012")
def test_mask_png_on_request(client):
    document = client.post(INFER, params={"include_mask": "true"}, content=read_input("real_CT_small.dcm")).json()
    mask = np.asarray(Image.open(io.BytesIO(base64.b64decode(document["predictions"][0]["mask_png"]))))
    assert mask.shape == (128, 128) and int((mask == 2).sum()) == 1024


@pytest.mark.requirement("REQ-FUNC-013")
def test_request_id_is_echoed_or_replaced(client):
    assert client.get("/api/v1/health/live", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"
    replaced = client.get("/api/v1/health/live", headers={"X-Request-ID": "bad id <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["x-request-id"])


@pytest.mark.requirement("REQ-FUNC-001", "REQ-FUNC-002")
def test_content_type_is_only_a_hint(client):
    response = client.post(INFER, content=read_input("real_CT_small.dcm"), headers={"Content-Type": "image/png"})
    assert response.status_code == 200


@pytest.mark.requirement("REQ-FUNC-018")
@pytest.mark.parametrize(
    "method, path, params, status, code",
    [
        ("GET", INFER, None, 405, "method_not_allowed"),
        ("POST", "/api/v1/models/none-such/infer", None, 404, "model_not_found"),
        ("POST", INFER, {"top_k": "0"}, 400, "invalid_parameter"),
        ("GET", "/api/v1/models/none-such", None, 404, "model_not_found"),
        ("GET", "/nowhere", None, 404, "not_found"),
    ],
)
def test_http_level_errors_are_problem_documents(client, method, path, params, status, code):
    response = client.request(method, path, params=params, content=read_input("real_CT_small.dcm"))
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


@pytest.mark.requirement("REQ-FUNC-018", "REQ-FUNC-019")
@pytest.mark.parametrize(
    "name, status, code",
    [
        ("empty.png", 400, "empty_body"),
        ("not_an_image.png", 415, "unsupported_media_type"),
        ("real_anatomical.nii", 415, "unsupported_media_type"),
        ("jpeg_truncated.jpg", 422, "corrupt_image"),
        ("gray_ok_64.jpg", 422, "incompatible_input"),  # a JPEG has no Hounsfield units for this CT model
        ("real_MR_truncated.dcm", 422, "corrupt_pixel_data"),
        ("real_RTDOSE_15frames.dcm", 422, "unsupported_sop_class"),
        ("png_bomb_20000x20000_1bit.png", 413, "image_too_large"),
    ],
)
def test_bad_inputs_over_http(client, name, status, code):
    response = client.post(INFER, content=read_input(name), headers={"Content-Type": "image/png"})
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.requirement("REQ-SEC-009", "REQ-PERF-003")
def test_declared_oversized_body_is_refused_before_it_is_read(served_default):
    # request_body_over_limit: > 100 MiB. Only the headers are sent: the answer must come without the body.
    with socket.create_connection(("127.0.0.1", served_default.port), timeout=10) as sock:
        sock.sendall(
            (
                f"POST {INFER} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                f"Content-Length: {101 * 2**20}\r\n\r\n"
            ).encode()
        )
        sock.sendall(b"\x89PNG\r\n\x1a\n")
        reply = b""
        while b"\r\n\r\n" not in reply or len(reply.partition(b"\r\n\r\n")[2]) < _content_length(reply):
            chunk = sock.recv(65536)
            if not chunk:
                break
            reply += chunk
    head, _, body = reply.decode("latin-1").partition("\r\n\r\n")
    assert head.startswith("HTTP/1.1 413")
    assert json.loads(body)["code"] == "payload_too_large"


def _content_length(reply: bytes) -> int:
    match = re.search(rb"(?i)content-length: *(\d+)", reply)
    return int(match.group(1)) if match else 0


@pytest.mark.requirement("REQ-SEC-009", "REQ-PERF-003")
def test_streamed_body_over_the_limit_is_cut_off(client):
    limit = 64 * 2**20

    def chunks():
        chunk = b"\x89PNG\r\n\x1a\n" + bytes(2**20 - 8)
        for _ in range(limit // 2**20 + 2):
            yield chunk

    response = client.post(INFER, content=chunks())  # chunked transfer: no Content-Length
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")


@pytest.mark.requirement("REQ-FUNC-019", "REQ-SEC-008")
def test_no_server_error_was_logged(served_default, client):
    logs = served_default.logs()
    assert '"level": "ERROR"' not in logs
    assert "Traceback" not in logs
