"""The audit trail: one structured record per inference and per refused request.

Records go to the ``medai.audit`` logger, separate from operational logs, so a
diagnostic setting or the Functions host can route them to their own Log
Analytics table; the logger stays at INFO whatever ``MEDAI_LOG_LEVEL`` is
(:func:`service.logs.configure_logging`).

A record's fields are attributes of its log record, so the JSON log line
(:class:`service.logs.JsonFormatter`) carries them as top-level fields next to a
short human ``message`` (``inference: 200 success``). The Azure Functions
Python worker forwards only a record's message text (and logger name) to
Application Insights, so under the host :class:`RecordAsMessage` makes that
text the record's JSON.

Fields (all present in every record, ``null`` when unknown):

=================  ===========================================================
``event``          ``inference`` or ``refused`` (authentication/authorisation)
``time``           UTC, ISO 8601 with milliseconds
``request_id``     correlation id (also the ``X-Request-ID`` response header)
``caller``         ``{kind, id, app_id, tenant_id}``: Entra object id and app id,
                   or the API key id; never a token or key. A refusal: the
                   authenticated caller of a 403, null for a 401
``model``          ``{name, version, sha256}`` of the model that ran, or that the
                   path asked for (a refusal on a model route)
``input_sha256``   sha256 of the body, when one was read
``input_bytes``    body size, when one was read (null on a 413 refused unread)
``outcome``        ``success``, ``client_error``, ``server_error`` or ``refused``
``status``         HTTP status
``code``           the problem ``code`` for failures
``reason``         a refusal's ``reason`` (``token_expired``, ``invalid_api_key``,
                   ``missing_role``, ...), as in its problem document
``latency_ms``     time in the service
``source``         ``http`` or ``blob``
=================  ===========================================================

No record holds image content, DICOM attribute values or blob names.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

AUDIT_LOGGER = "medai.audit"
FIELDS = (
    "event",
    "time",
    "request_id",
    "caller",
    "model",
    "input_sha256",
    "input_bytes",
    "outcome",
    "status",
    "code",
    "reason",
    "latency_ms",
    "source",
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _outcome(status: int) -> str:
    if status < 400:
        return "success"
    if status in (401, 403):
        return "refused"
    return "client_error" if status < 500 else "server_error"


def _summary(record: dict[str, Any]) -> str:
    """The short human message of a record: event, status and code (or outcome); nothing identifying."""
    summary = f"{record['event']}: {record['status']} {record['code'] or record['outcome']}"
    return f"{summary} ({record['reason']})" if record["reason"] else summary


class RecordAsMessage(logging.Filter):
    """Puts an audit record's JSON in its message text, for a host that forwards only that text.

    Installed on the ``medai.audit`` logger under the Functions host, whose Python
    worker sends Application Insights a record's formatted message and logger name
    and drops every other attribute: without it the trail would arrive as summaries.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if hasattr(record, "event"):  # written by AuditTrail: every field is an attribute
            record.msg = json.dumps({name: getattr(record, name, None) for name in FIELDS}, sort_keys=True)
            record.args = ()
        return True


class AuditTrail:
    """Writes audit records to the ``medai.audit`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def write(self, **fields: Any) -> dict[str, Any]:
        """Write one record with every documented field; returns it.

        The fields travel as attributes of the log record (``extra``), so a JSON
        handler writes them as top-level fields rather than as a string to parse.
        """
        record = {name: fields.get(name) for name in FIELDS}
        record["time"] = record["time"] or _now()
        self._log.info(_summary(record), extra=record)
        return record

    def inference(
        self,
        *,
        request_id: str,
        caller: Any,
        model: dict[str, Any] | None,
        status: int,
        code: str | None,
        body: bytes | None,
        latency_ms: float,
        source: str = "http",
        input_sha256: str | None = None,
    ) -> dict[str, Any]:
        """Record one inference attempt (success or failure).

        ``input_sha256``, when the caller already has it (a successful inference computed it),
        saves hashing ``body`` a second time; otherwise it is computed from ``body``.
        """
        if input_sha256 is None and body:
            input_sha256 = hashlib.sha256(body).hexdigest()
        return self.write(
            event="inference",
            request_id=request_id,
            caller=caller.audit_fields() if caller is not None else None,
            model=model,
            input_sha256=input_sha256,
            input_bytes=len(body) if body is not None else None,
            outcome=_outcome(status),
            status=status,
            code=code,
            latency_ms=round(latency_ms, 3),
            source=source,
        )

    def refused(
        self,
        *,
        request_id: str,
        status: int,
        code: str,
        reason: str | None,
        caller: Any,
        model: dict[str, Any] | None,
        latency_ms: float,
        source: str = "http",
    ) -> dict[str, Any]:
        """Record a request refused by authentication (401) or authorisation (403).

        Args:
            request_id: The request's id.
            status: 401 or 403.
            code: The problem code (``unauthorized``, ``forbidden``).
            reason: Why (``token_expired``, ``missing_role``, ...), the problem document's ``reason``.
            caller: Who was refused: the authenticated caller of a 403, None for a 401.
            model: The model the path names, None on routes that name none.
            latency_ms: Time spent on the request.
            source: Where it came from (refusals only happen on ``http``).
        """
        return self.write(
            event="refused",
            request_id=request_id,
            caller=caller.audit_fields() if caller is not None else None,
            model=model,
            outcome="refused",
            status=status,
            code=code,
            reason=reason,
            latency_ms=round(latency_ms, 3),
            source=source,
        )
