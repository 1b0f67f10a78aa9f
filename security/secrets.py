"""Secrets: Key Vault through the managed identity, cached with a TTL.

In Azure, :class:`KeyVaultSecrets` reads secrets with one
``azure.keyvault.secrets.SecretClient`` per process, authenticated by
``DefaultAzureCredential`` (the Function App's or the AKS workload's managed
identity; no secret is needed to read secrets). Values are cached for
``MEDAI_SECRET_CACHE_TTL_S`` seconds, so a rotated API key is picked up without
a restart.

API keys are read on the request path, so a vault outage must cost little: the
client's retry policy is bounded (:data:`SECRET_CLIENT_OPTIONS`), and once a read
fails transiently the vault is left alone for a back-off period (a tenth of the
TTL by default) while every cached value keeps being served. Without it each
expired read paid the SDK's full retries (seconds) on every request.

For local development only (``MEDAI_ENVIRONMENT=local``), ``MEDAI_DEV_SECRETS_JSON``
can hold the secrets instead; the settings refuse it in any other environment.

Errors name the missing secret, never a value.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from inference.errors import ConfigurationError, MissingSecret, TransientFailure
from inference.settings import Settings

log = logging.getLogger(__name__)

# Passed to the SecretClient (azure-core's RetryPolicy and transport options). The SDK's defaults,
# 10 retries with exponential back-off and 300 s socket timeouts, are made for batch jobs; a secret
# read that blocks a request must give up within seconds and fall back to the cached value.
SECRET_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 2,
    "retry_backoff_factor": 0.4,
    "retry_backoff_max": 2,
    "connection_timeout": 3,
    "read_timeout": 5,
    "timeout": 10,  # the retry policy's limit for one read, retries included
}


class SecretSource(Protocol):
    """Where secret values come from."""

    description: str

    def get(self, name: str) -> str:
        """The current value of secret ``name``.

        Raises:
            MissingSecret: The secret does not exist.
            TransientFailure: The store cannot be reached now.
        """
        ...


class KeyVaultSecrets:
    """Key Vault secrets with a TTL cache, one client per process.

    Args:
        vault_uri: ``https://<vault>.vault.azure.net/``.
        ttl_s: How long a value is cached.
        credential: A ``TokenCredential``; ``DefaultAzureCredential`` when omitted.
        client_factory: Builds the ``SecretClient`` from the vault URI, the credential and
            :data:`SECRET_CLIENT_OPTIONS` as keyword arguments (tests pass one whose
            endpoint is a local fake of the Key Vault REST API).
        clock: Monotonic clock (tests).
        backoff_s: After a transient failure, how long the vault is not contacted and
            cached values are served; a tenth of ``ttl_s`` when omitted.
    """

    def __init__(
        self,
        vault_uri: str,
        *,
        ttl_s: float = 300,
        credential: Any = None,
        client_factory: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff_s: float | None = None,
    ) -> None:
        self.description = f"Key Vault {vault_uri}"
        self._vault_uri = vault_uri
        self._ttl_s = ttl_s
        self._backoff_s = ttl_s / 10 if backoff_s is None else backoff_s
        self._credential = credential
        self._client_factory = client_factory
        self._client: Any = None
        self._cache: dict[str, tuple[float, str]] = {}
        self._unreachable_until = float("-inf")  # the vault failed transiently: not contacted before then
        self._lock = threading.Lock()
        self._clock = clock

    def _secret_client(self) -> Any:
        if self._client is None:
            if self._client_factory is not None:
                self._client = self._client_factory(self._vault_uri, self._credential, **SECRET_CLIENT_OPTIONS)
            else:
                from azure.identity import DefaultAzureCredential
                from azure.keyvault.secrets import SecretClient

                credential = self._credential or DefaultAzureCredential(exclude_interactive_browser_credential=True)
                self._client = SecretClient(vault_url=self._vault_uri, credential=credential, **SECRET_CLIENT_OPTIONS)
        return self._client

    def get(self, name: str) -> str:
        """The value of secret ``name``: cached, else read from the vault.

        A cached value is served until the TTL passes and, while the vault is
        unreachable, for as long as it stays so; the vault is then tried again
        once per back-off period, not on every call.

        Raises:
            MissingSecret: The secret does not exist or has no value.
            ConfigurationError: The identity may not read it.
            TransientFailure: The vault cannot be reached and nothing is cached.
        """
        now = self._clock()
        with self._lock:
            cached = self._cache.get(name)
            backing_off = now < self._unreachable_until
            if cached and (now - cached[0] < self._ttl_s or backing_off):
                return cached[1]
        if backing_off:  # nothing cached: fail at once rather than wait on a vault known to be down
            retry_after = max(1, math.ceil(self._unreachable_until - now))
            raise TransientFailure(f"{self.description} cannot be reached.", retry_after=retry_after)
        from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError

        try:
            value = self._secret_client().get_secret(name).value
        except ResourceNotFoundError as err:
            raise MissingSecret(f"Secret {name!r} does not exist in {self.description}.") from err
        except ClientAuthenticationError as err:
            raise ConfigurationError(
                f"The service's identity cannot read secret {name!r} from {self.description} "
                "(grant it the Key Vault Secrets User role)."
            ) from err
        except AzureError as err:
            with self._lock:  # every secret, not only this one: the vault is down, not the secret
                self._unreachable_until = self._clock() + self._backoff_s
            if cached:  # serve the last known value while the vault is unreachable
                log.warning(
                    "key vault unreachable (%s); serving cached secrets, next attempt in %d s",
                    type(err).__name__,
                    int(self._backoff_s),
                    extra={"secret": name},
                )
                return cached[1]
            raise TransientFailure(f"{self.description} cannot be reached.") from err
        if value is None:
            raise MissingSecret(f"Secret {name!r} in {self.description} has no value.")
        with self._lock:
            self._cache[name] = (now, value)
            self._unreachable_until = float("-inf")
        return value


class DevSecrets:
    """Development-only secrets from ``MEDAI_DEV_SECRETS_JSON`` (refused outside ``local``)."""

    description = "MEDAI_DEV_SECRETS_JSON (local development only)"

    def __init__(self, raw_json: str) -> None:
        try:
            values = json.loads(raw_json) if raw_json else {}
        except ValueError as err:
            raise ConfigurationError("MEDAI_DEV_SECRETS_JSON is not a JSON object.") from err
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise ConfigurationError("MEDAI_DEV_SECRETS_JSON must map secret names to strings.")
        self._values: dict[str, str] = values

    def get(self, name: str) -> str:
        if name not in self._values:
            raise MissingSecret(f"Secret {name!r} is not in {self.description}.")
        return self._values[name]


class NoSecrets:
    """No secret store configured: every lookup fails with a message saying what to set."""

    description = "no secret store"

    def get(self, name: str) -> str:
        raise MissingSecret(
            f"Secret {name!r} is needed but no secret store is configured: set MEDAI_KEY_VAULT_URI "
            "(or, for local development only, MEDAI_DEV_SECRETS_JSON with MEDAI_ENVIRONMENT=local)."
        )


def build_secret_source(settings: Settings) -> SecretSource:
    """The secret source the settings call for: Key Vault, the dev fallback, or none."""
    if settings.secrets.key_vault_uri:
        return KeyVaultSecrets(settings.secrets.key_vault_uri, ttl_s=settings.secrets.cache_ttl_s)
    if settings.secrets.dev_secrets_json:
        return DevSecrets(settings.secrets.dev_secrets_json)
    return NoSecrets()
