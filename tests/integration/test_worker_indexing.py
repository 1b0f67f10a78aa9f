"""``function_app.py`` indexed by the Python worker's own code (``azure-functions-runtime``), offline.

This is what ``func start`` and Azure do at start-up: import the script, find the
app, turn every function into metadata, and check each parameter's annotation
against its binding. A wrong annotation, a missing deferred binding or a bad
binding direction fails here as it would fail the host. The worker's gRPC
message classes are replaced by small stand-ins (the host is not here).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import LOCAL_ENV, ROOT

pytestmark = pytest.mark.integration

SCRIPT = r"""
import json, types
from azure_functions_runtime import loader
from azure_functions_runtime.bindings import meta
from azure_functions_runtime.functions import Registry

class Message:
    def __init__(self, **fields):
        self.__dict__.update(fields)

class BindingInfo(Message):  # the protobuf enum values the registry compares with
    undefined = 0
    out = 1
    inout = 2

protos = types.SimpleNamespace(BindingInfo=BindingInfo, RpcFunctionMetadata=Message, RpcRetryOptions=Message)
meta.load_binding_registry()
registry = Registry()
metadata, _ = loader.process_indexed_function(protos, registry, loader.index_function_app("function_app.py"), ".")
print(json.dumps({
    m.name: {
        "bindings": [json.loads(b) for b in m.raw_bindings],
        "entry_point": m.entry_point,
    } for m in metadata
} | {"_info": {
    f.name: {"deferred": f.deferred_bindings_enabled, "context": f.requires_context,
             "types": {k: getattr(v.pytype, "__qualname__", None) for k, v in f.input_types.items()}}
    for f in registry._functions.values()
}}))
"""


@pytest.mark.requirement("REQ-FUNC-020")
@pytest.mark.parametrize("source", ["EventGrid", "LogsAndContainerScan"])
def test_the_worker_indexes_every_function(source):
    env = {**os.environ, **LOCAL_ENV, "MEDAI_BLOB_SOURCE": source}
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    indexed = json.loads(out.stdout.strip().splitlines()[-1])
    info = indexed.pop("_info")
    assert sorted(indexed) == ["blob_poison", "http_app", "process_blob", "warmup"]
    blob = indexed["process_blob"]["bindings"][0]
    assert blob["type"] == "blobTrigger" and blob["source"] == source
    assert blob["properties"] == {"SupportsDeferredBinding": True}  # the host hands over a reference, not bytes
    assert info["process_blob"] == {"deferred": True, "context": True, "types": {"client": "BlobClient"}}
    assert info["http_app"]["types"] == {"req": "HttpRequest"}
    assert info["blob_poison"]["types"] == {"message": "QueueMessage"}
    assert indexed["warmup"]["bindings"] == [{"direction": "IN", "type": "warmupTrigger", "name": "warmup"}]
