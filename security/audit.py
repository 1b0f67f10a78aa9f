"""The audit trail: one structured record per inference and per refused request.

Records go to the ``medai.audit`` logger, separate from operational logs, so a
diagnostic setting or the Functions host can route them to their own Log
Analytics table. Fields (all present in every record, ``null`` when unknown):

=================  ===========================================================
``event``          ``inference`` or ``refused`` (authentication/authorisation)
``time``           UTC, ISO 8601 with milliseconds
``request_id``     correlation id (also the ``X-Request-ID`` response header)
``caller``         ``{kind, id, app_id, tenant_id}``: Entra object id and app id,
                   or the API key id; never a token or key
``model``          ``{name, version, sha256}`` of the model that ran (or was asked)
``input_sha256``   sha256 of the body, when one was read
``input_bytes``    body size
``outcome``        ``success``, ``client_error``, ``server_error`` or ``refused``
``status``         HTTP status
``code``           the problem ``code`` for failures
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


class AuditTrail:
    """Writes audit records to the ``medai.audit`` logger."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger(AUDIT_LOGGER)

    def write(self, **fields: Any) -> dict[str, Any]:
        """Write one record with every documented field; returns it."""
        record = {name: fields.get(name) for name in FIELDS}
        record["time"] = record["time"] or _now()
        self._log.info(json.dumps(record, sort_keys=True))
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

    def refused(self, *, request_id: str, status: int, code: str, latency_ms: float, path_kind: str) -> dict[str, Any]:
        """Record a request refused by authentication or authorisation."""
        return self.write(
            event="refused",
            request_id=request_id,
            caller=None,
            model=None,
            outcome="refused",
            status=status,
            code=code,
            latency_ms=round(latency_ms, 3),
            source=f"http:{path_kind}",
        )
