"""The blob batch path against Azurite: images per second through ``service.batch.BatchProcessor``.

Azurite (the real Azure Storage emulator, installed by ``npm ci``) is started on free ports with
``--inMemoryPersistence``: it shares the two cores with the service (Azure Storage would not), and
keeping its blobs in memory spares the service its disk writes (the tests start it on disk). An
untimed pass over a few inputs warms it first. Then, for each worker count, ``count`` copies of the
workload's input are uploaded under distinct names and processed by ``service.backfill.run`` (what
``python -m service.backfill`` runs: ``BatchProcessor.process`` for each input on a thread pool)
with the default ``move`` policy: download, idempotency checks, infer, write the result record,
archive, delete. Upload is not timed; model loading is not timed. Then the three
``MEDAI_BLOB_AFTER_SUCCESS`` policies run side by side at the default worker count, ``move`` first:
``tag`` (one request, setting the input's tags, instead of the archive copy and the delete) and
``keep`` (neither), so the report shows what the archiving's storage requests cost. After each run
(not timed) the inputs left and archived are counted, which shows the policy that ran. The target is
judged on the first block, ``move`` with the default worker count, against the raw rounds around
that block only; the policies have a raw reference of their own.
"""

from __future__ import annotations

# bandit: only fixed, local commands (servers, wrk, node, git)
import subprocess  # nosec B404  # starts the local emulator with fixed arguments
import tempfile
import time
from pathlib import Path
from typing import Any

from .models import ROOT
from .raw import RawPipeline, median_raw
from .servers import free_port

OTHER_POLICIES = ("tag", "keep")
"""The ``MEDAI_BLOB_AFTER_SUCCESS`` policies measured after the default one, ``move``."""
AZURITE_JS = ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
# The emulator's fixed, publicly documented development account key; not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # pragma: allowlist secret  # noqa: E501


class Azurite:
    """A running Azurite (blob, queue, table) on free ports; stop() ends it by its PID."""

    def __init__(self, location: Path) -> None:
        """Start it; ``location`` receives its log (the blobs stay in memory)."""
        import socket

        if not AZURITE_JS.exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` (make install does it)")
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self._log = (location / "azurite.log").open("wb")
        self.process = subprocess.Popen(  # nosec B603 B607  # node from PATH, fixed arguments, a local emulator
            [
                "node", str(AZURITE_JS), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
                "--inMemoryPersistence",
                "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"Azurite exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.blob_port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise TimeoutError("Azurite did not start in 30 s") from None
                time.sleep(0.1)

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/devstoreaccount1;"
        )

    def cpu_seconds(self) -> float:
        """CPU seconds (user + system) Azurite has used so far, from /proc (0 where unavailable)."""
        import os

        try:
            with open(f"/proc/{self.process.pid}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rpartition(")")[2].split()
            return (float(fields[11]) + float(fields[12])) / float(os.sysconf("SC_CLK_TCK"))
        except (OSError, ValueError, IndexError):
            return 0.0

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


WARMUP_INPUTS = 20


def _stage(client: Any, settings: Any, engine: Any, model: str, body: bytes, container: str, prefix: str,
           count: int, after_success: str = "move") -> Any:
    """Upload ``count`` copies of ``body`` under ``prefix`` in ``container`` (not timed); returns the
    processor that will take them, with the ``after_success`` policy (by default the default, ``move``)."""
    from service.batch import BatchProcessor
    from service.storage import BlobStore

    store = BlobStore(client, settings.blob, input_container=container)
    store.ensure_containers()
    upload = client.get_container_client(container)
    for index in range(count):
        upload.upload_blob(f"{prefix}image-{index:05d}.bin", body, overwrite=True)
    return BatchProcessor(engine, store, model_name=model, after_success=after_success)


def _process(processor: Any, prefix: str, workers: int) -> dict[str, Any]:
    """What the backfill CLI does: list the inputs, snapshot their records, process them."""
    from service.backfill import run
    from service.storage import RecordSnapshot

    store = processor.store
    listed = list(store.list_inputs(prefix))
    processor.store = RecordSnapshot(store, prefix)
    return run(processor, listed, workers=workers, progress=False)


def _aftermath(client: Any, settings: Any, container: str, prefix: str) -> dict[str, int]:
    """After a run (not timed): the inputs left under ``prefix`` (and how many carry the status tag),
    and how many were archived, which says the policy that ran is the one the report names."""
    from service.storage import PROCESSED_PREFIX, STATUS_TAG

    left = list(client.get_container_client(container).list_blobs(name_starts_with=prefix, include=["tags"]))
    archive = client.get_container_client(settings.blob.archive_container)
    return {
        "left_in_input": len(left),
        "tagged": sum(1 for blob in left if (blob.tags or {}).get(STATUS_TAG)),
        "archived": sum(1 for _ in archive.list_blobs(name_starts_with=PROCESSED_PREFIX + prefix)),
    }


def measure_batch(
    models_dir: Path,
    model: str,
    body: bytes,
    *,
    count: int,
    workers_list: tuple[int, ...] | None = None,
    policies: tuple[str, ...] = OTHER_POLICIES,
    raw_duration_s: float | None = None,
) -> dict[str, Any]:
    """Images per second of the batch path for each worker count: by default the backfill CLI's
    default (``service.backfill.DEFAULT_WORKERS``, the target's figure), one, and twice the default.

    Returns:
        Per worker count (``workers_N``, policy ``move``) and then, unless ``policies`` is empty,
        per policy at the default worker count (``policy_move`` and ``policy_P`` for each of
        ``policies``): inputs, elapsed seconds, images per second, the cores Azurite itself used
        meanwhile (the emulator runs on the same two cores; Azure Storage would not), the backfill
        summary and the ``aftermath`` (inputs left, tagged, archived). With ``raw_duration_s``, a
        raw-pipeline round of that length runs before each batch run and once after each block, and
        ``raw_reference`` holds the median images per second of the worker-count block's rounds (the
        reference of the batch target, taken in the same time window), ``raw_reference_policies`` that
        of the policies' block.
    """
    from inference.engine import InferenceEngine
    from inference.settings import Settings
    from service.backfill import DEFAULT_WORKERS
    from service.storage import blob_service_client

    workers_list = workers_list or (DEFAULT_WORKERS, 1, 2 * DEFAULT_WORKERS)
    results: dict[str, Any] = {"default_workers": DEFAULT_WORKERS}
    with tempfile.TemporaryDirectory(prefix="bench-azurite-") as location:
        azurite = Azurite(Path(location))
        try:
            settings = Settings.from_env(
                {
                    "MEDAI_ENVIRONMENT": "local",
                    "MEDAI_AUTH_MODE": "none",
                    "MEDAI_MODELS_DIR": str(models_dir),
                    "MEDAI_MODELS": model,
                    "MEDAI_DEFAULT_MODEL": model,
                    "MEDAI_LOG_LEVEL": "WARNING",
                    "AzureWebJobsStorage": azurite.connection_string,
                }
            )
            engine = InferenceEngine(settings)
            engine.registry.start(background=False)
            # A running instance built its concurrent session on its first concurrent run, long ago;
            # building it inside a timed run of a few seconds would charge that run for it.
            engine.model(model).add_concurrent_session(settings.runtime)
            client = blob_service_client(settings.blob.storage, environment=settings.environment)
            raw_pipeline = RawPipeline(models_dir, model, body) if raw_duration_s else None
            # Untimed warm-up pass: Azurite's JavaScript is compiled on its first requests and the
            # client's connection pool fills; otherwise whichever worker count runs first pays for both.
            warm = _stage(client, settings, engine, model, body, "bench-warmup", "warm/", WARMUP_INPUTS)
            _process(warm, "warm/", workers=2)
            # The worker counts with the default policy (the target's block, its raw reference from the
            # rounds around them), then the policies side by side at the default worker count, the
            # default again first among them, with a raw reference of their own.
            runs = [("workers", f"workers_{workers}", workers, "move") for workers in workers_list]
            if policies:
                runs += [("policies", f"policy_{policy}", DEFAULT_WORKERS, policy) for policy in ("move", *policies)]
            raw_rounds: dict[str, list[dict[str, Any]]] = {"workers": [], "policies": []}
            for index, (block, key, workers, policy) in enumerate(runs):
                if raw_pipeline is not None and raw_duration_s:
                    raw_round = raw_pipeline.measure(duration_s=raw_duration_s)
                    raw_rounds[block].append({**raw_round, "around": f"before {key}"})
                prefix = f"run-{key}/"
                container = f"bench-input-{key}".replace("_", "-")
                processor = _stage(client, settings, engine, model, body, container, prefix, count, policy)
                azurite_cpu = azurite.cpu_seconds()
                started = time.perf_counter()
                summary = _process(processor, prefix, workers)  # timed
                elapsed = time.perf_counter() - started
                azurite_cpu = azurite.cpu_seconds() - azurite_cpu
                results[key] = {
                    "workers": workers,
                    "policy": processor.after_success,
                    "inputs": count,
                    "elapsed_s": round(elapsed, 3),
                    "images_per_s": round(count / elapsed, 3),
                    "azurite_cores": round(azurite_cpu / elapsed, 2),
                    "summary": summary,
                    "aftermath": _aftermath(client, settings, container, prefix),  # what the policy left
                }
                last_of_block = index + 1 == len(runs) or runs[index + 1][0] != block
                if raw_pipeline is not None and raw_duration_s and last_of_block:
                    raw_round = raw_pipeline.measure(duration_s=raw_duration_s)
                    raw_rounds[block].append({**raw_round, "around": f"after {key}"})
            if raw_rounds["workers"]:
                results["raw_reference"] = median_raw(raw_rounds["workers"])
            if raw_rounds["policies"]:
                results["raw_reference_policies"] = median_raw(raw_rounds["policies"])
        finally:
            azurite.stop()
    return results
