"""The service's one exception tree.

Every failure the service can report is a :class:`ServiceError` subclass that
carries a stable machine ``code``, the HTTP ``status`` it maps to, and whether a
retry can help (``retryable``). The HTTP edge and the blob path both turn these
into RFC 9457 problem details through :func:`problem_details`, so the mapping
lives in exactly one place.

Messages (``detail``) must never contain patient data: they are written by this
code base, not copied from the input, and they may name DICOM *attributes* but
not their *values* (except technical values such as a transfer syntax UID).
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_TYPE_BASE = "https://medaiflow.example/problems/"
"""Base of the ``type`` URI of every problem document (RFC 9457 §3.1.1)."""


class ServiceError(Exception):
    """Base class of every error the service reports on purpose.

    Attributes:
        code: Stable machine-readable identifier; part of the public contract.
        status: HTTP status code this error maps to.
        title: Short human-readable summary of the problem type.
        retryable: Whether repeating the same request later can succeed.
        detail: Human-readable explanation of this occurrence (no PHI).
        extra: Additional members for the problem document (no PHI).
    """

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal error"
    retryable: ClassVar[bool] = False

    def __init__(self, detail: str | None = None, **extra: Any) -> None:  # noqa: B042 - __reduce__ keeps copies exact
        self.detail = detail or self.title
        self.extra = extra
        super().__init__(self.detail)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self.detail, self.extra, dict(self.__dict__)))

    @property
    def is_client_error(self) -> bool:
        """True when the client, not the service, is at fault (a 4xx)."""
        return 400 <= self.status < 500


# --- client errors (4xx): permanent, the same input fails the same way -----


class ClientError(ServiceError):
    """The request cannot be served as sent."""

    code = "bad_request"
    status = 400
    title = "Bad request"


class EmptyBody(ClientError):
    code = "empty_body"
    status = 400
    title = "The request body is empty"


class InvalidParameter(ClientError):
    code = "invalid_parameter"
    status = 400
    title = "A request parameter is invalid"


class Unauthorized(ClientError):
    code = "unauthorized"
    status = 401
    title = "Authentication is required"


class Forbidden(ClientError):
    code = "forbidden"
    status = 403
    title = "The caller is not allowed to do this"


class ModelNotFound(ClientError):
    code = "model_not_found"
    status = 404
    title = "No such model"


class RouteNotFound(ClientError):
    code = "not_found"
    status = 404
    title = "No such resource"


class MethodNotAllowed(ClientError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class PayloadTooLarge(ClientError):
    code = "payload_too_large"
    status = 413
    title = "The request body is too large"


class ImageTooLarge(ClientError):
    code = "image_too_large"
    status = 413
    title = "The image is too large"


class UnsupportedMediaType(ClientError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class UnsupportedTransferSyntax(ClientError):
    code = "unsupported_transfer_syntax"
    status = 415
    title = "Unsupported DICOM transfer syntax"


class UnprocessableImage(ClientError):
    """The body is of a supported type but cannot be turned into an image."""

    code = "unprocessable_image"
    status = 422
    title = "The image cannot be processed"


class CorruptImage(UnprocessableImage):
    code = "corrupt_image"
    title = "The image is corrupt or truncated"


class CorruptPixelData(UnprocessableImage):
    code = "corrupt_pixel_data"
    title = "The DICOM pixel data is corrupt or inconsistent with its header"


class UnsupportedSopClass(UnprocessableImage):
    code = "unsupported_sop_class"
    title = "The DICOM object is not an image"


class NoPixelData(UnprocessableImage):
    code = "no_pixel_data"
    title = "The DICOM object has no pixel data"


class MultiframeNotSupported(UnprocessableImage):
    code = "multiframe_not_supported"
    title = "Multi-frame images are refused by the configured policy"


class UnsupportedPhotometric(UnprocessableImage):
    code = "unsupported_photometric_interpretation"
    title = "The DICOM photometric interpretation is not supported"


class IncompatibleInput(UnprocessableImage):
    code = "incompatible_input"
    title = "This image cannot be used with this model"


# --- service errors (5xx) -------------------------------------------------


class ServiceUnavailable(ServiceError):
    """The service cannot answer now; a later retry can succeed."""

    code = "service_unavailable"
    status = 503
    title = "The service is temporarily unavailable"
    retryable = True

    def __init__(  # noqa: B042 - ServiceError.__reduce__ keeps copies exact
        self, detail: str | None = None, *, retry_after: int = 1, **extra: Any
    ) -> None:
        super().__init__(detail, **extra)
        self.retry_after = retry_after


class Overloaded(ServiceUnavailable):
    code = "overloaded"
    title = "Too many requests in flight; retry later"


class NotReady(ServiceUnavailable):
    code = "not_ready"
    title = "The service is starting; models are not loaded yet"


class TransientFailure(ServiceUnavailable):
    """A dependency (storage, network) failed in a way a retry can fix."""

    code = "transient_failure"
    title = "A dependency failed transiently"


class ModelLoadError(ServiceError):
    """A configured model cannot be loaded (bad manifest, bad file)."""

    code = "model_load_failed"
    status = 500
    title = "The model could not be loaded"


class ModelIntegrityError(ModelLoadError):
    code = "model_integrity_failed"
    title = "The model file does not match its manifest's sha256"


class ConfigurationError(ServiceError):
    """Settings are missing or invalid; raised at start-up."""

    code = "configuration_error"
    status = 500
    title = "The service is misconfigured"


class MissingSecret(ConfigurationError):
    code = "missing_secret"
    title = "A required secret is missing"


class InternalError(ServiceError):
    """An unexpected failure; its cause is logged, never returned."""


def _rebuild(cls: type[ServiceError], detail: str, extra: dict[str, Any], state: dict[str, Any]) -> ServiceError:
    error = cls.__new__(cls)
    Exception.__init__(error, detail)
    error.__dict__.update(state)
    return error


def problem_details(
    error: ServiceError,
    *,
    request_id: str | None = None,
    instance: str | None = None,
) -> dict[str, Any]:
    """Return the RFC 9457 problem document for ``error``.

    5xx documents carry only the generic title and the correlation id: the
    detail of a server-side failure goes to the log, never to the client.

    Args:
        error: The error to describe.
        request_id: Correlation id of the request or blob invocation.
        instance: URI reference of this occurrence (the request path).

    Returns:
        A JSON-serialisable dict with ``type``, ``title``, ``status``,
        ``detail``, ``code`` and, when given, ``instance`` and ``request_id``.
    """
    server_side = error.status >= 500
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + error.code,
        "title": error.title,
        "status": error.status,
        "code": error.code,
        "detail": error.title if server_side and not isinstance(error, ServiceUnavailable) else error.detail,
        "retryable": error.retryable,
    }
    if instance:
        body["instance"] = instance
    if request_id:
        body["request_id"] = request_id
    if not server_side:
        for key, value in error.extra.items():
            body.setdefault(key, value)
    return body


def all_error_types() -> list[type[ServiceError]]:
    """Every concrete error class, for documentation and tests."""
    seen: list[type[ServiceError]] = []
    stack: list[type[ServiceError]] = list(ServiceError.__subclasses__())
    while stack:
        cls = stack.pop()
        if cls not in seen:
            seen.append(cls)
            stack.extend(cls.__subclasses__())
    return sorted(seen, key=lambda c: (c.status, c.code))


def shown_code_string(value: object, limit: int = 16) -> str:
    """A DICOM Code String value (Modality, Photometric Interpretation) as a detail may echo it.

    Such values are technical, not identifying, and echoing them tells a client what was
    refused; but they come from the file, so the echo is cut to ``limit`` characters (the
    CS maximum) with ``...`` and anything but printable ASCII becomes ``?``: no kilobytes,
    no terminal control sequences in a problem document or a log viewer.
    """
    text = str(value)
    shown = "".join(c if c.isascii() and c.isprintable() else "?" for c in text[:limit])
    return shown + ("..." if len(text) > limit else "")
