"""No patient data in logs, responses, results or error records, on every path, at DEBUG.

Real DICOM files (pydicom's CT and MR, a JPEG 2000 CT, a multi-frame ultrasound)
are given recognisable identifying attributes (the PS3.15 confidentiality
profile's names, ids, dates, accession number, UIDs...). They then go through
the served HTTP API (success and every kind of refusal), the blob trigger's
handler (results, error records, the poison path) and the backfill CLI, with
every logger at DEBUG; everything written anywhere is searched for every value.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import uuid

import httpx
import pydicom
import pytest
from azure.storage.blob import BlobServiceClient
from pydicom.uid import generate_uid

from security.phi import IDENTIFYING_KEYWORDS
from service.batch import BatchProcessor, handle_poison_message
from service.logs import JsonFormatter, configure_logging
from service.storage import BlobStore
from service.wiring import build_engine
from tests.conftest import DEFAULT_MODELS, LOCAL_ENV, ROOT, ServedApp, make_settings, read_input
from tests.dicom_factory import PHI_VALUES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SOURCES = {
    "ct.dcm": "real_CT_small.dcm",  # inferred
    "ct-j2k.dcm": "real_CT_j2k_lossy_693.dcm",  # inferred
    "mr.dcm": "real_MR_small_RLE.dcm",  # refused: not CT (incompatible_input)
    "us-cine.dcm": "real_US_ybr422_jpeg_30frames.dcm",  # refused: colour (incompatible_input)
}


def with_identifiers(source: str) -> tuple[bytes, set[str]]:
    """A real file re-saved with recognisable identifying attributes; returns it and every value to hunt for."""
    ds = pydicom.dcmread(io.BytesIO(read_input(source)))
    values: set[str] = set()
    for keyword in IDENTIFYING_KEYWORDS:  # the file's own values too (e.g. 'CompressedSamples^CT1')
        if keyword in ds and str(ds.get(keyword)).strip(" ^"):
            values.add(str(ds.get(keyword)))
    for keyword, value in PHI_VALUES.items():
        setattr(ds, keyword, value)
    for keyword in ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID"):
        setattr(ds, keyword, generate_uid())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    values.update(str(ds.get(k)) for k in IDENTIFYING_KEYWORDS if k in ds)
    buffer = io.BytesIO()
    ds.save_as(buffer)
    return buffer.getvalue(), values


def needles(values: set[str]) -> set[str]:
    """Every value and every component of a person name (``Family^Given^Middle``)."""
    found = set()
    for value in values:
        found.add(value)
        found.update(part for part in value.split("^") if len(part) >= 4)
    return {n for n in found if len(n) >= 4}


@pytest.fixture(scope="module")
def phi_files():
    files, values = {}, set()
    for name, source in SOURCES.items():
        data, found = with_identifiers(source)
        files[name] = data
        values |= found
    truncated = files["ct.dcm"][: len(files["ct.dcm"]) - 4000]  # refused: corrupt_pixel_data
    files["ct-truncated.dcm"] = truncated
    return files, needles(values)


def assert_clean(text: str, hunted: set[str], where: str) -> None:
    leaked = sorted(n for n in hunted if n.lower() in text.lower())
    assert not leaked, f"identifying values in {where}: {leaked}"


@pytest.mark.requirement("REQ-SEC-005", "REQ-SEC-006")
def test_http_path_at_debug(tmp_path, phi_files):
    files, hunted = phi_files
    app = ServedApp({**LOCAL_ENV, "MEDAI_LOG_LEVEL": "DEBUG"}, tmp_path / "service.log")
    try:
        app.wait_ready()
        bodies = []
        statuses = {}
        with httpx.Client(base_url=app.base_url, timeout=60) as client:
            for name, data in files.items():
                response = client.post("/api/v1/models/ct-tissue-seg/infer", content=data)
                statuses[name] = (response.status_code, response.json().get("code"))
                bodies.append(response.text)
                bodies.append(json.dumps(dict(response.headers)))
    finally:
        app.stop()
    assert statuses == {
        "ct.dcm": (200, None),
        "ct-j2k.dcm": (200, None),
        "mr.dcm": (422, "incompatible_input"),
        "us-cine.dcm": (422, "incompatible_input"),
        "ct-truncated.dcm": (422, "corrupt_pixel_data"),
    }
    logs = app.logs()
    assert '"level": "DEBUG"' in logs  # the log really was at DEBUG
    assert_clean(logs, hunted, "the service's output")
    assert_clean("\n".join(bodies), hunted, "HTTP responses")


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.mark.requirement("REQ-SEC-005", "REQ-SEC-006")
@pytest.mark.azurite
def test_blob_path_records_and_poison_at_debug(azurite, phi_files):
    files, hunted = phi_files
    suffix = uuid.uuid4().hex[:8]
    env = {
        "AzureWebJobsStorage": azurite.connection_string,
        "MEDAI_LOG_LEVEL": "DEBUG",
        "MEDAI_MODELS_DIR": str(DEFAULT_MODELS),
        **{f"MEDAI_BLOB_{k}_CONTAINER": f"{k.lower()}-{suffix}" for k in ("INPUT", "RESULTS", "ERRORS", "ARCHIVE")},
    }
    settings = make_settings(**env)
    capture = Capture()
    root = logging.getLogger()
    configure_logging(settings, install_handler=False)  # the levels the Functions host gets: DEBUG here
    root.addHandler(capture)
    try:
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        store = BlobStore(client, settings.blob)
        store.ensure_containers()
        engine = build_engine(settings)
        engine.registry.start(background=False)
        processor = BatchProcessor(engine, store)
        for name, data in files.items():
            client.get_blob_client(settings.blob.input_container, f"phi/{name}").upload_blob(data)
            processor.process(f"phi/{name}")
        client.get_blob_client(settings.blob.input_container, "phi/poison.dcm").upload_blob(files["ct.dcm"])
        handle_poison_message(processor, {"BlobName": "phi/poison.dcm", "ContainerName": settings.blob.input_container})
    finally:
        root.removeHandler(capture)
        configure_logging(make_settings(), install_handler=False)
    records = []
    for container in (settings.blob.results_container, settings.blob.errors_container):
        for blob in client.get_container_client(container).list_blobs():
            records.append(client.get_blob_client(container, blob.name).download_blob().readall().decode())
    assert len(records) == 6
    assert sum('"instance_ref": "h1:' in r for r in records) == 2  # inferred instances are referred to by hash
    assert any('"level": "DEBUG"' in line for line in capture.lines)  # the log really was at DEBUG
    assert_clean("\n".join(capture.lines), hunted, "logs of the blob path")
    assert_clean("\n".join(records), hunted, "result and error records")


@pytest.mark.requirement("REQ-SEC-005", "REQ-SEC-006")
def test_backfill_cli_at_debug(tmp_path, phi_files):
    files, hunted = phi_files
    source = tmp_path / "in"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    run = subprocess.run(
        [sys.executable, "-m", "service.backfill", "--local-dir", str(source), "--out", str(tmp_path / "out"),
         "--log-level", "DEBUG"],
        cwd=ROOT,
        env={**os.environ, **LOCAL_ENV, "MEDAI_LOG_LEVEL": "DEBUG"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    written = "\n".join(p.read_text() for p in (tmp_path / "out").rglob("*.json"))
    assert written.count('"schema"') == len(files)
    assert '"level": "DEBUG"' in run.stderr  # the log really was at DEBUG
    assert_clean(run.stdout + run.stderr, hunted, "the CLI's output")
    assert_clean(written, hunted, "the CLI's records")
