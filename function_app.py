"""Azure Functions entry point (Python v2 programming model).

* ``http_app``: every HTTP route, served by the one ASGI application
  (:func:`service.http_app.create_app`) through ``func.AsgiFunctionApp``. The
  host's own key check is off (``AuthLevel.ANONYMOUS``) because the application
  authenticates every inference and model route itself (Entra ID or API key),
  identically here and under the local server; health routes stay anonymous
  for probes.
* ``process_blob``: the batch path. A blob trigger on the input container whose
  parameter is an SDK ``BlobClient`` (``azurefunctions-extensions-bindings-blob``):
  the host passes a reference, not the content, so the size is checked before
  anything is downloaded. The trigger source, ``EventGrid`` (Flex Consumption)
  or ``LogsAndContainerScan`` (polling, the container image on AKS), comes from
  ``MEDAI_BLOB_SOURCE``.
* ``blob_poison``: the host's poison queue for blobs that failed every retry;
  the version that failed (the message's ETag) gets its ``retries_exhausted``
  error record, so no input is silently dropped; newer content at that path, or
  an input already recorded and moved, is left alone.
* ``warmup``: the warm-up trigger loads and warms every model before the
  instance receives traffic, where the hosting plan sends warm-up calls.

Settings are read once, here, at import time. A deployment that serves only
HTTP or only the batch path disables the other functions with the host's
``AzureWebJobs.<function>.Disabled`` settings; the image is the same.
"""

from __future__ import annotations

from service import startup

# Before numpy, FastAPI and the storage SDK are imported: the collector pauses while they load and
# OpenBLAS keeps one thread (service/startup.py). The imports are inside the try, so that a failing
# one (a broken deployment, a notebook catching the error) does not leave the collector off. The
# models start loading (build_app) before FastAPI, the Functions library and the storage SDK are
# imported, as under the local server, so loading and importing overlap.
startup.begin()
try:
    import json
    import logging
    import threading

    from inference.settings import Settings
    from service.logs import configure_logging
    from service.wiring import build_app

    settings = Settings.from_env()
    configure_logging(settings, install_handler=False)
    asgi_app = build_app(settings)
    engine = asgi_app.state.service.engine
    log = logging.getLogger("medai.functions")

    import azure.functions as func
    import azurefunctions.extensions.bindings.blob as blob_bindings

    from service.batch import BatchProcessor, handle_poison_message
    from service.storage import BlobStore, blob_service_client

    app = func.AsgiFunctionApp(app=asgi_app, http_auth_level=func.AuthLevel.ANONYMOUS, function_name="http_app")
finally:
    startup.finish()

_batch: BatchProcessor | None = None
_batch_lock = threading.Lock()


def batch_processor() -> BatchProcessor:
    """The process-wide batch processor (one storage client, the shared warm engine)."""
    global _batch
    with _batch_lock:
        if _batch is None:
            client = blob_service_client(settings.blob.storage, environment=settings.environment)
            _batch = BatchProcessor(
                engine,
                BlobStore(client, settings.blob),
                model_name=settings.blob.model or None,
                after_success=settings.blob.after_success,
                audit=asgi_app.state.service.audit,
            )
        return _batch


@app.function_name(name="process_blob")
@app.blob_trigger(
    arg_name="client",
    path=f"{settings.blob.input_container}/{{name}}",
    connection=settings.blob.connection,
    source=func.BlobSource(settings.blob.source),
)
def process_blob(client: blob_bindings.BlobClient, context: func.Context) -> None:
    """Infer one input blob; permanent failures are recorded, transient ones raised for a retry."""
    batch_processor().process(client.blob_name, invocation_id=context.invocation_id)


@app.function_name(name="blob_poison")
@app.queue_trigger(arg_name="message", queue_name=settings.blob.poison_queue, connection=settings.blob.connection)
def blob_poison(message: func.QueueMessage) -> None:
    """Write the error record of a blob the host stopped retrying."""
    try:
        body = message.get_json()
    except ValueError:
        log.error("poison message is not JSON; left for inspection in the poison queue's own poison queue")
        raise
    if body.get("ContainerName") != settings.blob.input_container:
        log.info("poison message of another container ignored", extra={"function": body.get("FunctionId")})
        return
    handle_poison_message(batch_processor(), body)


@app.function_name(name="warmup")
@app.warm_up_trigger("warmup")
def warmup(warmup) -> None:  # type: ignore[no-untyped-def]  # the binding passes a context of no public type
    """Load and warm every configured model before traffic arrives."""
    engine.registry.start(background=False)
    engine.registry.load_all()
    log.info("warm-up done", extra={"ready": engine.registry.ready, "models": json.dumps(engine.registry.names())})
