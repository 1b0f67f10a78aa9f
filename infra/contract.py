"""Names the infrastructure shares with the service.

The service reads these through ``inference.settings`` (container names, the
poison queue, secret names) and registers the function names in
``function_app.py``. The infrastructure must not import the service, so the
values are repeated here; ``tests/infra/test_contract.py`` compares the two so
they cannot drift apart silently.
"""

from __future__ import annotations

from typing import Final

INPUT_CONTAINER: Final = "inference-input"
RESULTS_CONTAINER: Final = "inference-results"
ERRORS_CONTAINER: Final = "inference-errors"
ARCHIVE_CONTAINER: Final = "inference-archive"
DATA_CONTAINERS: Final = (INPUT_CONTAINER, RESULTS_CONTAINER, ERRORS_CONTAINER, ARCHIVE_CONTAINER)

DEPLOYMENT_CONTAINER: Final = "app-package"
"""Flex Consumption deployment container (the published zip package)."""
EVENTGRID_DEADLETTER_CONTAINER: Final = "eventgrid-deadletter"
"""Where Event Grid puts BlobCreated events it could not deliver, so none is lost silently."""

POISON_QUEUE: Final = "webjobs-blobtrigger-poison"
"""The Functions blob trigger's poison queue (fixed name used by the host)."""

FUNCTION_HTTP: Final = "http_app"
FUNCTION_BLOB: Final = "process_blob"
FUNCTION_POISON: Final = "blob_poison"
FUNCTION_WARMUP: Final = "warmup"

SECRET_NAMES: Final = ("api-key-primary", "api-key-secondary", "phi-hash-key")
"""Key Vault secrets the service reads; Bicep never creates their values."""

LIVENESS_PATH: Final = "/api/v1/health/live"
READINESS_PATH: Final = "/api/v1/health/ready"
CONTAINER_PORT: Final = 8080
"""Port the Functions host listens on inside the image (``ASPNETCORE_URLS``); non-root needs > 1024."""

AUTH_MODE: Final = "entra,api-key"
ENVIRONMENT: Final = "production"
