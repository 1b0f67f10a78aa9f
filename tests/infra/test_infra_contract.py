"""Names the infrastructure repeats from the service must match the service's own defaults."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from infra import contract
from infra.build import BICEP_DIR, K8S_DIR
from inference.settings import AuthSettings, BlobSettings, SecretSettings

pytestmark = pytest.mark.requirement("REQ-FUNC-027")

REPO = Path(__file__).resolve().parents[2]


def _defaults(cls: type) -> dict[str, object]:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_container_and_queue_names_match_the_settings_defaults():
    blob = _defaults(BlobSettings)
    assert contract.INPUT_CONTAINER == blob["input_container"]
    assert contract.RESULTS_CONTAINER == blob["results_container"]
    assert contract.ERRORS_CONTAINER == blob["errors_container"]
    assert contract.ARCHIVE_CONTAINER == blob["archive_container"]
    assert contract.POISON_QUEUE == blob["poison_queue"]
    assert blob["connection"] == "AzureWebJobsStorage"  # the settings prefix the infra fills in


def test_secret_names_match_the_settings_defaults():
    auth = AuthSettings()
    secrets = SecretSettings()
    assert set(contract.SECRET_NAMES) == {*auth.api_key_secret_names, secrets.phi_hash_key_secret}


def test_every_medai_setting_the_infra_sets_is_one_the_service_reads():
    from inference import settings as module

    known: set[str] = set()
    for obj in vars(module).values():
        if dataclasses.is_dataclass(obj) and isinstance(obj, type):
            known.update(f.metadata["env"] for f in dataclasses.fields(obj) if "env" in f.metadata)
    used = set()
    for doc in yaml.safe_load_all((K8S_DIR / "02-configmap.yaml").read_text()):
        if doc:
            used.update(k for k in doc["data"] if k.startswith("MEDAI_"))
    text = (BICEP_DIR / "main.bicep").read_text()
    used.update(word.strip("'") for word in text.split() if word.strip("'").startswith("MEDAI_"))
    assert used, "no MEDAI_ settings found"
    assert used <= known, sorted(used - known)


def test_health_routes_exist_in_the_http_application():
    source = (REPO / "service" / "http_app.py").read_text()
    assert 'API_PREFIX = "/api/v1"' in source
    assert '"/health/live"' in source and '"/health/ready"' in source
    assert contract.LIVENESS_PATH == "/api/v1/health/live"
    assert contract.READINESS_PATH == "/api/v1/health/ready"
