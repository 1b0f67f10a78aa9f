"""Logging: JSON lines, quiet third-party loggers, nothing sensitive.

Under the Azure Functions host the worker owns the root handler and forwards
records to Application Insights (only their message text and logger name); there
we only set levels, and audit records carry their JSON as their message. Elsewhere
(the local server, the backfill CLI, tests) one JSON-lines handler on stderr is
installed, and audit fields are top-level fields of the line.

Third-party loggers that can quote request URLs (which may embed blob names)
or element values are held at WARNING or silenced (pydicom: see
:mod:`inference.dicom`).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from inference.settings import Settings
from security.audit import AUDIT_LOGGER, RecordAsMessage

_QUIET = {
    "azure": logging.WARNING,
    "azure.core.pipeline.policies.http_logging_policy": logging.WARNING,
    "azure.identity": logging.WARNING,
    "urllib3": logging.WARNING,
    "PIL": logging.WARNING,
    "onnxruntime": logging.WARNING,
    "multipart": logging.WARNING,
}
_STANDARD = set(vars(logging.makeLogRecord({})))


def _utc(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the ``extra`` fields kept as top-level fields.

    An audit record's fields are such ``extra`` fields; its own ``time`` (the value
    the audit trail returned to its writer) is the line's time.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": getattr(record, "time", None) or _utc(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry and key != "message":
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings, *, install_handler: bool = True) -> None:
    """Set levels and, unless the host owns logging, install the JSON handler.

    ``MEDAI_LOG_LEVEL`` sets the root level; the audit logger keeps INFO whatever it
    is, because the audit trail is a record of use, not diagnostics. Under the host,
    audit records get their JSON as message text (:class:`security.audit.RecordAsMessage`).

    Args:
        settings: For the root level.
        install_handler: False under the Functions host (its handler stays).
    """
    root = logging.getLogger()
    root.setLevel(settings.log_level)
    # Audit records are written at INFO: with only the root level set, MEDAI_LOG_LEVEL=WARNING
    # would silence the trail. Handlers have no level of their own, so this level decides alone.
    audit = logging.getLogger(AUDIT_LOGGER)
    audit.setLevel(logging.INFO)
    for existing in [f for f in audit.filters if isinstance(f, RecordAsMessage)]:
        audit.removeFilter(existing)
    if not install_handler:  # the worker forwards only the message text: there the text is the record
        audit.addFilter(RecordAsMessage())
    if install_handler and not any(getattr(h, "_medai", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        handler._medai = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    for name, level in _QUIET.items():
        logging.getLogger(name).setLevel(max(level, root.level))
