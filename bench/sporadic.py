"""Sporadic requests: one request at a time, a pause between them, as a reading room sends them.

Under ``wrk`` every request follows the last one at once. A hospital's instance more often sees one
image every few seconds. Between two such requests the service may return freed memory to the system
(``MEDAI_MEMORY_TRIM_IDLE_S``), after which the next request faults its pages in again, and the CPU's
caches have gone cold. This section posts the workload's input ``requests`` times, each on a fresh
connection, ``gap_s`` seconds after the previous response, and reports the latency percentiles. It
starts ``settle_s`` seconds after the server is ready, so that the service's start-up work is over (it
warms the DICOM decoder a second after the models load, and a request arriving then waits behind
pydicom's import); the first request is discarded too.

Compare the p50 with the same server's p50 at concurrency 1 (back-to-back requests): the difference is
what a pause costs a request.
"""

from __future__ import annotations

import http.client
import time
from typing import Any

from .servers import INFER_PATH, Server
from .stats import summarize_ms


def measure_sporadic(
    server: Server, model: str, body: bytes, media_type: str, *, requests: int, gap_s: float, settle_s: float = 0.0
) -> dict[str, Any]:
    """Latency of ``requests`` single requests spaced ``gap_s`` seconds apart (client side, ms)."""
    time.sleep(settle_s)
    path = INFER_PATH.format(model=model)
    samples: list[float] = []
    failures: list[int] = []
    for index in range(requests + 1):
        if index:
            time.sleep(gap_s)
        connection = http.client.HTTPConnection(server.host, server.port, timeout=60)
        try:
            started = time.perf_counter()
            connection.request("POST", path, body=body, headers={"Content-Type": media_type})
            response = connection.getresponse()
            response.read()
            elapsed_ms = (time.perf_counter() - started) * 1000
        finally:
            connection.close()
        if response.status != 200:
            failures.append(response.status)
        elif index:
            samples.append(elapsed_ms)
    summary = summarize_ms(samples) if samples else {}
    return {"model": model, "requests": requests, "gap_s": gap_s, "settle_s": settle_s, "non_200": len(failures),
            **summary}  # fmt: skip
