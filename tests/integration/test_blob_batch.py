"""The blob batch path against a real Azurite, with real SDK clients and real files.

Each test gets its own containers. The blob function is called the way the
worker calls it: ``function_app.process_blob`` with an SDK ``BlobClient``
(what ``azurefunctions-extensions-bindings-blob`` produces) and an invocation
context; the extension's own converter is exercised too.
"""

from __future__ import annotations

import hashlib
import json
import types
import uuid
from urllib.parse import unquote

import azure.functions as func
import pytest
from azure.core.exceptions import ServiceRequestError
from azure.storage.blob import BlobServiceClient

from service.batch import BatchProcessor
from service.storage import BlobStore
from tests.conftest import DEFAULT_MODELS, LOCAL_ENV, make_engine, make_settings, read_input
from tests.integration.test_functions_entry import InvocationContext, import_function_app

pytestmark = [pytest.mark.integration, pytest.mark.azurite]

CT_COUNTS = {"air": 3514, "soft_tissue": 11846, "bone": 1024}  # derived in tests/unit/test_models.py


def containers_env(azurite, **extra) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "AzureWebJobsStorage": azurite.connection_string,
        "MEDAI_MODELS_DIR": str(DEFAULT_MODELS),
        "MEDAI_BLOB_INPUT_CONTAINER": f"in-{suffix}",
        "MEDAI_BLOB_RESULTS_CONTAINER": f"results-{suffix}",
        "MEDAI_BLOB_ERRORS_CONTAINER": f"errors-{suffix}",
        "MEDAI_BLOB_ARCHIVE_CONTAINER": f"archive-{suffix}",
        **extra,
    }


class Batch:
    """A processor over fresh containers, plus helpers to look at what landed where."""

    def __init__(self, azurite, engine=None, **env):
        self.env = containers_env(azurite, **env)
        self.settings = make_settings(**self.env)
        self.engine = engine or make_engine(**self.env)
        self.client = BlobServiceClient.from_connection_string(azurite.connection_string)
        self.store = BlobStore(self.client, self.settings.blob)
        self.store.ensure_containers()
        self.processor = BatchProcessor(self.engine, self.store, after_success=self.settings.blob.after_success)

    def upload(self, name: str, data: bytes) -> None:
        self.client.get_blob_client(self.settings.blob.input_container, name).upload_blob(data, overwrite=True)

    def names(self, which: str) -> list[str]:
        container = getattr(self.settings.blob, f"{which}_container")
        return sorted(b.name for b in self.client.get_container_client(container).list_blobs())

    def document(self, which: str, name: str) -> dict:
        container = getattr(self.settings.blob, f"{which}_container")
        return json.loads(self.client.get_blob_client(container, name).download_blob().readall())

    def etag(self, which: str, name: str) -> str:
        container = getattr(self.settings.blob, f"{which}_container")
        return self.client.get_blob_client(container, name).get_blob_properties().etag


@pytest.fixture(scope="module")
def shared_engine():
    return make_engine(MEDAI_MODELS_DIR=str(DEFAULT_MODELS))


@pytest.fixture
def batch(azurite, shared_engine):
    return Batch(azurite, shared_engine)


def counts(document: dict) -> dict[str, int]:
    return {c["label"]: c["pixel_count"] for c in document["result"]["predictions"][0]["classes"]}


# --- the function, as the worker calls it ----------------------------------------------------


@pytest.fixture
def function_module(azurite):
    env = containers_env(azurite, **LOCAL_ENV, MEDAI_BLOB_SOURCE="LogsAndContainerScan")
    module = import_function_app(env)
    module.engine.registry.wait_loaded(30)
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    BlobStore(client, module.settings.blob).ensure_containers()
    return module, client


def _indexed(module) -> dict:
    from tests.integration.test_functions_entry import functions_by_name

    return functions_by_name(module)


@pytest.mark.requirement("REQ-FUNC-021", "REQ-FUNC-023", "REQ-FUNC-013")
def test_blob_function_end_to_end_on_real_files(function_module):
    module, client = function_module
    blob = module.settings.blob
    inputs = {
        "study-1/CT_small.dcm": ("real_CT_small.dcm", None),
        "study-1/truncated.dcm": ("syn_ct_truncated_pixeldata.dcm", "corrupt_pixel_data"),
        "study-2/seg.dcm": ("real_SEG_liver_1bit.dcm", "unsupported_sop_class"),
        "study-2/empty.dcm": ("empty.dcm", "empty_body"),
        "other/not-an-image.png": ("not_an_image.png", "unsupported_media_type"),
        "other/photo.jpg": ("gray_ok_64.jpg", "incompatible_input"),
    }
    process_blob = _indexed(module)["process_blob"].get_user_function()
    for name, (source, _) in inputs.items():
        blob_client = client.get_blob_client(blob.input_container, name)
        blob_client.upload_blob(read_input(source))
        process_blob(blob_client, InvocationContext("process_blob"))  # never raises for a bad input

    results = sorted(b.name for b in client.get_container_client(blob.results_container).list_blobs())
    errors = sorted(b.name for b in client.get_container_client(blob.errors_container).list_blobs())
    archived = sorted(b.name for b in client.get_container_client(blob.archive_container).list_blobs())
    assert results == ["study-1/CT_small.dcm.json"]
    assert errors == sorted(f"{n}.json" for n, (_, code) in inputs.items() if code)
    assert archived == sorted(
        f"{'failed' if code else 'processed'}/{n}" for n, (_, code) in inputs.items()
    )
    assert list(client.get_container_client(blob.input_container).list_blobs()) == []  # KEDA can scale to zero

    result = json.loads(client.get_blob_client(blob.results_container, results[0]).download_blob().readall())
    assert counts(result) == CT_COUNTS
    assert result["status"] == "succeeded" and result["schema"] == "medai-flow/batch-result/v1"
    assert result["input"]["name"] == "study-1/CT_small.dcm"
    assert result["input"]["sha256"] == __import__("hashlib").sha256(read_input("real_CT_small.dcm")).hexdigest()
    assert result["input"]["etag"] and result["started_at"] <= result["finished_at"]
    assert result["model"]["name"] == "ct-tissue-seg" and len(result["model"]["sha256"]) == 64
    assert result["result"]["request_id"] == "test-invocation"
    for name, (_, code) in inputs.items():
        if code:
            record = json.loads(client.get_blob_client(blob.errors_container, f"{name}.json").download_blob().readall())
            assert record["problem"]["code"] == code and record["status"] == "failed"
            assert 400 <= record["problem"]["status"] < 500
            assert record["input"]["name"] == name


@pytest.mark.requirement("REQ-SEC-007", "REQ-FUNC-022")
def test_batch_audit_records_carry_the_digest_of_the_bytes_read(batch, caplog):
    # The batch path hashes each input once and hands the digest to the engine and the audit trail:
    # every record must still name the very bytes of its input (hashlib over the file here).
    good, bad = read_input("real_CT_small.dcm"), read_input("syn_ct_truncated_pixeldata.dcm")
    batch.upload("a/good.dcm", good)
    batch.upload("a/bad.dcm", bad)
    with caplog.at_level("INFO", logger="medai.audit"):
        outcomes = {name: batch.processor.process(name).status for name in ("a/good.dcm", "a/bad.dcm")}
    assert outcomes == {"a/good.dcm": "processed", "a/bad.dcm": "failed"}
    audit = [r for r in caplog.records if r.name == "medai.audit"]
    assert [(r.status, r.source, r.input_sha256, r.input_bytes) for r in audit] == [
        (200, "blob", hashlib.sha256(good).hexdigest(), len(good)),
        (422, "blob", hashlib.sha256(bad).hexdigest(), len(bad)),
    ]
    assert batch.document("results", "a/good.dcm.json")["input"]["sha256"] == hashlib.sha256(good).hexdigest()


@pytest.mark.requirement("REQ-FUNC-020")
def test_blob_bindings_match_the_configured_source(azurite):
    for source in ("EventGrid", "LogsAndContainerScan"):
        module = import_function_app(containers_env(azurite, **LOCAL_ENV, MEDAI_BLOB_SOURCE=source))
        functions = _indexed(module)
        binding = json.loads(functions["process_blob"].get_function_json())["bindings"][0]
        assert binding == {
            "direction": "IN",
            "type": "blobTrigger",
            "name": "client",
            "path": f"{module.settings.blob.input_container}/{{name}}",
            "connection": "AzureWebJobsStorage",
            "source": source,
        }
        poison = json.loads(functions["blob_poison"].get_function_json())["bindings"][0]
        assert poison["type"] == "queueTrigger" and poison["queueName"] == "webjobs-blobtrigger-poison"


@pytest.mark.requirement("REQ-FUNC-020", "REQ-FUNC-021")
def test_the_sdk_binding_extension_gives_the_function_a_working_blob_client(function_module, monkeypatch):
    # The worker hands the extension a model_binding_data datum (a gRPC message; a namespace stands in for it).
    from azurefunctions.extensions.base import Datum
    from azurefunctions.extensions.bindings.blob import BlobClient as BindingBlobClient
    from azurefunctions.extensions.bindings.blob.blobClientConverter import BlobClientConverter

    module, client = function_module
    blob = module.settings.blob
    client.get_blob_client(blob.input_container, "via/extension.dcm").upload_blob(read_input("real_CT_small.dcm"))
    monkeypatch.setenv("AzureWebJobsStorage", module.settings.blob.storage.connection_string)
    content = json.dumps(
        {"Connection": "AzureWebJobsStorage", "ContainerName": blob.input_container, "BlobName": "via/extension.dcm"}
    )
    datum = Datum(
        types.SimpleNamespace(
            version="1.0", source="AzureStorageBlobs", content_type="application/json", content=content
        ),
        "model_binding_data",
    )
    sdk_client = BlobClientConverter.decode(datum, trigger_metadata=None, pytype=BindingBlobClient)
    assert sdk_client.blob_name == "via/extension.dcm"
    _indexed(module)["process_blob"].get_user_function()(sdk_client, InvocationContext("process_blob"))
    result = json.loads(
        client.get_blob_client(blob.results_container, "via/extension.dcm.json").download_blob().readall()
    )
    assert counts(result) == CT_COUNTS


def poison_message(container: str, name: str, etag: str) -> func.QueueMessage:
    """The message the host puts in its poison queue for a blob that failed every retry."""
    body = {
        "Type": "BlobTrigger",
        "FunctionId": "Host.Functions.process_blob",
        "BlobType": "BlockBlob",
        "ContainerName": container,
        "BlobName": name,
        "ETag": etag,
    }
    return func.QueueMessage(body=json.dumps(body).encode())


def listed(client, container: str) -> dict[str, str]:
    return {b.name: b.etag for b in client.get_container_client(container).list_blobs()}


@pytest.mark.requirement("REQ-FUNC-023")
def test_poison_message_leaves_an_error_record(function_module):
    module, client = function_module
    blob = module.settings.blob
    uploaded = client.get_blob_client(blob.input_container, "stuck/CT.dcm").upload_blob(read_input("real_CT_small.dcm"))
    message = poison_message(blob.input_container, "stuck/CT.dcm", uploaded["etag"])  # the version that failed
    _indexed(module)["blob_poison"].get_user_function()(message)
    record = json.loads(client.get_blob_client(blob.errors_container, "stuck/CT.dcm.json").download_blob().readall())
    assert record["problem"]["code"] == "retries_exhausted"
    assert record["problem"]["retryable"] is True  # transient on every attempt: a later try can succeed
    assert record["input"]["sha256"] == __import__("hashlib").sha256(read_input("real_CT_small.dcm")).hexdigest()
    assert [b.name for b in client.get_container_client(blob.archive_container).list_blobs()] == ["failed/stuck/CT.dcm"]


@pytest.mark.requirement("REQ-FUNC-022", "REQ-FUNC-023")
def test_identical_reupload_after_retries_exhausted_is_processed(function_module):
    # A retries_exhausted record is not the answer: the same bytes uploaded again get their result.
    module, client = function_module
    blob = module.settings.blob
    functions = _indexed(module)
    data = read_input("real_CT_small.dcm")
    uploaded = client.get_blob_client(blob.input_container, "again/CT.dcm").upload_blob(data)
    functions["blob_poison"].get_user_function()(poison_message(blob.input_container, "again/CT.dcm", uploaded["etag"]))
    assert sorted(listed(client, blob.errors_container)) == ["again/CT.dcm.json"]

    again = client.get_blob_client(blob.input_container, "again/CT.dcm")
    again.upload_blob(data)  # identical bytes, under the same name
    functions["process_blob"].get_user_function()(again, InvocationContext("process_blob"))
    assert listed(client, blob.errors_container) == {}  # the error record was replaced, not kept beside
    result = json.loads(client.get_blob_client(blob.results_container, "again/CT.dcm.json").download_blob().readall())
    assert counts(result) == CT_COUNTS
    assert listed(client, blob.input_container) == {}
    # One archive copy: the failed one of these very bytes is gone now that they succeeded.
    assert list(listed(client, blob.archive_container)) == ["processed/again/CT.dcm"]


@pytest.mark.requirement("REQ-FUNC-023", "REQ-FUNC-022")
def test_a_failed_copy_of_other_content_stays_when_newer_content_succeeds(function_module):
    module, client = function_module
    blob = module.settings.blob
    functions = _indexed(module)
    uploaded = client.get_blob_client(blob.input_container, "v/CT.dcm").upload_blob(read_input("syn_ct_rescale.dcm"))
    functions["blob_poison"].get_user_function()(poison_message(blob.input_container, "v/CT.dcm", uploaded["etag"]))
    newer = client.get_blob_client(blob.input_container, "v/CT.dcm")
    newer.upload_blob(read_input("real_CT_small.dcm"), overwrite=True)  # other bytes, same name
    functions["process_blob"].get_user_function()(newer, InvocationContext("process_blob"))
    assert sorted(listed(client, blob.archive_container)) == ["failed/v/CT.dcm", "processed/v/CT.dcm"]
    old = client.get_blob_client(blob.archive_container, "failed/v/CT.dcm").download_blob().readall()
    assert old == read_input("syn_ct_rescale.dcm")  # the older version is kept, not lost


@pytest.mark.requirement("REQ-FUNC-023", "REQ-FUNC-022")
def test_poison_message_of_an_older_version_leaves_the_new_content_to_its_trigger(function_module):
    module, client = function_module
    blob = module.settings.blob
    functions = _indexed(module)
    path = client.get_blob_client(blob.input_container, "replaced/CT.dcm")
    v1 = path.upload_blob(read_input("real_CT_small.dcm"))
    v2 = path.upload_blob(read_input("real_CT_j2k_lossy_693.dcm"), overwrite=True)
    assert v1["etag"] != v2["etag"]
    functions["blob_poison"].get_user_function()(poison_message(blob.input_container, "replaced/CT.dcm", v1["etag"]))
    assert listed(client, blob.errors_container) == {} and listed(client, blob.archive_container) == {}
    assert listed(client, blob.input_container) == {"replaced/CT.dcm": v2["etag"].strip('"')}  # untouched

    functions["process_blob"].get_user_function()(path, InvocationContext("process_blob"))  # v2's own trigger
    result_blob = client.get_blob_client(blob.results_container, "replaced/CT.dcm.json")
    result = json.loads(result_blob.download_blob().readall())
    assert result["input"]["sha256"] == hashlib.sha256(read_input("real_CT_j2k_lossy_693.dcm")).hexdigest()
    assert result["status"] == "succeeded" and listed(client, blob.errors_container) == {}
    assert list(listed(client, blob.archive_container)) == ["processed/replaced/CT.dcm"]


@pytest.mark.requirement("REQ-FUNC-023", "REQ-FUNC-022")
def test_poison_message_of_an_input_already_processed_and_moved_writes_nothing(function_module):
    # The host gave up on one delivery while another succeeded and moved the blob.
    module, client = function_module
    blob = module.settings.blob
    functions = _indexed(module)
    path = client.get_blob_client(blob.input_container, "done/CT.dcm")
    uploaded = path.upload_blob(read_input("real_CT_small.dcm"))
    functions["process_blob"].get_user_function()(path, InvocationContext("process_blob"))
    results, archive = listed(client, blob.results_container), listed(client, blob.archive_container)
    assert list(results) == ["done/CT.dcm.json"] and list(archive) == ["processed/done/CT.dcm"]

    functions["blob_poison"].get_user_function()(poison_message(blob.input_container, "done/CT.dcm", uploaded["etag"]))
    assert listed(client, blob.errors_container) == {}  # no error record next to the result
    assert listed(client, blob.results_container) == results  # the result not rewritten
    assert listed(client, blob.archive_container) == archive


@pytest.mark.requirement("REQ-FUNC-023")
def test_poison_message_of_new_content_removes_the_stale_result(function_module):
    # One record per input: the older content's result gives way to the new version's error record.
    module, client = function_module
    blob = module.settings.blob
    functions = _indexed(module)
    path = client.get_blob_client(blob.input_container, "redo/CT.dcm")
    path.upload_blob(read_input("real_CT_small.dcm"))
    functions["process_blob"].get_user_function()(path, InvocationContext("process_blob"))
    v2 = path.upload_blob(read_input("real_CT_j2k_lossy_693.dcm"))
    functions["blob_poison"].get_user_function()(poison_message(blob.input_container, "redo/CT.dcm", v2["etag"]))
    assert listed(client, blob.results_container) == {}
    record = json.loads(client.get_blob_client(blob.errors_container, "redo/CT.dcm.json").download_blob().readall())
    assert record["problem"]["code"] == "retries_exhausted"
    assert record["input"]["sha256"] == hashlib.sha256(read_input("real_CT_j2k_lossy_693.dcm")).hexdigest()


# --- idempotency ----------------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-022")
def test_redelivery_and_identical_reupload_are_no_ops(batch):
    batch.upload("p/CT.dcm", read_input("real_CT_small.dcm"))
    assert batch.processor.process("p/CT.dcm").status == "processed"
    first = batch.document("results", "p/CT.dcm.json")
    etag = batch.etag("results", "p/CT.dcm.json")
    assert batch.processor.process("p/CT.dcm").status == "gone"  # re-delivered after the move
    batch.upload("p/CT.dcm", read_input("real_CT_small.dcm"))  # re-uploaded, same content
    assert batch.processor.process("p/CT.dcm").status == "skipped"
    assert batch.etag("results", "p/CT.dcm.json") == etag  # not rewritten
    assert batch.document("results", "p/CT.dcm.json") == first
    assert batch.names("input") == []


@pytest.mark.requirement("REQ-FUNC-022")
def test_redelivery_while_the_input_is_kept_is_a_no_op(azurite, shared_engine):
    keep = Batch(azurite, shared_engine, MEDAI_BLOB_AFTER_SUCCESS="keep")
    keep.upload("k/CT.dcm", read_input("real_CT_small.dcm"))
    outcomes = [keep.processor.process("k/CT.dcm").status for _ in range(3)]
    assert outcomes == ["processed", "skipped", "skipped"]
    assert keep.names("input") == ["k/CT.dcm"] and keep.names("results") == ["k/CT.dcm.json"]


@pytest.mark.requirement("REQ-FUNC-022")
def test_new_content_at_the_same_path_replaces_the_record(batch):
    batch.upload("same/path.dcm", read_input("syn_ct_truncated_pixeldata.dcm"))
    assert batch.processor.process("same/path.dcm").code == "corrupt_pixel_data"
    assert batch.names("errors") == ["same/path.dcm.json"]
    batch.upload("same/path.dcm", read_input("real_CT_small.dcm"))  # the fixed study
    assert batch.processor.process("same/path.dcm").status == "processed"
    assert batch.names("errors") == []  # exactly one record per input: the stale error is gone
    assert counts(batch.document("results", "same/path.dcm.json")) == CT_COUNTS


@pytest.mark.requirement("REQ-FUNC-022")
def test_an_error_record_not_marked_permanent_is_not_an_answer(batch):
    # Error records written before they carried their problem's `retryable` cannot tell a
    # retries_exhausted from a permanent refusal: they are reprocessed once, then marked.
    batch.upload("old/bad.dcm", read_input("syn_ct_truncated_pixeldata.dcm"))
    assert batch.processor.process("old/bad.dcm").code == "corrupt_pixel_data"
    record = batch.client.get_blob_client(batch.settings.blob.errors_container, "old/bad.dcm.json")
    metadata = record.get_blob_properties().metadata
    assert metadata["retryable"] == "false"
    record.set_blob_metadata({k: v for k, v in metadata.items() if k != "retryable"})  # as an older version wrote it
    batch.upload("old/bad.dcm", read_input("syn_ct_truncated_pixeldata.dcm"))
    assert (batch.processor.process("old/bad.dcm").status, record.get_blob_properties().metadata["retryable"]) == (
        "failed",
        "false",
    )
    batch.upload("old/bad.dcm", read_input("syn_ct_truncated_pixeldata.dcm"))
    assert batch.processor.process("old/bad.dcm").status == "skipped"


@pytest.mark.requirement("REQ-FUNC-023")
def test_tag_policy_leaves_the_input_tagged(azurite, shared_engine):
    tagged = Batch(azurite, shared_engine, MEDAI_BLOB_AFTER_SUCCESS="tag")
    tagged.upload("t/CT.dcm", read_input("real_CT_small.dcm"))
    tagged.upload("t/bad.png", read_input("png_truncated.png"))
    tagged.processor.process("t/CT.dcm")
    tagged.processor.process("t/bad.png")
    container = tagged.client.get_container_client(tagged.settings.blob.input_container)
    tags = {b.name: b.tags for b in container.list_blobs(include=["tags"])}
    assert tags == {"t/CT.dcm": {"medai-status": "processed"}, "t/bad.png": {"medai-status": "failed"}}


# --- names, sizes, failures ------------------------------------------------------------------


@pytest.mark.requirement("REQ-FUNC-021")
@pytest.mark.parametrize(
    "name",
    [
        "with space/scan 1.dcm",
        "percent%20encoded/a%2Fb.dcm",
        "brackets[1]/x(2){3}.dcm",
        "hash#and&amp/q?=1;.dcm",
        "非ラテン/снимок/صورة ñ.dcm",
        "a/b/c.dcm",
        "a/x/c.dcm",
    ],
)
def test_blob_names_round_trip_unchanged(batch, name):
    batch.upload(name, read_input("real_CT_small.dcm"))
    assert batch.processor.process(name).status == "processed"
    assert batch.names("results") == [name + ".json"]
    assert batch.document("results", name + ".json")["input"]["name"] == name
    assert batch.names("archive") == ["processed/" + name]


@pytest.mark.requirement("REQ-FUNC-021")
def test_same_file_name_in_two_folders_never_collides(batch):
    batch.upload("a/b/c.dcm", read_input("real_CT_small.dcm"))
    batch.upload("a/x/c.dcm", read_input("syn_ct_rescale.dcm"))
    batch.processor.process("a/b/c.dcm")
    batch.processor.process("a/x/c.dcm")
    assert batch.names("results") == ["a/b/c.dcm.json", "a/x/c.dcm.json"]
    assert batch.document("results", "a/b/c.dcm.json")["input"]["sha256"] != batch.document(
        "results", "a/x/c.dcm.json"
    )["input"]["sha256"]


class CountingBlobStore(BlobStore):
    """Counts reads of the input: a spy on our own class, to show what was downloaded."""

    reads = 0

    def read(self, item, limit):
        CountingBlobStore.reads += 1
        return super().read(item, limit)


@pytest.mark.requirement("REQ-SEC-009", "REQ-PERF-003", "REQ-FUNC-023")
def test_size_is_checked_before_download_and_the_big_input_is_archived_unread(azurite):
    small = Batch(azurite, engine=make_engine(MEDAI_MODELS_DIR=str(DEFAULT_MODELS), MEDAI_MAX_BODY_BYTES="10000"))
    store = CountingBlobStore(small.client, small.settings.blob)
    processor = BatchProcessor(small.engine, store, after_success="move")
    data = read_input("real_CT_small.dcm")  # 39 206 bytes > 10 000
    small.upload("big/CT.dcm", data)
    outcome = processor.process("big/CT.dcm")
    assert (outcome.status, outcome.code) == ("failed", "payload_too_large")
    assert CountingBlobStore.reads == 0
    archive = small.client.get_blob_client(small.settings.blob.archive_container, "failed/big/CT.dcm")
    assert archive.download_blob().readall() == data


@pytest.mark.requirement("REQ-FUNC-023", "REQ-PERF-003")
def test_the_archive_copy_is_made_inside_the_storage_account(batch):
    data = read_input("real_CT_small.dcm")
    batch.upload("copy/CT small.dcm", data)
    assert batch.processor.process("copy/CT small.dcm").status == "processed"
    archived = batch.client.get_blob_client(batch.settings.blob.archive_container, "processed/copy/CT small.dcm")
    copy = archived.get_blob_properties().copy
    assert copy.status == "success"  # the service's own Copy Blob, not an upload of the bytes
    assert unquote(copy.source).endswith(f"/{batch.settings.blob.input_container}/copy/CT small.dcm")
    assert archived.download_blob().readall() == data
    assert batch.names("input") == []


@pytest.mark.requirement("REQ-FUNC-023")
def test_the_archive_falls_back_to_copying_the_bytes_when_the_source_cannot_be_verified(batch, monkeypatch):
    from azure.core.exceptions import HttpResponseError
    from azure.storage.blob import BlobClient

    def refuse(self, *args, **kwargs):
        # Azure answers 403 CannotVerifyCopySource where a network rule hides the source from the copy;
        # Azurite never does, so its refusal is raised at the SDK method, exactly as the SDK raises it.
        error = HttpResponseError(message="This request is not authorized to perform this operation.")
        error.error_code = "CannotVerifyCopySource"
        raise error

    monkeypatch.setattr(BlobClient, "start_copy_from_url", refuse)
    data = read_input("real_CT_small.dcm")
    batch.upload("fallback/CT.dcm", data)
    assert batch.processor.process("fallback/CT.dcm").status == "processed"
    archived = batch.client.get_blob_client(batch.settings.blob.archive_container, "processed/fallback/CT.dcm")
    assert archived.get_blob_properties().copy.status is None  # uploaded, not copied
    assert archived.download_blob().readall() == data
    assert batch.names("input") == []


@pytest.mark.requirement("REQ-FUNC-023")
def test_transient_storage_failure_is_raised_for_a_retry_not_recorded(azurite, shared_engine):
    batch = Batch(azurite, shared_engine)
    batch.upload("t/CT.dcm", read_input("real_CT_small.dcm"))
    # A storage account nobody answers for: what a throttled or unreachable account looks like to the SDK.
    unreachable = BlobServiceClient.from_connection_string(
        azurite.connection_string.replace(str(azurite.blob_port), "9"), retry_total=0, connection_timeout=2
    )
    processor = BatchProcessor(shared_engine, BlobStore(unreachable, batch.settings.blob))
    with pytest.raises(ServiceRequestError):
        processor.process("t/CT.dcm")
    assert batch.names("errors") == [] and batch.names("results") == []
    assert batch.names("input") == ["t/CT.dcm"]  # nothing lost: the retry finds it


@pytest.mark.requirement("REQ-FUNC-023", "REQ-SEC-010")
def test_a_model_that_cannot_load_is_retried_not_recorded(azurite, tmp_path):
    import shutil

    shutil.copytree(DEFAULT_MODELS / "ct-tissue-seg", tmp_path / "ct-tissue-seg")
    manifest = json.loads((tmp_path / "ct-tissue-seg" / "manifest.json").read_text())
    manifest["sha256"] = "0" * 64
    (tmp_path / "ct-tissue-seg" / "manifest.json").write_text(json.dumps(manifest))
    broken = Batch(azurite, engine=make_engine(MEDAI_MODELS_DIR=str(tmp_path)))
    broken.upload("m/CT.dcm", read_input("real_CT_small.dcm"))
    with pytest.raises(Exception) as info:
        broken.processor.process("m/CT.dcm")
    assert getattr(info.value, "code", "") == "model_integrity_failed"
    assert broken.names("errors") == [] and broken.names("input") == ["m/CT.dcm"]


@pytest.mark.requirement("REQ-FUNC-022", "REQ-FUNC-023")
def test_refusals_recorded_without_reading_the_input_are_not_rewritten(azurite):
    keep = Batch(
        azurite,
        engine=make_engine(MEDAI_MODELS_DIR=str(DEFAULT_MODELS), MEDAI_MAX_BODY_BYTES="10000"),
        MEDAI_BLOB_AFTER_SUCCESS="keep",
    )
    keep.upload("r/empty.dcm", b"")
    keep.upload("r/big.dcm", read_input("real_CT_small.dcm"))  # over the 10 000 bytes allowed here
    first = [keep.processor.process(n) for n in ("r/empty.dcm", "r/big.dcm")]
    assert [(o.status, o.code) for o in first] == [("failed", "empty_body"), ("failed", "payload_too_large")]
    etags = {n: keep.etag("errors", n + ".json") for n in ("r/empty.dcm", "r/big.dcm")}
    again = [keep.processor.process(n).status for n in ("r/empty.dcm", "r/big.dcm")]
    assert again == ["skipped", "skipped"]
    assert {n: keep.etag("errors", n + ".json") for n in etags} == etags
    keep.upload("r/big.dcm", read_input("real_CT_j2k_lossy_693.dcm"))  # a new version: recorded anew
    assert keep.processor.process("r/big.dcm").status == "processed"
    assert keep.names("errors") == ["r/empty.dcm.json"]


@pytest.mark.requirement("REQ-FUNC-023")
def test_an_unknown_after_success_policy_is_refused(shared_engine, azurite):
    """The store moves anything that is not tag or keep, so a misspelt policy must not get that far."""
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    store = BlobStore(client, make_settings(**containers_env(azurite)).blob)
    with pytest.raises(ValueError, match="after_success must be one of move, tag, keep, not 'kep'"):
        BatchProcessor(shared_engine, store, after_success="kep")
