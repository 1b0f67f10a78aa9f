"""The first DICOM request and the DICOM decoder warm-up may import pydicom at the same moment.

pydicom's package imports its submodules circularly, so two threads importing it at once could see
it half-initialised: the request failed with an ImportError (a 500) about a second after start-up.
The probe runs in a fresh interpreter (nothing imported yet), holds the import of pydicom.dataset
for a moment to make the window wide and the outcome certain, starts a DICOM decode, and starts the
warm-up while the first import is still under way.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import INPUTS, ROOT

pytestmark = pytest.mark.requirement("REQ-FUNC-019", "REQ-PERF-007")

PROBE = """
import importlib.abc, json, sys, threading, time

class SlowDataset(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "pydicom.dataset":
            time.sleep(0.3)
        return None  # the normal finders do the import

sys.meta_path.insert(0, SlowDataset())
from inference.decode import decode
from inference.engine import InferenceEngine
from inference.settings import Settings

settings = Settings.from_env({"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none"})
engine = InferenceEngine(settings)
body = open(sys.argv[1], "rb").read()
outcome = {}

def request():
    try:
        outcome["request"] = decode(body, limits=settings.limits, imaging=settings.imaging).rows
    except Exception as err:
        outcome["request"] = repr(err)

def warm_up():
    try:
        engine.warm_decoders(raster=False)
        outcome["warm_up"] = "done"
    except Exception as err:
        outcome["warm_up"] = repr(err)

first = threading.Thread(target=request)
second = threading.Thread(target=warm_up)
first.start()
time.sleep(0.1)  # pydicom's import is under way in the first thread
second.start()
first.join()
second.join()
print(json.dumps(outcome))
"""


def test_a_dicom_request_during_the_decoder_warm_up_decodes():
    run = subprocess.run([sys.executable, "-c", PROBE, str(INPUTS / "real_CT_small.dcm")], cwd=ROOT,
                         capture_output=True, text=True, check=True)  # fmt: skip
    assert json.loads(run.stdout) == {"request": 128, "warm_up": "done"}  # CT_small is 128 x 128
