"""Backfill and reprocessing: run the batch handler over a whole container or a local folder.

    python -m service.backfill                          # every input blob (MEDAI_BLOB_* settings)
    python -m service.backfill --prefix 2026/12/        # only under a prefix
    python -m service.backfill --retry-failed           # the archived failures, under their own names
    python -m service.backfill --local-dir DIR --out OUT  # a folder: OUT/results, OUT/errors

Each input goes through :class:`service.batch.BatchProcessor`, the handler the
blob trigger uses, so the rules are the same: an input whose result (or error
record) matches its content and the model is skipped without inference; new
content or a new model version is (re)processed; a ``retries_exhausted`` record
answers nothing, so its input is processed again. The run is safe to interrupt
and re-run: nothing is lost (an input leaves the input container only after its
record is written) and nothing is doubled (a re-run skips what is done).

``--retry-failed`` takes the archived failures instead (``failed/<path>`` in the
archive container, :class:`service.storage.FailedArchive`) and processes each as
the input ``<path>``: its error record is replaced by a result (the copy moves to
``processed/<path>``) or by a new error record (the copy stays in ``failed/``).

The containers must exist (in Azure, main.bicep creates them): a missing one is
an error naming it, exit status 2; on the local emulator they are created.

A progress bar goes to stderr; the summary (processed, skipped, failed by code,
transient) is printed as JSON on stdout. Exit status: 0 when every input ended
with a record, 1 when some hit a transient failure (re-run to finish them).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from inference.cpu import available_cores
from inference.errors import ConfigurationError, ServiceError
from inference.settings import AFTER_SUCCESS_POLICIES, Settings

from .batch import BatchProcessor, Outcome
from .logs import configure_logging
from .storage import (
    STATUS_TAG,
    BlobStore,
    FailedArchive,
    ItemProperties,
    LocalStore,
    RecordSnapshot,
    blob_service_client,
    is_emulator,
)
from .wiring import build_engine

log = logging.getLogger("medai.backfill")

DEFAULT_WORKERS = 2 * available_cores()
"""Inputs in progress at once: the batch processor lets one per core decode and infer
(MEDAI_MAX_IN_FLIGHT), so the second per core overlaps its storage round trips with them."""


def run(
    processor: BatchProcessor, names: Sequence[str | ItemProperties], *, workers: int, progress: bool = True
) -> dict[str, Any]:
    """Process ``names`` (names, or listed properties) with ``workers`` threads; return the summary."""
    from tqdm import tqdm

    counts: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    transient: Counter[str] = Counter()
    bar = tqdm(total=len(names), unit="input", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    pending: set[Future[Outcome]] = set()
    queue = iter(names)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="backfill") as pool:
        try:
            for name in queue:
                pending.add(pool.submit(processor.process, name))
                if len(pending) >= workers * 2:  # bounded: a million blobs never sit in memory as futures
                    pending = _collect(pending, counts, failed, transient, bar)
            while pending:
                pending = _collect(pending, counts, failed, transient, bar)
        except KeyboardInterrupt:
            for future in pending:
                future.cancel()
            bar.close()
            raise
    bar.close()
    return {
        "inputs": len(names),
        "processed": counts["processed"],
        "skipped": counts["skipped"],
        "gone": counts["gone"],
        "failed": dict(sorted(failed.items())),
        "transient": dict(sorted(transient.items())),
    }


def _collect(
    pending: set[Future[Outcome]],
    counts: Counter[str],
    failed: Counter[str],
    transient: Counter[str],
    bar: Any,
) -> set[Future[Outcome]]:
    done, remaining = wait(pending, return_when=FIRST_COMPLETED)
    for future in done:
        try:
            outcome = future.result()
        except ServiceError as err:
            transient[err.code] += 1
        except Exception as err:  # storage errors from the SDK: the input stays, a re-run retries it
            transient[type(err).__name__] += 1
        else:
            counts[outcome.status] += 1
            if outcome.status == "failed" and outcome.code:
                failed[outcome.code] += 1
        bar.update(1)
    return remaining


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.backfill", description=__doc__.splitlines()[0])
    parser.add_argument("--container", help="input container (default MEDAI_BLOB_INPUT_CONTAINER)")
    parser.add_argument("--prefix", default="", help="only inputs whose name starts with this")
    parser.add_argument(
        "--retry-failed",
        action="store_true",
        help="retry the archived failures (failed/<path> in the archive container) under their own names <path>",
    )
    parser.add_argument("--local-dir", type=Path, help="process a local folder instead of a container")
    parser.add_argument("--out", type=Path, help="with --local-dir: where results/ and errors/ are written")
    parser.add_argument("--model", help="model name (default MEDAI_BLOB_MODEL, else the default model)")
    parser.add_argument(
        "--after-success",
        choices=AFTER_SUCCESS_POLICIES,
        help="what happens to inputs once recorded (default MEDAI_BLOB_AFTER_SUCCESS; 'keep' for a local folder)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=DEFAULT_WORKERS,
        help=f"inputs in progress at once (default {DEFAULT_WORKERS}: two per core; one per core decodes and infers "
        "while the others move data to and from storage)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--log-level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), default="WARNING", help="default WARNING"
    )
    args = parser.parse_args(argv)

    try:
        return _run(args, parser)
    except ServiceError as err:  # a bad setting, a missing secret or a model that cannot load: say which
        print(f"error: {err.code}: {err.detail}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    settings = Settings.from_env()
    configure_logging(dataclasses.replace(settings, log_level=args.log_level))
    if args.retry_failed and (args.local_dir or args.container or args.after_success not in (None, "move")):
        parser.error(
            "--retry-failed reads the archive container's failed/ and moves successes to processed/: "
            "it takes no --local-dir, --container or --after-success"
        )
    if args.container and args.container in _record_containers(settings):
        parser.error(
            f"{args.container} holds records or archived inputs, not inputs (its records would be named "
            "after the archive path); to retry failures use --retry-failed"
        )
    if args.local_dir:
        if not args.out:
            parser.error("--local-dir needs --out")
        store: Any = LocalStore(args.local_dir, args.out)
        policy = args.after_success or "keep"
    else:
        client = blob_service_client(settings.blob.storage, environment=settings.environment)
        if args.retry_failed:
            blobs: BlobStore = FailedArchive(client, settings.blob)
            policy = "move"
        else:
            blobs = BlobStore(client, settings.blob, input_container=args.container)
            policy = args.after_success or settings.blob.after_success
        _check_containers(blobs, settings, needs_archive=policy == "move")
        store = RecordSnapshot(blobs, args.prefix)
    engine = build_engine(settings)  # after the storage checks: a missing container fails before models load
    processor = BatchProcessor(
        engine, store, model_name=args.model or settings.blob.model or None, after_success=policy
    )
    items = [  # with their listed size and ETag, so each is not asked for its properties again
        item
        for item in store.list_inputs(args.prefix)
        if not (policy == "tag" and (item.tags or {}).get(STATUS_TAG))  # tagged inputs are done
    ]
    try:
        summary = run(processor, items, workers=max(1, args.workers), progress=not args.no_progress)
    except KeyboardInterrupt:
        print(json.dumps({"interrupted": True, "hint": "re-run the same command to finish"}), flush=True)
        return 130
    print(json.dumps(summary, indent=2), flush=True)
    return 1 if summary["transient"] else 0


def _record_containers(settings: Settings) -> set[str]:
    blob = settings.blob
    return {blob.results_container, blob.errors_container, blob.archive_container}


def _check_containers(store: BlobStore, settings: Settings, *, needs_archive: bool) -> None:
    """Fail with the missing containers' names, or create them on the local emulator.

    Raises:
        ConfigurationError: A container is missing from a real storage account.
    """
    kinds = ("input", "result", "error", "archive") if needs_archive else ("input", "result", "error")
    missing = store.missing_containers(kinds)
    if not missing:
        return
    if is_emulator(settings.blob.storage):
        store.ensure_containers()
        log.warning("created the missing containers on the local emulator: %s", ", ".join(missing))
        return
    which = f"container {missing[0]} does" if len(missing) == 1 else f"containers {', '.join(missing)} do"
    raise ConfigurationError(
        f"{which} not exist in the storage account (in Azure main.bicep creates the containers; check "
        "MEDAI_BLOB_*_CONTAINER, --container and the account of the MEDAI_BLOB_CONNECTION setting)"
    )


if __name__ == "__main__":
    sys.exit(main())
