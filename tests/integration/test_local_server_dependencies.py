"""The local server's packages (requirements-serve.txt) are not part of the Function App's runtime.

``requirements.txt`` is what the Function App's remote build and the container image install; uvicorn,
httptools and uvloop are pinned apart because the Functions host serves the application there. These
tests run a fresh interpreter in which importing those packages fails exactly as it does where they are
not installed (a meta-path finder refuses them: the same venv cannot both have and lack them), and check
that the Functions entry point indexes and serves without them and that ``python -m service`` says what
to install instead of a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess  # nosec B404  # runs this interpreter on a fixed script
import sys

import pytest

from service.__main__ import NO_UVICORN
from tests.conftest import DEFAULT_MODELS, LOCAL_ENV, ROOT, read_input
from tests.integration.test_blob_batch import CT_COUNTS

BLOCK = """
import importlib.abc, sys
class NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("uvicorn", "httptools", "uvloop"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
"""

FUNCTION_APP = BLOCK + """
import asyncio, json
import azure.functions as func
from tests.integration.test_functions_entry import call_http, functions_by_name
import function_app
function_app.engine.registry.wait_loaded(60)
body = open(sys.argv[1], "rb").read()
response = call_http(function_app, "POST", "/api/v1/models/ct-tissue-seg/infer", body,
                     {"Content-Type": "application/dicom"})
counts = {c["label"]: c["pixel_count"] for c in json.loads(response.get_body())["predictions"][0]["classes"]}
loaded = sorted(m for m in ("uvicorn", "httptools", "uvloop") if m in sys.modules)
print(json.dumps({"functions": sorted(functions_by_name(function_app)), "status": response.status_code,
                  "counts": counts, "loaded": loaded}))
"""


def _run(script: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter; ``env`` overrides (an empty value removes the variable)."""
    base = {**os.environ, **LOCAL_ENV, "MEDAI_MODELS_DIR": str(DEFAULT_MODELS), "MEDAI_LOG_LEVEL": "WARNING"}
    merged = {k: v for k, v in {**base, **(env or {})}.items() if v != ""}
    return subprocess.run(  # nosec B603  # this interpreter, a fixed script
        [sys.executable, "-c", script, *args], cwd=ROOT, env=merged, capture_output=True, text=True, timeout=120
    )


@pytest.mark.requirement("REQ-REG-002", "REQ-FUNC-020")
def test_the_function_app_indexes_without_the_local_server_packages(tmp_path):
    source = tmp_path / "ct.dcm"
    source.write_bytes(read_input("real_CT_small.dcm"))
    done = _run(FUNCTION_APP, str(source))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert {"http_app", "process_blob"} <= set(report["functions"]) and report["loaded"] == []
    # The README's documented counts of the bundled model on this file (as tests/integration/test_blob_batch.py).
    assert (report["status"], report["counts"]) == (200, CT_COUNTS)


@pytest.mark.requirement("REQ-REG-002")
@pytest.mark.parametrize("environment", ["local", "unset"])
def test_python_m_service_without_uvicorn_says_what_to_install(environment):
    # Before anything else: with no settings at all the answer is still what to install, not a
    # configuration error about authentication.
    env = None if environment == "local" else {name: "" for name in (*LOCAL_ENV, "MEDAI_MODELS_DIR")}
    done = _run(BLOCK + "import runpy; runpy.run_module('service', run_name='__main__')", "--port", "0", env=env)
    assert done.returncode == 2
    assert NO_UVICORN in done.stderr and "Traceback" not in done.stderr and "configuration_error" not in done.stderr
