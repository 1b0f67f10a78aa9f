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

# Performance presets (issue 8): the settings that matter per hosting shape, chosen from the benchmark
# suite (bench/). One worker process per instance or pod holds the models (more would multiply their
# memory): FUNCTIONS_WORKER_PROCESS_COUNT is 1 on AKS and is not set on Flex Consumption, which manages it.
# With two cores, a request alone runs on both and concurrent ones on one core each (a second session
# per model, MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS); with one core there is one session and one run.
# MALLOC_ARENA_MAX is glibc's own variable, read when the process starts: the service sets the same cap
# (MEDAI_MALLOC_ARENA_MAX, default 1) when its engine is built, but the Functions worker's threads have
# allocated by then and would keep arenas of their own.
PERFORMANCE_PRESETS: Final = {
    "flex-2gb": {  # Flex Consumption, 2,048 MB instance (one vCPU); the platform runs one Python worker
        "MEDAI_ORT_INTRA_OP_THREADS": "1",
        "MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS": "0",
        "MEDAI_MAX_IN_FLIGHT": "1",
        "MEDAI_MAX_QUEUE": "16",
        "MALLOC_ARENA_MAX": "1",
    },
    "flex-4gb": {  # Flex Consumption, 4,096 MB instance (two vCPUs)
        "MEDAI_ORT_INTRA_OP_THREADS": "2",
        "MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS": "1",
        "MEDAI_MAX_IN_FLIGHT": "2",
        "MEDAI_MAX_QUEUE": "32",
        "MALLOC_ARENA_MAX": "1",
    },
    "aks-pod": {  # the AKS Deployments: limits cpu 2, memory 3-4 GiB
        "FUNCTIONS_WORKER_PROCESS_COUNT": "1",
        "PYTHON_THREADPOOL_THREAD_COUNT": "4",
        "MEDAI_ORT_INTRA_OP_THREADS": "2",
        "MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS": "1",
        "MEDAI_MAX_IN_FLIGHT": "2",
        "MEDAI_MAX_QUEUE": "32",
        "MALLOC_ARENA_MAX": "1",
    },
}
"""Which Flex preset applies is chosen in Bicep from ``functionInstanceMemoryMB`` (4096: flex-4gb)."""
