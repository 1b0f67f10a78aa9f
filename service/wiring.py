"""Build the process-wide objects the same way for every edge (HTTP app, blob functions, backfill CLI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from inference.engine import InferenceEngine
from inference.settings import Settings
from security.phi import make_instance_ref
from security.secrets import SecretSource, build_secret_source


def keyed_instance_ref(settings: Settings, secrets: SecretSource) -> Callable[[str], str]:
    """The function that turns a SOP Instance UID into a keyed reference (key from Key Vault).

    Raises:
        ConfigurationError: The PHI hashing key is missing outside local development.
    """
    return make_instance_ref(
        secrets, settings.secrets.phi_hash_key_secret, allow_ephemeral=settings.environment == "local"
    )


def build_engine(settings: Settings, secrets: SecretSource | None = None) -> InferenceEngine:
    """The inference engine with the keyed instance reference (key from Key Vault).

    Args:
        settings: Service settings.
        secrets: The secret source; built from the settings when omitted.

    Raises:
        ConfigurationError: The PHI hashing key is missing outside local development.
    """
    secrets = secrets or build_secret_source(settings)
    return InferenceEngine(settings, instance_ref=keyed_instance_ref(settings, secrets))


def build_app(settings: Settings) -> Any:
    """The HTTP application (:func:`service.http_app.create_app`) with its models already loading.

    The engine is built first and, with eager loading, starts loading the models (onnxruntime
    import, sha256 checks, sessions, warm-up) on a background thread. Loading needs no secret, so
    only then are the credential checker and the PHI hashing key built (in Azure: the Key Vault
    client's imports and a round trip), and FastAPI imported: all of it overlaps with loading, and
    a first request waits for its model only as long as loading still takes after the imports. The
    application, and so any request, exists only once the key is in place. Both entry points build
    their application here: ``function_app.py`` and the local server (:func:`service.local.app`).
    """
    engine = InferenceEngine(settings)
    if settings.models.loading == "eager":
        engine.registry.start(background=True)

    from security.auth import build_authenticator

    authenticator = build_authenticator(settings)
    engine.use_instance_ref(keyed_instance_ref(settings, authenticator.secrets))

    from .http_app import create_app  # FastAPI: imported while the models load

    return create_app(settings, engine=engine, authenticator=authenticator)
