"""A failure nobody planned for: a 500 with a correlation id, and nothing of its cause in the body or log.

Fault injection: an engine whose stage 1 raises an arbitrary exception quoting
patient data, as a bug deep in a decoder might. No client input can do this (the
mutation test in tests/unit shows it), so the fault is injected.
"""

from __future__ import annotations

import logging

import pytest
from fastapi.testclient import TestClient

from inference.engine import InferenceEngine
from service.http_app import create_app
from tests.conftest import DEFAULT_MODELS, make_settings, read_input

pytestmark = pytest.mark.integration

PATIENT_TEXT = "Zzyzx^Quintilla 19230417"


class BrokenEngine(InferenceEngine):
    def prepare(self, *args, **kwargs):
        raise RuntimeError(f"unexpected state while reading {PATIENT_TEXT}")


@pytest.mark.requirement("REQ-SEC-008", "REQ-FUNC-018")
def test_unexpected_exception_is_a_bare_500(caplog):
    settings = make_settings(MEDAI_MODELS_DIR=str(DEFAULT_MODELS))
    app = create_app(settings, engine=BrokenEngine(settings))
    caplog.set_level(logging.DEBUG)
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.post(
            "/api/v1/models/ct-tissue-seg/infer",
            content=read_input("real_CT_small.dcm"),
            headers={"X-Request-ID": "r-500"},
        )
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {
        "type": "https://medaiflow.example/problems/internal_error",
        "title": "Internal error",
        "status": 500,
        "code": "internal_error",
        "detail": "Internal error",
        "retryable": False,
        "instance": "/api/v1/models/ct-tissue-seg/infer",
        "request_id": "r-500",
    }
    assert "unexpected RuntimeError" in caplog.text and "r-500" in str([r.__dict__ for r in caplog.records])
    assert PATIENT_TEXT not in caplog.text
    audit = [r for r in caplog.records if r.name == "medai.audit"]  # the fields are attributes of the record
    assert any(r.request_id == "r-500" and (r.status, r.code) == (500, "internal_error") for r in audit)
