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


@pytest.mark.requirement("REQ-FUNC-024")
def test_backfill_local_folder(tmp_path):
    source = tmp_path / "in"
    (source / "series a").mkdir(parents=True)
    (source / "series a" / "CT.dcm").write_bytes(read_input(GOOD))
    (source / "bad.png").write_bytes(read_input("png_truncated.png"))
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
