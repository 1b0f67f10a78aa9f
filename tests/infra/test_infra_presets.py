"""The performance presets (issue 8) reach the Function App and the AKS pods, and the service accepts them."""

from __future__ import annotations

import re

import pytest
import yaml

from infra import contract
from infra.build import BICEP_DIR, K8S_DIR
from inference.settings import Settings

pytestmark = pytest.mark.requirement("REQ-PERF-005")


@pytest.mark.parametrize("name", sorted(contract.PERFORMANCE_PRESETS))
def test_each_preset_is_a_valid_service_configuration(name):
    preset = contract.PERFORMANCE_PRESETS[name]
    medai = {k: v for k, v in preset.items() if k.startswith("MEDAI_")}
    runtime = Settings.from_env({"MEDAI_ENVIRONMENT": "local", **medai}).runtime
    assert runtime.intra_op_threads == int(preset["MEDAI_ORT_INTRA_OP_THREADS"])
    assert runtime.concurrent_intra_op_threads == int(preset["MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS"])
    assert runtime.max_in_flight == int(preset["MEDAI_MAX_IN_FLIGHT"])
    assert runtime.max_queue == int(preset["MEDAI_MAX_QUEUE"])
    assert set(preset) - set(medai) <= {"FUNCTIONS_WORKER_PROCESS_COUNT", "PYTHON_THREADPOOL_THREAD_COUNT",
                                        "MALLOC_ARENA_MAX"}  # fmt: skip
    # glibc's own variable, from process start, agrees with the cap the service applies itself
    assert int(preset["MALLOC_ARENA_MAX"]) == runtime.malloc_arena_max


def test_function_app_takes_the_flex_preset_of_its_instance_memory():
    text = (BICEP_DIR / "main.bicep").read_text(encoding="utf-8")
    small, large = contract.PERFORMANCE_PRESETS["flex-2gb"], contract.PERFORMANCE_PRESETS["flex-4gb"]
    for key in small:
        block = re.search(rf"name: '{key}'\n\s+value: (.+)\n", text)
        assert block, key
        value = block.group(1)
        if small[key] == large[key]:
            assert value == f"'{small[key]}'"
        else:
            assert value == f"functionInstanceMemoryMB >= 4096 ? '{large[key]}' : '{small[key]}'"


def test_aks_pods_take_the_aks_preset():
    [config] = [d for d in yaml.safe_load_all((K8S_DIR / "02-configmap.yaml").read_text()) if d]
    for key, value in contract.PERFORMANCE_PRESETS["aks-pod"].items():
        assert config["data"][key] == value
