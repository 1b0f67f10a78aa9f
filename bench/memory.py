"""Memory: RSS of a served process across many requests of varying image sizes.

The 20 PNGs of ``tests/data/inputs/varying_sizes`` (73 to 956 pixels a side) are posted to a
dynamic-shape model. A warm-up pass sends each file twice; the RSS after it is the baseline.
Then ``requests`` requests (the 20 files in a seeded random order, repeated) are sent by
``concurrency`` client threads, each on its own keep-alive connection, and VmRSS is read from
``/proc/PID/status`` every ``sample_every`` requests.

Baseline and final RSS are read at rest, ``settle_s`` seconds after the last response (the service
returns freed memory once it has been idle for ``MEDAI_MEMORY_TRIM_IDLE_S``, 5 s by default; the suite
waits one second more than the setting);
growth is final over baseline. The samples taken under load, their maximum and the RSS right after
the last response are reported beside it: they are what a memory limit must allow for.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from pathlib import Path
from typing import Any

from .servers import INFER_PATH, Server, proc_status
from .stats import growth_percent

SEED = 1000


def _client(server: Server, path: str, bodies: list[bytes], order: list[int], cursor: list[int],
            lock: threading.Lock, on_done: Any, failures: list[int]) -> None:  # fmt: skip
    connection = http.client.HTTPConnection(server.host, server.port, timeout=120)
    try:
        while True:
            with lock:
                if cursor[0] >= len(order):
                    return
                index = order[cursor[0]]
                cursor[0] += 1
            connection.request("POST", path, body=bodies[index], headers={"Content-Type": "image/png"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                failures.append(response.status)
            on_done()
    finally:
        connection.close()


def send(server: Server, path: str, bodies: list[bytes], order: list[int], concurrency: int,
         on_done: Any = None) -> list[int]:  # fmt: skip
    """Send ``bodies[i]`` for each ``i`` of ``order`` with ``concurrency`` threads; return non-200 statuses."""
    lock = threading.Lock()
    cursor = [0]
    failures: list[int] = []
    threads = [
        threading.Thread(
            target=_client, args=(server, path, bodies, order, cursor, lock, on_done or (lambda: None), failures)
        )
        for _ in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def measure_memory(server: Server, model: str, files: list[Path], *, requests: int, concurrency: int = 2,
                   sample_every: int = 50, settle_s: float = 1.0) -> dict[str, Any]:  # fmt: skip
    """RSS at rest after warm-up, samples during ``requests`` requests, RSS at rest after them, growth in %."""
    bodies = [path.read_bytes() for path in files]
    path = INFER_PATH.format(model=model)
    warm_failures = send(server, path, bodies, list(range(len(bodies))) * 2, concurrency)
    time.sleep(settle_s)
    baseline = proc_status(server.pid)
    rng = random.Random(SEED)  # nosec B311  # a reproducible request order, not security
    order: list[int] = []
    while len(order) < requests:
        block = list(range(len(bodies)))
        rng.shuffle(block)
        order.extend(block)
    order = order[:requests]
    samples: list[dict[str, int]] = []
    counter = [0]
    lock = threading.Lock()

    def on_done() -> None:
        with lock:
            counter[0] += 1
            if counter[0] % sample_every == 0:
                rss = proc_status(server.pid)
                samples.append({"after_requests": counter[0], "rss_kb": rss["VmRSS"]})

    failures = send(server, path, bodies, order, concurrency, on_done)
    loaded = proc_status(server.pid)
    time.sleep(settle_s)
    final = proc_status(server.pid)
    peak_sample = max([s["rss_kb"] for s in samples] + [loaded["VmRSS"], final["VmRSS"]])
    return {
        "model": model,
        "files": len(files),
        "sizes": [p.stem for p in files],
        "requests": requests,
        "concurrency": concurrency,
        "non_200": len(failures) + len(warm_failures),
        "baseline_rss_kb": baseline["VmRSS"],
        "settle_s": settle_s,
        "final_rss_kb": final["VmRSS"],
        "after_last_response_rss_kb": loaded["VmRSS"],
        "max_sampled_rss_kb": peak_sample,
        "peak_hwm_kb": final["VmHWM"],
        "threads": final["Threads"],
        "growth_percent": growth_percent(baseline["VmRSS"], final["VmRSS"]),
        "max_growth_percent": growth_percent(baseline["VmRSS"], peak_sample),
        "samples": samples,
    }
