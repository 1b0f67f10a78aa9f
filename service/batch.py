"""The per-item batch handler shared by the blob trigger and the backfill CLI.

For one input (a blob, or a file of a local folder):

1. Its properties are read; an input that is gone was finished by a concurrent
   invocation (nothing to do). The size is checked **before download**: empty
   or over ``MEDAI_MAX_BODY_BYTES`` is a permanent failure.
2. It is read (at most the limit, and only if its ETag is unchanged), and its
   sha256 computed.
3. **Idempotency rule**: a record for the same input path *answers* the input
   when its ``input_sha256`` and ``model_sha256`` equal this content's and the
   model's and it is final: a result, or an error record whose problem a retry
   cannot fix (every 4xx). Then nothing is recomputed or rewritten. An error
   record whose problem is retryable (``retries_exhausted``, written by the
   poison path) answers nothing: the same bytes re-uploaded, or retried from the
   archive, are processed again and the record replaced. Otherwise the input is
   inferred and the record written; a concurrent writer of the same record wins
   and this one becomes a no-op. So processing the same content with the same
   model is a no-op once it has a final record, however often the input is
   re-delivered or re-uploaded; new content, or a new model, replaces the record.
4. **Permanent failures** (every 4xx of the error tree: corrupt, empty,
   unsupported, too large...) write an error record (the problem document with
   its stable code) and the invocation *succeeds*, so the host does not retry.
   **Transient failures** (storage unreachable or throttled, the input changed
   while read, a model still loading) are raised, so the host retries; once the
   host gives up, :func:`handle_poison_message` writes the error record. Each
   input therefore ends with exactly one result or one error record (the stale
   other kind, left by an older content at that path, is removed).
5. The input is then moved to the archive container (``processed/`` or
   ``failed/``), tagged ``medai-status``, or kept, per ``MEDAI_BLOB_AFTER_SUCCESS``.
   Moving lets a KEDA ``azure-blob`` scaler, which counts the input container's
   blobs, scale back to zero.

Logs never carry the input's name (it may hold identifiers): they use
:func:`security.phi.opaque_ref` of it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inference.engine import InferenceEngine
from inference.errors import (
    EmptyBody,
    InternalError,
    PayloadTooLarge,
    ServiceError,
    problem_details,
)
from inference.settings import AFTER_SUCCESS_POLICIES
from security.audit import AuditTrail
from security.phi import opaque_ref

from .storage import ItemProperties, RecordInfo, Store, bare_etag

log = logging.getLogger("medai.batch")

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RESULT_SCHEMA = "medai-flow/batch-result/v1"
ERROR_SCHEMA = "medai-flow/batch-error/v1"


class RetriesExhausted(ServiceError):
    """Every attempt hit a transient failure. Retryable: the same input can succeed later, so
    its record is not an answer for the idempotency rule (a re-upload or a retry reprocesses it).
    """

    code = "retries_exhausted"
    status = 500
    title = "The input failed on every attempt; re-upload it or run the backfill with --retry-failed"
    retryable = True


@dataclass
class Outcome:
    """What happened to one input.

    Attributes:
        status: ``processed``, ``failed``, ``skipped`` (already done, no-op) or ``gone``.
        code: The problem code for ``failed``.
        name: The input path.
    """

    status: str
    name: str
    code: str | None = None
    timings: dict[str, float] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class BatchProcessor:
    """Processes one input at a time against a :class:`~service.storage.Store`.

    Args:
        engine: The shared inference engine (its warm model cache).
        store: Where inputs and records live.
        model_name: The model applied (empty: the engine's default model).
        after_success: ``move``, ``tag`` or ``keep`` (also applied to failed inputs).
        audit: The audit trail.
    """

    def __init__(
        self,
        engine: InferenceEngine,
        store: Store,
        *,
        model_name: str | None = None,
        after_success: str = "move",
        audit: AuditTrail | None = None,
    ) -> None:
        if after_success not in AFTER_SUCCESS_POLICIES:  # the store would otherwise move anything else
            raise ValueError(f"after_success must be one of {', '.join(AFTER_SUCCESS_POLICIES)}, not {after_success!r}")
        self.engine = engine
        self.store = store
        self.model_name = model_name or engine.settings.models.default_model
        self.after_success = after_success
        self.limit = engine.settings.limits.max_body_bytes
        self.audit = audit or AuditTrail()
        self._lock = threading.Lock()
        self._running = 0
        # Decoding and inference of at most one input per core at once (MEDAI_MAX_IN_FLIGHT); further
        # inputs in progress meanwhile download, write records and archive, so storage round trips
        # overlap with the inference of others instead of leaving a core idle.
        self.max_in_flight = engine.settings.runtime.inference_slots
        self._slots = threading.Semaphore(self.max_in_flight)

    def process(self, name: str | ItemProperties, *, invocation_id: str | None = None) -> Outcome:
        """Process input ``name`` (idempotent; see the module docstring).

        Args:
            name: The input's name, or its properties from a listing (the backfill), which saves
                reading them again; a blob replaced since the listing fails the conditional read
                as a transient error and is picked up by the next run.
            invocation_id: The host's invocation id, used as the request id.

        Raises:
            Exception: Transient failures, so the caller (the Functions host) retries.
        """
        with self._lock:
            self._running += 1
        try:
            return self._process(name, invocation_id)
        finally:
            with self._lock:
                self._running -= 1

    def _process(self, name_or_item: str | ItemProperties, invocation_id: str | None) -> Outcome:
        started = time.perf_counter()
        request_id = invocation_id or uuid.uuid4().hex
        if isinstance(name_or_item, ItemProperties):
            item: ItemProperties | None = name_or_item
            name = name_or_item.name
        else:
            name = name_or_item
            item = self.store.properties(name)
        ref = opaque_ref(name)
        if item is None:
            log.info("input already finished elsewhere", extra={"input_ref": ref, "request_id": request_id})
            return Outcome("gone", name)
        model = self.engine.model(self.model_name)
        data = b""
        sha = None
        known: tuple[RecordInfo | None, RecordInfo | None] | None = None  # (result, error) once looked up
        try:
            if item.size == 0:
                sha = EMPTY_SHA256
                raise EmptyBody("The input is empty (0 bytes).")
            if item.size > self.limit:
                raise PayloadTooLarge(
                    f"The input is {item.size} bytes; the limit is {self.limit} bytes.", limit=self.limit
                )
            data = self.store.read(item, self.limit)
            sha = hashlib.sha256(data).hexdigest()
            info = RecordInfo(etag=None, input_sha256=sha, model_sha256=model.manifest.sha256, input_etag=item.etag)
            existing = self.store.record("result", name)
            if _same(existing, info):
                self._finish(item, data, "processed")
                return self._done(Outcome("skipped", name), ref, request_id, started)
            previous_error = self.store.record("error", name)
            known = (existing, previous_error)
            if _same(previous_error, info):
                self._finish(item, data, "failed")
                return self._done(Outcome("skipped", name), ref, request_id, started)
            if self._superseded(sha, existing, previous_error, ref):
                return self._done(Outcome("skipped", name), ref, request_id, started)
            started_at = _now()
            result = self._infer(data, sha, request_id)
        except ServiceError as err:
            if not err.is_client_error:
                raise  # transient or server-side: the host retries, then the poison path records it
            return self._fail(item, data, sha, err, ref, request_id, started, known)

        document = {
            "schema": RESULT_SCHEMA,
            "status": "succeeded",
            "input": self._input_fields(item, sha),
            "model": result["model"],
            "started_at": started_at,
            "finished_at": _now(),
            "result": result,
        }
        self.store.write_record("result", name, document, info, replace=existing)
        if previous_error is not None:  # a stale record of older content at this path
            self.store.delete_record("error", name)
        self._audit(request_id, model.manifest, 200, None, data, started, sha)
        self._finish(item, data, "processed")
        if previous_error is not None and self.after_success == "move":  # it failed before: one archive copy
            self.store.discard_failed_copy(item, sha)
        return self._done(Outcome("processed", name), ref, request_id, started)

    def _infer(self, data: bytes, sha: str, request_id: str) -> dict[str, Any]:
        """Decode and infer in one of the inference slots (``sha``: the content's digest, computed once)."""
        with self._slots:
            # Other inputs in progress (backfill workers, concurrent invocations): one core per run.
            return self.engine.predict(
                self.model_name, data, request_id=request_id, concurrent=self._running > 1, input_sha256=sha
            )

    def _fail(
        self,
        item: ItemProperties,
        data: bytes,
        sha: str | None,
        error: ServiceError,
        ref: str,
        request_id: str,
        started: float,
        known: tuple[RecordInfo | None, RecordInfo | None] | None,
    ) -> Outcome:
        model = self.engine.registry.manifest(self.model_name)
        info = RecordInfo(etag=None, input_sha256=sha, model_sha256=model.sha256, input_etag=item.etag)
        if known is None:
            known = (self.store.record("result", item.name), self.store.record("error", item.name))
        stale_result, existing_error = known
        if _same(existing_error, info):  # this very refusal is already recorded: nothing to rewrite
            self._finish(item, data if (data or item.size == 0) else None, "failed")
            return self._done(Outcome("skipped", item.name), ref, request_id, started)
        if self._superseded(sha, stale_result, existing_error, ref):
            return self._done(Outcome("skipped", item.name), ref, request_id, started)
        self.write_error(
            item, sha, error, request_id, model_fields=_model_fields(model), info=info, existing=existing_error
        )
        if stale_result is not None:
            self.store.delete_record("result", item.name)
        self._audit(request_id, model, error.status, error.code, data, started, sha)
        # An input refused on its size alone was never downloaded: the archive copy streams it.
        self._finish(item, data if (data or item.size == 0) else None, "failed")
        return self._done(Outcome("failed", item.name, error.code), ref, request_id, started)

    def write_error(
        self,
        item: ItemProperties,
        sha: str | None,
        error: ServiceError,
        request_id: str,
        *,
        model_fields: dict[str, Any] | None,
        info: RecordInfo,
        existing: RecordInfo | None | bool = False,
    ) -> None:
        """Write the error record of an input (replacing an older one).

        Args:
            existing: The error record already there, when the caller looked it up
                (None: there is none); ``False`` looks it up here.
        """
        # A problem a retry can fix leaves the input open to reprocessing (see the idempotency rule).
        info = dataclasses.replace(info, final=not error.retryable)
        if existing is False:
            existing = self.store.record("error", item.name)
        document = {
            "schema": ERROR_SCHEMA,
            "status": "failed",
            "input": self._input_fields(item, sha),
            "model": model_fields,
            "problem": problem_details(error, request_id=request_id),
            "finished_at": _now(),
        }
        self.store.write_record("error", item.name, document, info, replace=existing or None)

    def _superseded(self, sha: str | None, result: RecordInfo | None, error: RecordInfo | None, ref: str) -> bool:
        """Whether an archived copy (``store.stale_inputs``) is older than what its name's record answers.

        In the input container the input is by construction the newest version at its path, so any
        record of other content is stale and replaced. An archived failed copy may instead be older
        than a later upload's record: it may replace only an error record of its own content, or of
        content refused on its size alone (no sha256 recorded), or no record; never a result of other
        content. A superseded copy is left where it is.
        """
        if not self.store.stale_inputs:
            return False
        if result is not None:
            newer = sha is None or result.input_sha256 != sha  # a refusal on size never replaces a result
        else:
            newer = error is not None and error.input_sha256 is not None and error.input_sha256 != sha
        if newer:
            log.info("archived copy superseded by the record of other content; left as it is", extra={"input_ref": ref})
        return newer

    def _input_fields(self, item: ItemProperties, sha: str | None) -> dict[str, Any]:
        return {
            "location": self.store.description,
            "name": item.name,
            "etag": item.etag,
            "sha256": sha,
            "bytes": item.size,
            "last_modified": item.last_modified,
        }

    def _finish(self, item: ItemProperties, data: bytes | None, outcome: str) -> None:
        self.store.finish(item, data, outcome, self.after_success)

    def _audit(
        self,
        request_id: str,
        manifest: Any,
        status: int,
        code: str | None,
        data: bytes,
        started: float,
        sha: str | None,
    ) -> None:
        self.audit.inference(
            request_id=request_id,
            caller=None,
            model=_model_fields(manifest),
            status=status,
            code=code,
            body=data,
            latency_ms=(time.perf_counter() - started) * 1000,
            source="blob",
            input_sha256=sha if data else None,
        )

    @staticmethod
    def _done(outcome: Outcome, ref: str, request_id: str, started: float) -> Outcome:
        outcome.timings["total_ms"] = round((time.perf_counter() - started) * 1000, 3)
        log.info(
            "batch input %s",
            outcome.status,
            extra={"input_ref": ref, "request_id": request_id, "code": outcome.code, **outcome.timings},
        )
        return outcome


def _same(record: RecordInfo | None, info: RecordInfo) -> bool:
    """Whether ``record`` already answers this content (or, unread, this version) with this model.

    A record that is not final (its problem is retryable: ``retries_exhausted``) answers nothing.
    """
    if record is None or not record.final or record.model_sha256 != info.model_sha256:
        return False
    if info.input_sha256 is not None:
        return record.input_sha256 == info.input_sha256
    # Refused on its size alone, the input was never read: its version (ETag) identifies it.
    return bool(info.input_etag) and (record.input_etag or "").strip('"') == (info.input_etag or "").strip('"')


def _model_fields(manifest: Any) -> dict[str, Any]:
    return {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256, "task": manifest.task}


def handle_poison_message(processor: BatchProcessor, message: dict[str, Any]) -> Outcome:
    """Record an input the Functions host gave up on (its poison-queue message).

    The message is the host's: ``{"FunctionId", "BlobType", "ContainerName", "BlobName", "ETag"}``;
    the ETag names the version that failed. What happens:

    * The blob is there with **another ETag**: newer content was uploaded since; its own trigger
      processes it, so nothing is written (the old version is gone anyway).
    * The blob is **gone** and its name has a record: a later attempt (or a newer version) was
      recorded and moved; that record is the answer, nothing is written.
    * Otherwise (the failed version is still there, or gone without any record) the error record
      is ``retries_exhausted`` (retryable: a re-upload of the same bytes, or
      ``python -m service.backfill --retry-failed``, processes it again), a stale result of older
      content is removed, and the input is archived under ``failed/``.

    Raises:
        InternalError: The message does not name a blob.
    """
    name = message.get("BlobName")
    if not isinstance(name, str) or not name:
        raise InternalError("The poison message names no blob.")
    ref = opaque_ref(name)
    store = processor.store
    failed_etag = bare_etag(message.get("ETag"))
    manifest = processor.engine.registry.manifest(processor.model_name)
    item = store.properties(name)
    result, error_record = store.record("result", name), store.record("error", name)
    data: bytes | None = None
    if item is None:
        if result is not None or error_record is not None:
            # Moved only once its record was written: by a later attempt of this very version (the
            # result's input_etag is the message's) or by a newer version's own run.
            same_version = result is not None and bare_etag(result.input_etag) == failed_etag
            log.info(
                "poison message of an input already recorded and moved: nothing to do",
                extra={"input_ref": ref, "same_version": same_version},
            )
            return Outcome("skipped", name)
        item = ItemProperties(name=name, size=0, etag=str(message.get("ETag", "")))  # nothing left to read
    elif failed_etag and bare_etag(item.etag) != failed_etag:
        log.info(
            "poison message of an older version: the new content is left to its own trigger", extra={"input_ref": ref}
        )
        return Outcome("skipped", name)
    elif item.size <= processor.limit:
        data = store.read(item, processor.limit)
    sha = hashlib.sha256(data).hexdigest() if data is not None else None
    info = RecordInfo(None, sha, manifest.sha256, item.etag)
    if _same(result, info) or _same(error_record, info):
        return Outcome("skipped", name)  # a later attempt answered it after all
    request_id = uuid.uuid4().hex
    processor.write_error(
        item, sha, RetriesExhausted(), request_id, model_fields=_model_fields(manifest), info=info,
        existing=error_record,
    )
    if result is not None:  # a stale result of older content at this path: one record per input
        store.delete_record("result", name)
    if item.etag and store.properties(name) is not None:
        store.finish(item, data, "failed", processor.after_success)
    log.warning("poison input recorded", extra={"input_ref": ref, "request_id": request_id})
    return Outcome("failed", name, RetriesExhausted.code)
