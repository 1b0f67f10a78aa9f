"""Cold start: process start to first served inference, against the bare minimum.

* served: spawn ``python -m service`` (one model, ``MEDAI_MODELS``, the optimised-graph cache
  ``MEDAI_ORT_OPTIMIZED_MODEL_DIR`` emptied before the first repetition, which fills it), then post the workload's
  input to the infer route every 5 ms until the first 200; time from just before the spawn to
  that 200 (the service loads eagerly in the background and a request arriving meanwhile waits
  for the model);
* bare minimum: spawn ``python bench/bare_start.py MODEL.onnx`` (interpreter, numpy,
  onnxruntime, session creation, one run) and time until it prints ``ready``. It gets the same
  library defaults as the service's entry points (``inference.settings.LIBRARY_DEFAULTS``,
  OpenBLAS with one thread), so the comparison is of the work, not of the environment.

Each is repeated; the first repetition of each (cold page cache) is discarded and the median of
the rest is reported.

The service's own modules are compiled to bytecode first, as the container image does at build
time (``python -m compileall`` in the Dockerfile, whose root filesystem is read-only at run time).
Without it, a tree that cannot write ``__pycache__`` (``PYTHONDONTWRITEBYTECODE``, a read-only
mount) compiles every module again on every start, about 0.2 s here.
"""

from __future__ import annotations

import http.client
import os
# bandit: only fixed, local commands (servers, wrk, node, git)
import subprocess  # nosec B404  # starts our own script and module with fixed arguments
import sys
import time
from pathlib import Path
from statistics import median
from typing import Any

from .models import ROOT
from .servers import INFER_PATH, LOCAL_ENV, free_port

BARE = Path(__file__).resolve().parent / "bare_start.py"
SERVICE_PACKAGES = ("inference", "security", "service")


def compile_service_bytecode() -> None:
    """Compile the service's packages to ``__pycache__``, as the Dockerfile's ``compileall`` does."""
    import compileall

    for package in SERVICE_PACKAGES:
        if not compileall.compile_dir(str(ROOT / package), quiet=1):
            raise RuntimeError(f"compiling {package}/ to bytecode failed")


def time_bare(model_path: Path) -> float:
    """Seconds from spawning bare_start.py to its ``ready`` line."""
    from inference.settings import LIBRARY_DEFAULTS

    env = {**LIBRARY_DEFAULTS, **os.environ}  # what the service's entry points set, unless set
    started = time.perf_counter()
    process = subprocess.Popen(  # nosec B603  # our own script, fixed arguments, no shell
        [sys.executable, str(BARE), str(model_path)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    line = process.stdout.readline() if process.stdout is not None else b""
    elapsed = time.perf_counter() - started
    process.wait(timeout=60)
    if not line.startswith(b"ready"):
        raise RuntimeError(f"bare_start.py failed ({process.returncode})")
    return elapsed


def time_service(
    models_dir: Path, model: str, body: bytes, media_type: str, log_path: Path, graph_cache: Path | None = None
) -> float:
    """Seconds from spawning ``python -m service`` to the first 200 on the infer route."""
    port = free_port()
    env = {
        **os.environ,
        **LOCAL_ENV,
        "MEDAI_MODELS_DIR": str(models_dir),
        "MEDAI_MODELS": model,
        "MEDAI_DEFAULT_MODEL": model,
    }
    if graph_cache is not None:
        env["MEDAI_ORT_OPTIMIZED_MODEL_DIR"] = str(graph_cache)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(  # nosec B603  # our own module, fixed arguments, no shell
            [sys.executable, "-m", "service", "--port", str(port)], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        try:
            deadline = started + 120
            while time.perf_counter() < deadline:
                if process.poll() is not None:
                    raise RuntimeError(f"the service exited with {process.returncode}; see {log_path}")
                try:
                    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
                    connection.request(
                        "POST", INFER_PATH.format(model=model), body=body, headers={"Content-Type": media_type}
                    )
                    status = connection.getresponse().status
                    connection.close()
                    if status == 200:
                        return time.perf_counter() - started
                except OSError:
                    pass
                time.sleep(0.005)
            raise TimeoutError("no 200 within 120 s")
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def measure_cold_start(
    models_dir: Path, model: str, body: bytes, media_type: str, *, repeats: int, log_dir: Path
) -> dict[str, Any]:
    """Median served and bare-minimum cold starts (first of each repetition discarded)."""
    import shutil

    model_path = models_dir / model / "model.onnx"
    graph_cache = log_dir / "ort-graph-cache"
    shutil.rmtree(graph_cache, ignore_errors=True)  # the first (discarded) repetition fills it
    compile_service_bytecode()
    served: list[float] = []
    bare: list[float] = []
    for _ in range(repeats + 1):  # interleaved, so drift on the shared machine hits both alike
        served.append(
            time_service(models_dir, model, body, media_type, log_dir / f"coldstart-{model}.log", graph_cache)
        )
        bare.append(time_bare(model_path))
    served, bare = served[1:], bare[1:]
    return {
        "repeats": repeats,
        "service_s": [round(v, 3) for v in served],
        "bare_s": [round(v, 3) for v in bare],
        "service_median_s": round(median(served), 3),
        "optimised_graph_cache": True,
        "bytecode": "compiled before the first start, as in the container image",
        "bare_median_s": round(median(bare), 3),
    }
