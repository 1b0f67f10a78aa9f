"""The application factory uvicorn calls in each local worker process.

Cold start: the models start loading (onnxruntime import, sha256 check, session creation,
warm-up) on a background thread *before* FastAPI is imported, so the two overlap; a first
request waits for its model only as long as loading still takes after the imports.
"""

from __future__ import annotations

from typing import Any

from inference.settings import Settings

from . import startup
from .logs import configure_logging


def app() -> Any:
    """Read settings, configure logging, and build the same app the Functions host serves."""
    startup.begin()  # before numpy and FastAPI are imported (service/startup.py)
    try:
        from security.auth import build_authenticator

        from .wiring import build_engine

        settings = Settings.from_env()
        configure_logging(settings)
        authenticator = build_authenticator(settings)
        engine = build_engine(settings, authenticator.secrets)
        if settings.models.loading == "eager":
            engine.registry.start(background=True)

        from .http_app import create_app  # FastAPI: imported while the models load

        return create_app(settings, engine=engine, authenticator=authenticator)
    finally:
        startup.finish()
