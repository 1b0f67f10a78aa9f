"""The application factory uvicorn calls in each local worker process.

It builds the same application as ``function_app.py``, the same way (:func:`service.wiring.build_app`:
the models start loading before FastAPI is imported), inside the start-up policies of
``service/startup.py``.
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
        from .wiring import build_app

        settings = Settings.from_env()
        configure_logging(settings)
        return build_app(settings)
    finally:
        startup.finish()
