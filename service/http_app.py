"""The one HTTP application: every route of the API lives here.

``function_app.py`` exposes this ASGI app through ``func.AsgiFunctionApp`` under
the Azure Functions host, and ``python -m service`` serves the very same object
with uvicorn at the same URLs (``http://127.0.0.1:7071/api/...``). Handlers
only translate HTTP into :class:`inference.engine.InferenceEngine` calls and
results or errors back into HTTP; errors become ``application/problem+json``
in exactly one place, :func:`problem_response`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference import __version__
from inference.engine import InferenceEngine, PredictOptions, new_request_id
from inference.errors import (
    InternalError,
    InvalidParameter,
    MethodNotAllowed,
    PayloadTooLarge,
    RouteNotFound,
    ServiceError,
    ServiceUnavailable,
    problem_details,
)
from inference.settings import Settings
from inference.version import version_info
from security.audit import AuditTrail
from security.auth import Authenticator, Caller, build_authenticator, refused_caller

from . import schemas
from .runner import InferenceRunner
from .wiring import build_engine

log = logging.getLogger("medai.http")

API_PREFIX = "/api/v1"
PROBLEM_JSON = "application/problem+json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": schemas.Problem, "content": {PROBLEM_JSON: {}}, "description": text}
    for status, text in (
        (400, "Empty body or invalid parameter"),
        (401, "Missing or invalid credentials"),
        (403, "Credentials lack the required role or scope"),
        (404, "Unknown model"),
        (413, "Body or image too large"),
        (415, "Unsupported media type or transfer syntax"),
        (422, "Corrupt image, not an image, or incompatible with the model"),
        (503, "Overloaded or not ready; see Retry-After"),
    )
}


class ServiceState:
    """What one worker process holds: settings, engine, runner, authenticator, audit."""

    def __init__(
        self,
        settings: Settings,
        engine: InferenceEngine | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator or build_authenticator(settings)
        self.authenticator.check_configured()
        self.engine = engine or build_engine(settings, self.authenticator.secrets)
        self.runner = InferenceRunner(self.engine)
        self.audit = AuditTrail()

    def start(self) -> None:
        """Begin eager model loading (idempotent); lazy loading does nothing here."""
        if self.settings.models.loading == "eager":
            self.engine.registry.start(background=True)

    async def authenticate(self, request: Request) -> Caller:
        """FastAPI dependency: authenticate the request or refuse it (401/403, audited)."""
        started = time.perf_counter()
        headers = {key.lower(): value for key, value in request.headers.items()}
        request_id: str = request.state.request_id
        try:
            if self.authenticator.disabled:  # local development: nothing to check, no thread hop
                caller = self.authenticator.authenticate(headers)
            else:  # may fetch signing keys or secrets: off the event loop
                caller = await self.runner.call(self.authenticator.authenticate, headers, request_id)
        except ServiceError as err:
            if err.status in (401, 403):
                name = request.path_params.get("name")  # routing ran first: the model the path asks for
                self.audit.refused(
                    request_id=request_id,
                    status=err.status,
                    code=err.code,
                    reason=err.extra.get("reason"),
                    caller=refused_caller(err),
                    model=self.model_fields(str(name)) if name is not None else None,
                    latency_ms=(time.perf_counter() - started) * 1000,
                )
            raise
        request.state.caller = caller
        return caller

    def model_fields(self, name: str) -> dict[str, Any]:
        """Name, version and sha256 of a model for the audit trail (just the name if unknown)."""
        try:
            manifest = self.engine.registry.manifest(name)
        except ServiceError:
            return {"name": name, "version": None, "sha256": None}
        return {"name": manifest.name, "version": manifest.version, "sha256": manifest.sha256}


# Declared for the OpenAPI document (its "Authorize" button); the headers are checked by security.auth.
_BEARER = HTTPBearer(auto_error=False, description="Microsoft Entra ID access token for the API")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key (a Key Vault secret)")


async def current_caller(
    request: Request,
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    _key: Annotated[str | None, Depends(_API_KEY)],
) -> Caller:
    """FastAPI dependency: the authenticated caller of this request (401/403 otherwise)."""
    state: ServiceState = request.app.state.service
    return await state.authenticate(request)


CallerDep = Annotated[Caller, Depends(current_caller)]


def create_app(
    settings: Settings | None = None,
    *,
    engine: InferenceEngine | None = None,
    authenticator: Authenticator | None = None,
) -> FastAPI:
    """Build the ASGI application.

    Args:
        settings: Settings; read from the environment when omitted.
        engine: An engine to share (tests, the blob path); built when omitted.
        authenticator: The credential checker; built from settings when omitted.
    """
    settings = settings or Settings.from_env()
    state = ServiceState(settings, engine, authenticator)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        state.start()
        if settings.auth_disabled:
            log.warning(
                "AUTHENTICATION IS DISABLED (MEDAI_AUTH_MODE=none, MEDAI_ENVIRONMENT=local). "
                "Every route is open. Never run this configuration with patient data."
            )
        yield
        state.runner.shutdown()

    app = FastAPI(
        title="MedAI Flow inference API",
        version=__version__,
        description=(
            "Inference on DICOM, PNG and JPEG images with ONNX models. Errors are RFC 9457 "
            "`application/problem+json` documents with a stable `code`."
        ),
        openapi_url=f"{API_PREFIX}/openapi.json",
        docs_url=f"{API_PREFIX}/docs",
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        lifespan=lifespan,
    )
    app.state.service = state
    _install_error_handlers(app)
    _install_request_id(app)
    app.include_router(_router(state))
    # The Functions host calls the lifespan on its first request; start loading now as well,
    # so a worker that imported the app begins warming before any request arrives.
    state.start()
    return app


def _router(state: ServiceState) -> APIRouter:
    router = APIRouter(prefix=API_PREFIX)
    settings = state.settings

    @router.get("/health/live", tags=["health"], response_model=schemas.Liveness)
    async def live() -> dict[str, Any]:
        """Liveness: the process answers. Anonymous."""
        return {"status": "alive"}

    @router.get(
        "/health/ready",
        tags=["health"],
        response_model=schemas.Readiness,
        responses={503: {"model": schemas.Readiness, "description": "Models not loaded or not warm yet"}},
    )
    async def ready() -> JSONResponse:
        """Readiness: every configured model is loaded and a warm-up inference has run. Anonymous."""
        registry = state.engine.registry
        is_ready = registry.ready
        body = {
            "status": "ready" if is_ready else "not_ready",
            "models": registry.status(),
            "authentication": "DISABLED (local development only)" if settings.auth_disabled else "enabled",
        }
        return JSONResponse(body, status_code=200 if is_ready else 503)

    @router.get("/version", tags=["service"], response_model=schemas.VersionInfo)
    async def version(_: CallerDep) -> dict[str, Any]:
        """Package version, git commit, runtime libraries and model versions."""
        return version_info(settings, state.engine.registry.status())

    @router.get("/models", tags=["models"], response_model=schemas.ModelList, responses=_ERROR_RESPONSES)
    async def list_models(_: CallerDep) -> dict[str, Any]:
        """The served models."""
        registry = state.engine.registry
        status = registry.status()
        models = []
        for name in registry.names():
            m = registry.manifest(name)
            models.append(
                {
                    "name": name,
                    "version": m.version,
                    "sha256": m.sha256,
                    "task": m.task,
                    "description": m.description,
                    "loaded": status[name]["loaded"],
                    "warm": status[name]["warm"],
                }
            )
        return {"models": models}

    @router.get(
        "/models/{name}", tags=["models"], response_model=schemas.ModelDescription, responses=_ERROR_RESPONSES
    )
    async def describe_model(name: str, _: CallerDep) -> dict[str, Any]:
        """Inputs, outputs, labels, preprocessing, version and sha256 of one model."""
        model = await state.runner.call(state.engine.registry.get, name)
        return model.describe()

    @router.post(
        "/models/{name}/infer",
        tags=["inference"],
        response_model=schemas.InferenceResult,
        responses=_ERROR_RESPONSES,
        openapi_extra={
            "requestBody": {
                "required": True,
                "description": "The image file itself. The format is detected from the bytes; "
                "Content-Type is only a hint.",
                "content": {
                    media: {"schema": {"type": "string", "format": "binary"}}
                    for media in ("application/dicom", "image/png", "image/jpeg", "application/octet-stream")
                },
            }
        },
    )
    async def infer(
        name: str,
        request: Request,
        caller: CallerDep,
        top_k: Annotated[
            int | None, Query(ge=1, le=1000, description="Classification: number of classes returned.")
        ] = None,
        include_mask: Annotated[
            bool, Query(description="Segmentation: include the label map as a base64 PNG.")
        ] = False,
    ) -> JSONResponse:
        """Run the named model on the image in the body."""
        started = time.perf_counter()
        request_id: str = request.state.request_id
        body: bytes | None = None  # stays None when the body is refused unread: input_bytes is then unknown
        input_sha256: str | None = None
        status, code = 500, InternalError.code
        try:
            body = await read_body(request, settings.limits.max_body_bytes)
            input_sha256, response = await state.runner.predict(
                name,
                body,
                media_type_hint=request.headers.get("content-type"),
                options=PredictOptions(top_k=top_k, include_mask=include_mask),
                request_id=request_id,
                render=_render_result,  # JSON encoded on the worker thread, not on the event loop
            )
            status, code = 200, None
            return response
        except ServiceError as err:
            status, code = err.status, err.code
            raise
        finally:
            state.audit.inference(
                request_id=request_id,
                caller=caller,
                model=state.model_fields(name),
                status=status,
                code=code,
                body=body,
                input_sha256=input_sha256,
                latency_ms=(time.perf_counter() - started) * 1000,
            )

    return router


def _render_result(document: dict[str, Any]) -> tuple[str, JSONResponse]:
    return document["input"]["sha256"], JSONResponse(document)


async def read_body(request: Request, limit: int) -> bytes:
    """Read the body, refusing it as soon as it passes ``limit`` bytes.

    A declared Content-Length above the limit is refused before anything is read.

    Raises:
        PayloadTooLarge: The body is (or declares to be) larger than ``limit``.
    """
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_size = int(declared)
        except ValueError as err:
            raise InvalidParameter("Content-Length is not an integer.") from err
        if declared_size > limit:
            raise _too_large(declared_size, limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(size, limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The body is larger than the limit of {limit} bytes (at least {size} bytes). "
        "Upload large studies to the batch input container instead.",
        limit=limit,
    )


def problem_response(error: ServiceError, request: Request) -> JSONResponse:
    """The single mapping of a :class:`ServiceError` to an HTTP response."""
    request_id = getattr(request.state, "request_id", None)
    body = problem_details(error, request_id=request_id, instance=request.url.path)
    headers = {}
    if isinstance(error, ServiceUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="medai-flow", ApiKey header="X-API-Key"'
    return JSONResponse(body, status_code=error.status, media_type=PROBLEM_JSON, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status >= 500 and not isinstance(exc, ServiceUnavailable):
            log.error(
                "request failed: %s",
                exc.code,
                extra={"request_id": getattr(request.state, "request_id", None), "code": exc.code},
            )
        return problem_response(exc, request)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [".".join(str(p) for p in e.get("loc", ())) for e in exc.errors()]
        error = InvalidParameter(f"Invalid parameter(s): {', '.join(fields)}.", fields=fields)
        if request.method == "POST" and request.url.path.endswith("/infer"):  # an inference attempt: audited
            state: ServiceState = request.app.state.service
            state.audit.inference(
                request_id=request.state.request_id,
                caller=getattr(request.state, "caller", None),
                model=state.model_fields(str(request.path_params.get("name", ""))),
                status=error.status,
                code=error.code,
                body=None,
                latency_ms=0.0,
            )
        return problem_response(error, request)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 405:
            return problem_response(MethodNotAllowed(f"{request.method} is not allowed on this route."), request)
        if exc.status_code == 404:
            return problem_response(RouteNotFound(f"No route {request.url.path}; see {API_PREFIX}/docs."), request)
        error = ServiceError("HTTP error")
        error.status = exc.status_code  # type: ignore[misc]
        return problem_response(error, request)


def _install_request_id(app: FastAPI) -> None:
    app.add_middleware(RequestIdMiddleware)


class RequestIdMiddleware:
    """Give every request an id, add the standard response headers, and turn anything unexpected into a 500.

    A plain ASGI middleware rather than ``@app.middleware("http")``: Starlette's
    ``BaseHTTPMiddleware`` runs each request through an extra task and memory streams,
    which costs about half a millisecond of event-loop time per request.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else new_request_id()
        scope.setdefault("state", {})["request_id"] = request_id
        response_started = False

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                headers = MutableHeaders(scope=message)
                headers["X-Request-ID"] = request_id
                headers.setdefault("Cache-Control", "no-store")
                headers.setdefault("X-Content-Type-Options", "nosniff")
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:  # the last line of defence: a 500 with a correlation id, nothing else
            # The exception's message may quote input; only its type and traceback frames are logged.
            log.error(
                "unexpected %s while handling a request",
                type(exc).__name__,
                extra={"request_id": request_id},
                exc_info=(type(exc), None, exc.__traceback__),  # type: ignore[arg-type]
            )
            if response_started:  # too late for a problem document: the client sees a cut response
                return
            response = problem_response(InternalError(), Request(scope))
            await response(scope, receive, send_with_headers)
