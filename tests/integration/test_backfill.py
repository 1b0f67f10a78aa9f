"""The backfill CLI over a real Azurite container and over a local folder, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from azure.storage.blob import BlobServiceClient

from tests.conftest import ROOT, read_input
from tests.integration.test_blob_batch import containers_env

pytestmark = [pytest.mark.integration, pytest.mark.azurite, pytest.mark.slow]

GOOD = "real_CT_small.dcm"
BAD = {"syn_ct_truncated_pixeldata.dcm": "corrupt_pixel_data", "not_an_image.png": "unsupported_media_type"}


def backfill(env: dict[str, str], *args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "service.backfill", *args],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def fill(client: BlobServiceClient, env: dict[str, str], good: int) -> list[str]:
    for key in ("INPUT", "RESULTS", "ERRORS", "ARCHIVE"):
        client.create_container(env[f"MEDAI_BLOB_{key}_CONTAINER"])
    container = client.get_container_client(env["MEDAI_BLOB_INPUT_CONTAINER"])
    names = []
    for i in range(good):
        names.append(f"study-{i // 10}/slice {i:03d}.dcm")
        container.upload_blob(names[-1], read_input(GOOD))
    for source in BAD:
        names.append(f"bad/{source}")
        container.upload_blob(names[-1], read_input(source))
    return names


def listing(client: BlobServiceClient, container: str) -> dict[str, str]:
    return {b.name: b.etag for b in client.get_container_client(container).list_blobs()}


@pytest.mark.requirement("REQ-FUNC-024")
def test_backfill_container_summary(azurite):
    env = {**containers_env(azurite), "MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none"}
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = fill(client, env, good=6)
    run = backfill(env, "--no-progress")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    summary = json.loads(out)
    assert summary == {
        "inputs": 8,
        "processed": 6,
        "skipped": 0,
        "gone": 0,
        "failed": {"corrupt_pixel_data": 1, "unsupported_media_type": 1},
        "transient": {},
    }
    assert sorted(listing(client, env["MEDAI_BLOB_RESULTS_CONTAINER"])) == sorted(
        n + ".json" for n in names if not n.startswith("bad/")
    )
    assert listing(client, env["MEDAI_BLOB_INPUT_CONTAINER"]) == {}
    again = backfill(env, "--no-progress")
    assert json.loads(again.communicate(timeout=300)[0])["inputs"] == 0  # everything was moved: nothing to redo


@pytest.mark.requirement("REQ-FUNC-024", "REQ-FUNC-022")
def test_interrupted_backfill_resumes_without_loss_or_doubling(azurite):
    env = {
        **containers_env(azurite, MEDAI_BLOB_AFTER_SUCCESS="move"),
        "MEDAI_ENVIRONMENT": "local",
        "MEDAI_AUTH_MODE": "none",
    }
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = fill(client, env, good=40)
    results = env["MEDAI_BLOB_RESULTS_CONTAINER"]

    first = backfill(env, "--workers", "1", "--no-progress")
    deadline = time.monotonic() + 120
    while len(listing(client, results)) < 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # the harshest interruption: no cleanup at all
    first.wait()
    done_before = listing(client, results)
    assert 5 <= len(done_before) < 40, "the run must have been interrupted part-way"

    second = backfill(env, "--workers", "2", "--no-progress")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    summary = json.loads(out)
    after = listing(client, results)
    errors = listing(client, env["MEDAI_BLOB_ERRORS_CONTAINER"])
    # Nothing lost: every input has exactly one record, and the input container is empty.
    assert sorted(after) == sorted(n + ".json" for n in names if not n.startswith("bad/"))
    assert sorted(errors) == sorted(n + ".json" for n in names if n.startswith("bad/"))
    assert listing(client, env["MEDAI_BLOB_INPUT_CONTAINER"]) == {}
    # Nothing doubled: records written by the first run were not rewritten by the second.
    assert all(after[name] == etag for name, etag in done_before.items())
    assert summary["processed"] + summary["skipped"] + sum(summary["failed"].values()) == summary["inputs"]
    archived = listing(client, env["MEDAI_BLOB_ARCHIVE_CONTAINER"])
    assert len(archived) == len(names)


@pytest.mark.requirement("REQ-FUNC-024", "REQ-FUNC-013")
def test_backfill_local_folder(tmp_path):
    source = tmp_path / "in"
    (source / "series a").mkdir(parents=True)
    (source / "series a" / "CT.dcm").write_bytes(read_input(GOOD))
    (source / "bad.png").write_bytes(read_input("png_truncated.png"))
    os.utime(source / "series a" / "CT.dcm", (1709296496.75, 1709296496.75))  # 2024-03-01 12:34:56.75 UTC
    out_dir = tmp_path / "out"
    env = {"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none"}
    run = backfill(env, "--local-dir", str(source), "--out", str(out_dir), "--no-progress")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert json.loads(out)["processed"] == 1 and json.loads(out)["failed"] == {"corrupt_image": 1}
    result = json.loads((out_dir / "results" / "series a" / "CT.dcm.json").read_text())
    assert {c["label"]: c["pixel_count"] for c in result["result"]["predictions"][0]["classes"]} == {
        "air": 3514,
        "soft_tissue": 11846,
        "bone": 1024,
    }
    # Last modified as a blob's reads (its HTTP date: UTC, whole seconds), not null.
    assert result["input"]["last_modified"] == "2024-03-01T12:34:56+00:00"
    assert json.loads((out_dir / "errors" / "bad.png.json").read_text())["problem"]["code"] == "corrupt_image"
    assert (source / "series a" / "CT.dcm").exists()  # a local folder is kept by default
    rerun = backfill(env, "--local-dir", str(source), "--out", str(out_dir), "--no-progress")
    assert json.loads(rerun.communicate(timeout=300)[0])["skipped"] == 2


@pytest.mark.requirement("REQ-FUNC-024", "REQ-FUNC-021")
def test_batch_demo_command_shows_what_landed_where():
    run = subprocess.run(
        [sys.executable, "tools/batch_demo.py"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    out = run.stdout
    assert "inference-results/\n    ward-7/ct/CT_j2k.dcm.json" in out
    assert "ward-7/ct/CT_small.dcm.json   -> air 1537.5153 mm², soft_tissue 5183.0978 mm², bone 448.0409 mm²" in out
    assert "ward-7/ct/truncated.dcm.json   -> 422 corrupt_pixel_data" in out
    assert "ward-9/notes/scan.png.json   -> 415 unsupported_media_type" in out
    assert "inference-input/\n  inference-results/" in out  # the input container ends empty


@pytest.mark.requirement("REQ-FUNC-022", "REQ-FUNC-024")
def test_record_snapshot_answers_what_each_record_request_would(azurite):
    from inference.settings import Settings
    from service.storage import BlobStore, RecordSnapshot, blob_service_client

    env = {**containers_env(azurite, MEDAI_BLOB_AFTER_SUCCESS="keep"), "MEDAI_ENVIRONMENT": "local"}
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    names = fill(client, env, good=3)
    first = backfill(env, "--no-progress")
    assert first.wait(timeout=300) == 0
    settings = Settings.from_env({**env, "MEDAI_AUTH_MODE": "none"})
    store = BlobStore(blob_service_client(settings.blob.storage, environment="local"), settings.blob)
    snapshot = RecordSnapshot(store)
    for name in [*names, "never/uploaded.dcm"]:
        for kind in ("result", "error"):
            assert snapshot.record(kind, name) == store.record(kind, name)  # one request per record as reference
    assert sum(snapshot.record("result", n) is not None for n in names) == 3
    assert sum(snapshot.record("error", n) is not None for n in names) == len(BAD)
    # Above its limit the snapshot is dropped and each record is asked for.
    small = RecordSnapshot(store, limit=1)
    assert small.record("result", names[0]) == store.record("result", names[0]) is not None
    # A re-run with the snapshot rewrites nothing: every input is skipped, every record keeps its ETag.
    before = listing(client, env["MEDAI_BLOB_RESULTS_CONTAINER"])
    again = backfill(env, "--no-progress")
    summary = json.loads(again.communicate(timeout=300)[0])
    assert summary["skipped"] == len(names) and summary["processed"] == 0
    assert listing(client, env["MEDAI_BLOB_RESULTS_CONTAINER"]) == before


# --- retrying failures, missing containers ---------------------------------------------------


def records(client: BlobServiceClient, env: dict[str, str]) -> dict[str, str]:
    """Every record by input name: ``result`` or ``error`` (a name listed twice fails the test)."""
    found: dict[str, str] = {}
    for kind, key in (("result", "RESULTS"), ("error", "ERRORS")):
        for name in listing(client, env[f"MEDAI_BLOB_{key}_CONTAINER"]):
            assert name.removesuffix(".json") not in found, f"two records for {name}"
            found[name.removesuffix(".json")] = kind
    return found


def record_etags(client: BlobServiceClient, env: dict[str, str]) -> dict[str, str]:
    results, errors = env["MEDAI_BLOB_RESULTS_CONTAINER"], env["MEDAI_BLOB_ERRORS_CONTAINER"]
    return {**listing(client, results), **listing(client, errors)}


@pytest.mark.requirement("REQ-FUNC-024", "REQ-FUNC-023", "REQ-FUNC-022")
def test_retry_failed_replaces_each_error_record_under_its_own_name(azurite):
    from service.batch import BatchProcessor, handle_poison_message
    from service.storage import BlobStore
    from tests.conftest import make_engine, make_settings

    env = {**containers_env(azurite), "MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none"}
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    fill(client, env, good=0)  # the containers, and two permanent failures under bad/
    settings = make_settings(**env)
    processor = BatchProcessor(make_engine(**env), BlobStore(client, settings.blob))
    inputs = client.get_container_client(env["MEDAI_BLOB_INPUT_CONTAINER"])

    def poisoned(name: str, source: str) -> None:  # the host gave up on it: retries_exhausted, failed/<name>
        etag = inputs.upload_blob(name, read_input(source), overwrite=True).get_blob_properties().etag
        assert handle_poison_message(processor, {"BlobName": name, "ETag": etag}).code == "retries_exhausted"

    poisoned("stuck/CT.dcm", GOOD)
    poisoned("later/CT.dcm", GOOD)  # ... then a newer version at that path succeeded
    inputs.upload_blob("later/CT.dcm", read_input("real_CT_j2k_lossy_693.dcm"))
    assert processor.process("later/CT.dcm").status == "processed"
    for name in [b.name for b in inputs.list_blobs()]:
        processor.process(name)  # bad/...: permanent failures, archived under failed/
    assert records(client, env) == {
        "stuck/CT.dcm": "error",
        "later/CT.dcm": "result",
        "bad/syn_ct_truncated_pixeldata.dcm": "error",
        "bad/not_an_image.png": "error",
    }
    archive = env["MEDAI_BLOB_ARCHIVE_CONTAINER"]
    before = record_etags(client, env)

    run = backfill(env, "--retry-failed", "--no-progress")
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    summary = json.loads(out)
    assert (summary["inputs"], summary["processed"], summary["skipped"], summary["failed"]) == (4, 1, 3, {})
    # Every input name still has exactly one record, under its own name (none under failed/).
    assert records(client, env) == {
        "stuck/CT.dcm": "result",
        "later/CT.dcm": "result",
        "bad/syn_ct_truncated_pixeldata.dcm": "error",
        "bad/not_an_image.png": "error",
    }
    result = json.loads(
        client.get_blob_client(env["MEDAI_BLOB_RESULTS_CONTAINER"], "stuck/CT.dcm.json").download_blob().readall()
    )
    assert result["input"]["name"] == "stuck/CT.dcm"
    assert {c["label"]: c["pixel_count"] for c in result["result"]["predictions"][0]["classes"]} == {
        "air": 3514,
        "soft_tissue": 11846,
        "bone": 1024,
    }
    after = record_etags(client, env)
    # The permanent failures are the same answer (not rewritten); the newer version's result is kept.
    for name in ("bad/syn_ct_truncated_pixeldata.dcm.json", "bad/not_an_image.png.json", "later/CT.dcm.json"):
        assert after[name] == before[name]
    assert sorted(listing(client, archive)) == [
        "failed/bad/not_an_image.png",
        "failed/bad/syn_ct_truncated_pixeldata.dcm",
        "failed/later/CT.dcm",  # the older copy, superseded by the newer version's result: left as it is
        "processed/later/CT.dcm",
        "processed/stuck/CT.dcm",
    ]

    # The old recipe (the archive as the input container) is refused: it named records after failed/<path>.
    old = backfill(env, "--container", archive, "--prefix", "failed/", "--no-progress")
    _, err = old.communicate(timeout=300)
    assert old.returncode == 2 and "--retry-failed" in err
    assert "failed" not in " ".join(records(client, env))


@pytest.mark.requirement("REQ-FUNC-024")
def test_backfill_creates_missing_containers_on_the_emulator(azurite):
    env = {**containers_env(azurite), "MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none"}
    client = BlobServiceClient.from_connection_string(azurite.connection_string)
    client.create_container(env["MEDAI_BLOB_INPUT_CONTAINER"]).upload_blob("a/CT.dcm", read_input(GOOD))
    run = backfill(env, "--no-progress")  # results, errors and archive containers do not exist yet
    out, err = run.communicate(timeout=300)
    assert run.returncode == 0, err
    assert json.loads(out)["processed"] == 1
    assert list(listing(client, env["MEDAI_BLOB_RESULTS_CONTAINER"])) == ["a/CT.dcm.json"]
    assert list(listing(client, env["MEDAI_BLOB_ARCHIVE_CONTAINER"])) == ["processed/a/CT.dcm"]


@pytest.mark.requirement("REQ-FUNC-024")
def test_backfill_names_a_missing_container_of_a_real_account(tmp_path, monkeypatch):
    # Azurite with an account of its own: to the service a storage account like any in Azure, not the emulator's.
    import base64

    from tools.azurite import Azurite

    key = base64.b64encode(os.urandom(32)).decode()
    monkeypatch.setenv("AZURITE_ACCOUNTS", f"medaiaccount:{key}")
    server = Azurite(tmp_path)
    try:
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName=medaiaccount;AccountKey={key};"
            f"BlobEndpoint=http://127.0.0.1:{server.blob_port}/medaiaccount;"
        )
        env = {**containers_env(server), "AzureWebJobsStorage": connection, "MEDAI_ENVIRONMENT": "local"}
        env["MEDAI_AUTH_MODE"] = "none"
        client = BlobServiceClient.from_connection_string(connection)
        client.create_container(env["MEDAI_BLOB_INPUT_CONTAINER"]).upload_blob("a/CT.dcm", read_input(GOOD))
        run = backfill(env, "--no-progress")
        out, err = run.communicate(timeout=300)
        assert run.returncode == 2 and out == ""
        assert "Traceback" not in err
        line = err.strip().splitlines()[-1]  # after the JSON log lines, one line for the operator
        assert line.startswith("error: configuration_error: containers ")
        missing = [env[f"MEDAI_BLOB_{key}_CONTAINER"] for key in ("RESULTS", "ERRORS", "ARCHIVE")]
        assert f"{', '.join(missing)} do not exist" in line and env["MEDAI_BLOB_INPUT_CONTAINER"] not in line
        assert sorted(c.name for c in client.list_containers()) == [env["MEDAI_BLOB_INPUT_CONTAINER"]]  # none made
        assert list(listing(client, env["MEDAI_BLOB_INPUT_CONTAINER"])) == ["a/CT.dcm"]
    finally:
        server.stop()


@pytest.mark.requirement("REQ-PERF-001", "REQ-FUNC-024")
def test_backfill_infers_at_most_one_input_per_slot_while_the_others_move_data(tmp_path):
    """Six inputs in progress at once, two inference slots: never more than two decode and infer together."""
    import threading

    from inference.engine import InferenceEngine
    from service.backfill import run
    from service.batch import BatchProcessor
    from service.storage import LocalStore
    from tests.conftest import DEFAULT_MODELS, make_settings

    settings = make_settings(MEDAI_MODELS_DIR=str(DEFAULT_MODELS), MEDAI_MAX_IN_FLIGHT="2")
    engine = InferenceEngine(settings)
    engine.registry.start(background=False)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for index in range(12):
        (inputs / f"ct-{index:02d}.dcm").write_bytes(read_input("real_CT_small.dcm"))

    lock, inferring, peak = threading.Lock(), [0], [0]
    real_predict = engine.predict

    def counting_predict(*args, **kwargs):  # a spy on our own engine: how many run at once
        with lock:
            inferring[0] += 1
            peak[0] = max(peak[0], inferring[0])
        try:
            time.sleep(0.02)  # long enough for the other workers to pile up if nothing held them back
            return real_predict(*args, **kwargs)
        finally:
            with lock:
                inferring[0] -= 1

    engine.predict = counting_predict
    store = LocalStore(inputs, tmp_path / "out")
    processor = BatchProcessor(engine, store, after_success="keep")
    summary = run(processor, list(store.list_inputs()), workers=6, progress=False)
    assert summary["processed"] == 12
    assert peak[0] == 2
