"""The application factory uvicorn calls in each local worker process."""

from __future__ import annotations

from fastapi import FastAPI

from inference.settings import Settings

from .http_app import create_app
from .logs import configure_logging


def app() -> FastAPI:
    """Read settings, configure logging, and build the same app the Functions host serves."""
    settings = Settings.from_env()
    configure_logging(settings)
    return create_app(settings)
