"""Azure Functions entry point (Python v2 programming model).

* ``http_app``: every HTTP route, served by the one ASGI application
  (:func:`service.http_app.create_app`) through ``func.AsgiFunctionApp``. The
  host's own key check is off (``AuthLevel.ANONYMOUS``) because the application
  authenticates every inference and model route itself (Entra ID or API key),
  identically here and under the local server; health routes stay anonymous
  for probes.
* ``warmup``: the warm-up trigger loads and warms every model before the
  instance receives traffic, where the hosting plan sends warm-up calls.

Settings are read once, here, at import time.
"""

from __future__ import annotations

import logging

import azure.functions as func

from inference.settings import Settings
from service.http_app import create_app
from service.logs import configure_logging

settings = Settings.from_env()
configure_logging(settings, install_handler=False)
asgi_app = create_app(settings)
engine = asgi_app.state.service.engine

app = func.AsgiFunctionApp(app=asgi_app, http_auth_level=func.AuthLevel.ANONYMOUS, function_name="http_app")


@app.function_name(name="warmup")
@app.warm_up_trigger("warmup")
def warmup(warmup) -> None:  # type: ignore[no-untyped-def]  # the binding passes a context of no public type
    """Load and warm every configured model before traffic arrives."""
    engine.registry.start(background=False)
    engine.registry.load_all()
    logging.getLogger("medai.functions").info("warm-up done", extra={"ready": engine.registry.ready})
