"""Build the process-wide objects the same way for every edge (HTTP app, blob functions, backfill CLI)."""

from __future__ import annotations

from inference.engine import InferenceEngine
from inference.settings import Settings
from security.phi import make_instance_ref
from security.secrets import SecretSource, build_secret_source


def build_engine(settings: Settings, secrets: SecretSource | None = None) -> InferenceEngine:
    """The inference engine with the keyed instance reference (key from Key Vault).

    Args:
        settings: Service settings.
        secrets: The secret source; built from the settings when omitted.

    Raises:
        ConfigurationError: The PHI hashing key is missing outside local development.
    """
    secrets = secrets or build_secret_source(settings)
    instance_ref = make_instance_ref(
        secrets, settings.secrets.phi_hash_key_secret, allow_ephemeral=settings.environment == "local"
    )
    return InferenceEngine(settings, instance_ref=instance_ref)
