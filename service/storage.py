"""Where batch inputs, results and error records live: Azure Blob Storage, or a local folder.

:class:`BatchProcessor <service.batch.BatchProcessor>` works against the small
:class:`Store` interface, so the blob trigger, the backfill CLI over a
container and the backfill CLI over a local folder run the very same per-item
logic. :class:`BlobStore` uses one ``BlobServiceClient`` per process, with the
managed identity in Azure and a connection string only for the local emulator.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from inference.errors import ConfigurationError, TransientFailure
from inference.settings import BlobSettings, StorageConnection

log = logging.getLogger("medai.storage")

RESULT_SUFFIX = ".json"
STATUS_TAG = "medai-status"
FAILED_PREFIX = "failed/"
PROCESSED_PREFIX = "processed/"


@dataclass(frozen=True)
class ItemProperties:
    """What is known of an input before it is read."""

    name: str
    size: int
    etag: str
    last_modified: str | None = None
    tags: dict[str, str] | None = None


@dataclass(frozen=True)
class RecordInfo:
    """An existing result or error record, as far as idempotency needs it.

    Attributes:
        final: Whether the record can answer its input for good: a result, or an error
            record whose problem a retry cannot fix. False for an error record whose
            problem is retryable (``retries_exhausted``), and for a blob error record
            written before records said so (its ``retryable`` metadata is missing): such
            a record does not stop the input from being processed again.
    """

    etag: str | None
    input_sha256: str | None
    model_sha256: str | None
    input_etag: str | None
    final: bool = True


class InputChanged(TransientFailure):
    """The input was replaced while it was being processed; the new version will be processed."""

    code = "input_changed"
    title = "The input changed while it was processed"


class ArchiveCopyIncomplete(TransientFailure):
    """The server-side copy to the archive failed or did not finish; the input stays for a retry."""

    code = "archive_copy_incomplete"
    title = "The input could not be archived yet"


class Store(Protocol):
    """Inputs, results, errors and the archive of one batch location.

    Attributes:
        description: Where the inputs are, for the records' ``input.location``.
        stale_inputs: Whether an input may be older than its name's record (archived
            copies, :class:`FailedArchive`): then a record of other content is never replaced.
    """

    description: str
    stale_inputs: bool

    def list_inputs(self, prefix: str = "") -> Iterator[ItemProperties]: ...

    def properties(self, name: str) -> ItemProperties | None: ...

    def read(self, item: ItemProperties, limit: int) -> bytes: ...

    def record(self, kind: str, name: str) -> RecordInfo | None: ...

    def write_record(
        self, kind: str, name: str, document: dict[str, Any], info: RecordInfo, replace: RecordInfo | None
    ) -> bool: ...

    def delete_record(self, kind: str, name: str) -> None: ...

    def finish(self, item: ItemProperties, data: bytes | None, outcome: str, policy: str) -> None: ...

    def discard_failed_copy(self, item: ItemProperties, sha256: str) -> None: ...


def _quoted(etag: Any) -> str:
    """An ETag as the blob's headers give it: a listing returns it without the quotes."""
    value = str(etag)
    return value if value.startswith('"') else f'"{value}"'


def bare_etag(etag: Any) -> str:
    """An ETag without its quotes: messages and headers quote it, listings and record metadata do not."""
    return str(etag or "").strip('"')


def record_name(name: str) -> str:
    """The result or error record name of an input: its full path plus ``.json``."""
    return name + RESULT_SUFFIX


def _record_metadata(kind: str, info: RecordInfo) -> dict[str, str]:
    metadata = {
        "input_sha256": info.input_sha256 or "",
        "model_sha256": info.model_sha256 or "",
        "input_etag": bare_etag(info.input_etag),
    }
    if kind == "error":
        metadata["retryable"] = "false" if info.final else "true"
    return metadata


def _record_info(kind: str, etag: str, metadata: dict[str, str] | None) -> RecordInfo:
    meta = metadata or {}
    return RecordInfo(  # metadata cannot hold None: it was written as ""
        etag=etag,
        input_sha256=meta.get("input_sha256") or None,
        model_sha256=meta.get("model_sha256") or None,
        input_etag=meta.get("input_etag") or None,
        # An error record answers for good only when it says its problem is permanent.
        final=kind != "error" or meta.get("retryable") == "false",
    )


def is_emulator(connection: StorageConnection) -> bool:
    """Whether ``connection`` is the local storage emulator's (Azurite): its connection string."""
    text = connection.connection_string or ""
    return not connection.blob_service_uri and ("UseDevelopmentStorage=true" in text or "devstoreaccount1" in text)


# --- Azure Blob Storage --------------------------------------------------------------------


_clients: dict[tuple[str | None, str | None, str | None], Any] = {}
_clients_lock = threading.Lock()


def blob_service_client(connection: StorageConnection, *, environment: str) -> Any:
    """The process-wide ``BlobServiceClient`` for a connection (created once).

    Raises:
        ConfigurationError: No connection is configured, or a key-bearing
            connection string is used outside local development.
    """
    key = (connection.blob_service_uri, connection.client_id, connection.connection_string)
    with _clients_lock:
        if key not in _clients:
            _clients[key] = _create_client(connection, environment)
        return _clients[key]


def _create_client(connection: StorageConnection, environment: str) -> Any:
    from azure.storage.blob import BlobServiceClient

    if connection.blob_service_uri:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential(
            managed_identity_client_id=connection.client_id,
            workload_identity_client_id=connection.client_id,
            exclude_interactive_browser_credential=True,
        )
        return BlobServiceClient(account_url=connection.blob_service_uri, credential=credential)
    if connection.connection_string:
        text = connection.connection_string
        if environment != "local" and not is_emulator(connection):
            raise ConfigurationError(
                "A storage connection string is accepted only for the local emulator; in Azure use an identity-"
                "based connection (<connection>__blobServiceUri and __credential=managedidentity)."
            )
        return BlobServiceClient.from_connection_string(text)
    raise ConfigurationError(
        "No storage connection: set <MEDAI_BLOB_CONNECTION>__blobServiceUri (Azure, managed identity) "
        "or <MEDAI_BLOB_CONNECTION> to the emulator's connection string (local)."
    )


class BlobStore:
    """Batch location in Azure Blob Storage (or Azurite).

    Args:
        client: A ``BlobServiceClient``.
        settings: Container names and policies.
    """

    stale_inputs = False

    def __init__(self, client: Any, settings: BlobSettings, *, input_container: str | None = None) -> None:
        self._client = client
        self.settings = settings
        self.input_container = input_container or settings.input_container
        self.description = f"container {self.input_container}"
        self._containers = {
            "input": self.input_container,
            "result": settings.results_container,
            "error": settings.errors_container,
            "archive": settings.archive_container,
        }

    def ensure_containers(self) -> None:
        """Create the containers if missing (local set-up; in Azure the Bicep creates them)."""
        from azure.core.exceptions import ResourceExistsError

        for container in self._containers.values():
            try:
                self._client.create_container(container)
            except ResourceExistsError:
                pass

    def missing_containers(self, kinds: Sequence[str] = ("input", "result", "error", "archive")) -> list[str]:
        """The containers of ``kinds`` that do not exist, by name.

        Asks for the first page of each listing, which needs no permission beyond what
        processing needs (a container's properties would need more with some roles).
        """
        from azure.core.exceptions import ResourceNotFoundError

        missing = []
        for kind in kinds:
            container = self._client.get_container_client(self._containers[kind])
            try:
                next(container.list_blobs(results_per_page=1).by_page(), None)
            except ResourceNotFoundError:
                missing.append(self._containers[kind])
        return missing

    def _blob(self, kind: str, name: str) -> Any:
        return self._client.get_blob_client(self._containers[kind], name)

    def list_inputs(self, prefix: str = "") -> Iterator[ItemProperties]:
        container = self._client.get_container_client(self.input_container)
        for blob in container.list_blobs(name_starts_with=prefix or None, include=["tags"]):
            yield ItemProperties(
                name=blob.name,
                size=int(blob.size),
                etag=_quoted(blob.etag),
                last_modified=blob.last_modified.isoformat() if blob.last_modified else None,
                tags=dict(blob.tags or {}),
            )

    def properties(self, name: str) -> ItemProperties | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._blob("input", name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return ItemProperties(
            name=name,
            size=int(props.size),
            etag=str(props.etag),
            last_modified=props.last_modified.isoformat() if props.last_modified else None,
        )

    def read(self, item: ItemProperties, limit: int) -> bytes:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        try:
            downloader = self._blob("input", item.name).download_blob(
                etag=item.etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1
            )
            data = downloader.readall()
        except (ResourceModifiedError, ResourceNotFoundError) as err:
            raise InputChanged("The input was replaced or removed while it was read.") from err
        if len(data) > limit:  # the blob grew between the size check and the read
            raise InputChanged("The input grew while it was read.")
        return bytes(data)

    def record(self, kind: str, name: str) -> RecordInfo | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            props = self._blob(kind, record_name(name)).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return _record_info(kind, str(props.etag), props.metadata)

    def write_record(
        self, kind: str, name: str, document: dict[str, Any], info: RecordInfo, replace: RecordInfo | None
    ) -> bool:
        """Write a record unless another writer got there first.

        Returns:
            False when a concurrent invocation already wrote it (then nothing is written).
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
        from azure.storage.blob import ContentSettings

        body = json.dumps(document, indent=2, sort_keys=True).encode("utf-8")
        metadata = _record_metadata(kind, info)
        conditions: dict[str, Any] = {}
        if replace is None:
            conditions = {"overwrite": False}
        else:
            conditions = {"overwrite": True, "etag": replace.etag, "match_condition": MatchConditions.IfNotModified}
        try:
            self._blob(kind, record_name(name)).upload_blob(
                body,
                metadata=metadata,
                content_settings=ContentSettings(content_type="application/json"),
                **conditions,
            )
        except (ResourceExistsError, ResourceModifiedError):
            return False
        return True

    def list_records(self, kind: str, prefix: str = "") -> Iterator[tuple[str, RecordInfo]]:
        """Every ``kind`` record under ``prefix`` with its idempotency metadata: (input name, info)."""
        container = self._client.get_container_client(self._containers[kind])
        for blob in container.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
            if not blob.name.endswith(RESULT_SUFFIX):
                continue
            yield blob.name[: -len(RESULT_SUFFIX)], _record_info(kind, _quoted(blob.etag), blob.metadata)

    def delete_record(self, kind: str, name: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self._blob(kind, record_name(name)).delete_blob()
        except ResourceNotFoundError:
            pass

    def finish(self, item: ItemProperties, data: bytes | None, outcome: str, policy: str) -> None:
        """Move the input to the archive, tag it, or keep it, per ``policy``.

        Args:
            item: The input.
            data: Its content when already in memory; None streams it (an input refused on
                its size is never held in memory whole).
            outcome: ``processed`` or ``failed``.
            policy: ``move``, ``tag`` or ``keep``.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        source = self._blob("input", item.name)
        if policy == "keep":
            return
        if policy == "tag":
            try:
                source.set_blob_tags({STATUS_TAG: outcome})
            except ResourceNotFoundError:
                pass
            return
        folder = PROCESSED_PREFIX if outcome == "processed" else FAILED_PREFIX
        target = self._blob("archive", folder + item.name)
        try:
            if not self._server_copy(source, target, item.etag):
                if data is not None:
                    target.upload_blob(data, overwrite=True)
                else:
                    self._stream_copy(source, target, item.etag)
        except (ResourceNotFoundError, ResourceModifiedError):
            return  # moved or replaced meanwhile: nothing of this version is left to archive
        try:
            source.delete_blob(etag=item.etag, match_condition=MatchConditions.IfNotModified)
        except ResourceNotFoundError:
            pass  # already moved by a concurrent invocation
        except ResourceModifiedError:
            pass  # replaced meanwhile: the new content triggers its own processing

    # Copy Blob within one account may finish asynchronously: how long to wait before the input,
    # still in place, is left for a retry.
    COPY_WAIT_S = 60.0

    def _server_copy(self, source: Any, target: Any, etag: str) -> bool:
        """Copy ``source`` (this exact version) to ``target`` inside the account, no bytes through us.

        Within one storage account the destination request's own authorisation (the managed
        identity's token, or the emulator's key) covers the source. Returns False when the service
        refuses to verify the source (then the caller copies the bytes itself).

        Raises:
            ResourceModifiedError: The source is no longer version ``etag``.
            ResourceNotFoundError: The source is gone.
            ArchiveCopyIncomplete: The copy failed or did not finish in time (the input stays; a retry
                moves it).
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError, ResourceModifiedError, ResourceNotFoundError

        try:
            copy = target.start_copy_from_url(
                source.url, source_etag=etag, source_match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError):
            raise
        except HttpResponseError as err:
            if err.error_code in ("CannotVerifyCopySource", "AuthorizationPermissionMismatch"):
                log.info("server-side copy refused (%s); copying the bytes instead", err.error_code)
                return False
            raise
        status, deadline, pause = copy.get("copy_status"), time.monotonic() + self.COPY_WAIT_S, 0.05
        while status == "pending":
            if time.monotonic() > deadline:
                raise ArchiveCopyIncomplete("The archive copy did not finish in time; the input stays for a retry.")
            time.sleep(pause)
            pause = min(pause * 2, 2.0)
            status = target.get_blob_properties().copy.status
        if status != "success":
            raise ArchiveCopyIncomplete(f"The archive copy ended {status}; the input stays for a retry.")
        return True

    def discard_failed_copy(self, item: ItemProperties, sha256: str) -> None:
        """Remove ``failed/<name>`` from the archive when it holds these very bytes.

        An input that failed once (say, its retries ran out) and has now succeeded is archived under
        ``processed/``; its copy under ``failed/`` would say it both failed and succeeded, and every
        ``--retry-failed`` would list it again. A copy of other content (an older version) stays.
        """
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        copy = self._blob("archive", FAILED_PREFIX + item.name)
        try:
            props = copy.get_blob_properties()
            if int(props.size) != item.size:
                return
            held = copy.download_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified).readall()
            if hashlib.sha256(held).hexdigest() == sha256:
                copy.delete_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified)
        except (ResourceNotFoundError, ResourceModifiedError):
            pass  # no such copy, or it changed meanwhile: nothing to discard

    @staticmethod
    def _stream_copy(source: Any, target: Any, etag: str) -> None:
        """Copy block by block with bounded memory (works with any credential, unlike a server-side copy URL)."""
        import base64

        from azure.core import MatchConditions

        downloader = source.download_blob(etag=etag, match_condition=MatchConditions.IfNotModified, max_concurrency=1)
        block_ids = []
        for index, chunk in enumerate(downloader.chunks()):
            block_id = base64.b64encode(f"{index:08d}".encode()).decode()
            target.stage_block(block_id, chunk)
            block_ids.append(block_id)
        target.commit_block_list(block_ids)


class FailedArchive(BlobStore):
    """The archived failed inputs as a batch location: ``failed/<path>`` is the input ``<path>``.

    For retrying failures under their own names (``python -m service.backfill --retry-failed``):
    the records are those of ``<path>`` in the results and errors containers, so a retry replaces
    the input's error record by a result (or by a new error record), never adds a second one.
    A success moves ``failed/<path>`` to ``processed/<path>``; a new failure leaves it where it is.

    An archived copy may be older than its name's record (a newer upload succeeded since), so
    :attr:`stale_inputs` is set: the processor then replaces only an error record of the same
    content, and leaves a copy whose name answers other content in ``failed/``.
    """

    stale_inputs = True

    def __init__(self, client: Any, settings: BlobSettings) -> None:
        super().__init__(client, settings, input_container=settings.archive_container)
        self.description = f"container {settings.archive_container}, {FAILED_PREFIX}"

    def _blob(self, kind: str, name: str) -> Any:
        if kind == "input":
            return self._client.get_blob_client(self.input_container, FAILED_PREFIX + name)
        return super()._blob(kind, name)

    def list_inputs(self, prefix: str = "") -> Iterator[ItemProperties]:
        for item in super().list_inputs(FAILED_PREFIX + prefix):
            yield dataclasses.replace(item, name=item.name[len(FAILED_PREFIX) :])

    def finish(self, item: ItemProperties, data: bytes | None, outcome: str, policy: str) -> None:
        """Move a success to ``processed/<path>``; a failure is already archived under ``failed/``."""
        if outcome == "processed":
            super().finish(item, data, outcome, policy)


# --- a local folder ----------------------------------------------------------------------


class LocalStore:
    """Batch location on the file system: ``input`` read-only by default, records under ``out``.

    Layout of ``out``: ``results/<relative path>.json``, ``errors/<relative path>.json`` and,
    with the ``move`` policy, ``archive/processed|failed/<relative path>``.
    """

    stale_inputs = False

    def __init__(self, input_dir: Path, out_dir: Path) -> None:
        self.input_dir = input_dir.resolve()
        self.out_dir = out_dir.resolve()
        self.description = f"folder {self.input_dir}"
        self._dirs = {
            "result": self.out_dir / "results",
            "error": self.out_dir / "errors",
            "archive": self.out_dir / "archive",
        }

    def _input_path(self, name: str) -> Path:
        path = (self.input_dir / name).resolve()
        if self.input_dir not in path.parents:
            raise ValueError(f"{name!r} is outside the input folder")
        return path

    def list_inputs(self, prefix: str = "") -> Iterator[ItemProperties]:
        for path in sorted(self.input_dir.rglob("*")):
            if path.is_file() and self.out_dir not in path.parents:
                name = path.relative_to(self.input_dir).as_posix()
                if name.startswith(prefix):
                    yield self._props(name, path)

    @staticmethod
    def _props(name: str, path: Path) -> ItemProperties:
        stat = path.stat()
        # As a blob's Last-Modified reads: UTC, whole seconds (its HTTP date has no fraction).
        modified = datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="seconds")
        return ItemProperties(
            name=name, size=stat.st_size, etag=f"{stat.st_mtime_ns}-{stat.st_size}", last_modified=modified
        )

    def properties(self, name: str) -> ItemProperties | None:
        path = self._input_path(name)
        return self._props(name, path) if path.is_file() else None

    def read(self, item: ItemProperties, limit: int) -> bytes:
        path = self._input_path(item.name)
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
        if len(data) > limit or self._props(item.name, path).etag != item.etag:
            raise InputChanged("The input changed while it was read.")
        return data

    def _record_path(self, kind: str, name: str) -> Path:
        return self._dirs[kind] / record_name(name)

    def record(self, kind: str, name: str) -> RecordInfo | None:
        path = self._record_path(kind, name)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return RecordInfo(
            etag=str(path.stat().st_mtime_ns),
            input_sha256=document.get("input", {}).get("sha256"),
            model_sha256=(document.get("model") or {}).get("sha256"),
            input_etag=document.get("input", {}).get("etag"),
            final=not (document.get("problem") or {}).get("retryable", False),
        )

    def write_record(
        self, kind: str, name: str, document: dict[str, Any], info: RecordInfo, replace: RecordInfo | None
    ) -> bool:
        path = self._record_path(kind, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps(document, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)  # atomic: an interrupted run never leaves half a record
        return True

    def delete_record(self, kind: str, name: str) -> None:
        self._record_path(kind, name).unlink(missing_ok=True)

    def finish(self, item: ItemProperties, data: bytes | None, outcome: str, policy: str) -> None:
        if policy != "move":
            return  # a local folder is never tagged; "keep" leaves it as it is
        folder = "processed" if outcome == "processed" else "failed"
        target = self._dirs["archive"] / folder / item.name
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._input_path(item.name), target)

    def discard_failed_copy(self, item: ItemProperties, sha256: str) -> None:
        """As :meth:`BlobStore.discard_failed_copy`, in ``out/archive/failed``."""
        copy = self._dirs["archive"] / "failed" / item.name
        if copy.is_file() and hashlib.sha256(copy.read_bytes()).hexdigest() == sha256:
            copy.unlink(missing_ok=True)


class RecordSnapshot:
    """A store whose result and error records were listed once, for a backfill.

    The backfill would otherwise ask for both records of every input (two requests each);
    one listing per container, with the records' metadata, answers them all. The snapshot
    is only a shortcut: a record written after it was taken makes the conditional write
    fail, never overwrite. Above ``limit`` records per container (memory) the snapshot is
    dropped and each record is asked for, as without it. Everything else goes to ``store``.
    """

    def __init__(self, store: Any, prefix: str = "", *, limit: int = 200_000) -> None:
        self._store = store
        self.description = store.description
        self._records: dict[str, dict[str, RecordInfo] | None] = {}
        for kind in ("result", "error"):
            records: dict[str, RecordInfo] | None = {}
            for name, info in store.list_records(kind, prefix):
                records[name] = info  # type: ignore[index]
                if len(records) > limit:  # type: ignore[arg-type]
                    records = None
                    break
            self._records[kind] = records

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._store, attribute)

    def record(self, kind: str, name: str) -> RecordInfo | None:
        records = self._records.get(kind)
        if records is None:
            return self._store.record(kind, name)  # type: ignore[no-any-return]
        return records.get(name)
