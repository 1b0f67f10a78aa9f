"""Authentication and authorisation of API callers.

Two credentials are accepted (``MEDAI_AUTH_MODE``), both on by default:

* **Microsoft Entra ID bearer tokens** (``Authorization: Bearer <jwt>``): RS256
  signature checked against the tenant's signing keys (fetched from the JWKS
  endpoint and cached), issuer (v1 or v2 endpoint of the configured tenant),
  audience, expiry and not-before (with a small leeway). Inference needs one of
  the configured app roles (``roles`` claim, application permissions) or
  delegated scopes (``scp`` claim); otherwise 403.
* **API keys** (``X-API-Key: <key>``) for service-to-service callers. Keys live
  only in Key Vault, one secret per key; the secret's name is the key id written
  to the audit trail. Keys are compared in constant time and re-read when the
  secret cache expires, so a rotated key works without a restart.

``MEDAI_AUTH_MODE=none`` switches authentication off; the settings accept it
only with ``MEDAI_ENVIRONMENT=local``, and the service says so at start-up and
in its readiness document.

This module knows no HTTP framework: it takes the request headers and returns a
:class:`Caller` or raises ``Unauthorized`` (401) / ``Forbidden`` (403).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from inference.errors import ConfigurationError, Forbidden, ServiceError, TransientFailure, Unauthorized
from inference.settings import Settings

from .secrets import SecretSource, build_secret_source

log = logging.getLogger("medai.security")


@dataclass(frozen=True)
class Caller:
    """Who made a request; never holds the credential itself.

    Attributes:
        kind: ``entra``, ``api_key`` or ``anonymous`` (authentication disabled).
        id: Entra object id (``oid``) or API key id (the secret's name).
        app_id: Entra client application id (``azp``/``appid``), if any.
        tenant_id: Entra tenant id, if any.
        roles: App roles and scopes granted.
    """

    kind: str
    id: str
    app_id: str | None = None
    tenant_id: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)

    def audit_fields(self) -> dict[str, Any]:
        """The caller as written to the audit trail."""
        return {"kind": self.kind, "id": self.id, "app_id": self.app_id, "tenant_id": self.tenant_id}


ANONYMOUS = Caller(kind="anonymous", id="anonymous (authentication disabled)")


def _missing_role(caller: Caller, **extra: Any) -> Forbidden:
    """The 403 of a valid credential without a required role or scope, knowing whom it refuses.

    The caller rides on the error as an attribute, not as a problem-document member (``extra``),
    so it reaches the audit trail (:func:`refused_caller`) and never the client. A subclass would
    add a second class with the code ``forbidden`` to the one exception tree.
    """
    error = Forbidden("The token grants neither a required app role nor a required scope.", **extra)
    error.caller = caller  # type: ignore[attr-defined]
    return error


def refused_caller(error: ServiceError) -> Caller | None:
    """The authenticated caller a 403 refused; None for a 401 (nobody was authenticated)."""
    caller = getattr(error, "caller", None)
    return caller if isinstance(caller, Caller) else None


class FailedAuthCounter:
    """Counts failed authentications over a sliding window and logs the rate.

    Each failure logs a warning with the number of failures in the window, so a
    brute-force attempt is visible in Log Analytics without a separate metric.
    """

    def __init__(self, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._window_s = window_s
        self._events: deque[float] = deque()
        self._lock = threading.Lock()
        self._clock = clock

    def record(self, code: str, request_id: str | None = None) -> int:
        """Count one failure and log the rate.

        Args:
            code: Why it failed (the refusal's ``reason``, else its problem code).
            request_id: The refused request's id, so the line joins its audit record.

        Returns:
            The failures in the window, this one included.
        """
        now = self._clock()
        with self._lock:
            self._events.append(now)
            while self._events and now - self._events[0] > self._window_s:
                self._events.popleft()
            count = len(self._events)
        log.warning(
            "authentication failed (%s); %d failures in the last %d s",
            code,
            count,
            int(self._window_s),
            extra={
                "event": "auth_failed",
                "code": code,
                "request_id": request_id,
                "failures_in_window": count,
                "window_s": self._window_s,
            },
        )
        return count


class EntraTokenValidator:
    """Validates Entra ID access tokens with PyJWT.

    Args:
        tenant_id: The tenant whose tokens are accepted.
        audiences: Accepted ``aud`` values.
        jwks_uri: Signing keys URL.
        authority_host: For the accepted issuers.
        required_roles: Any one of these in ``roles`` allows the call.
        required_scopes: Any one of these in ``scp`` allows the call.
        leeway_s: Clock skew tolerated on ``exp``/``nbf``.
        jwks_cache_s: How long the signing keys are cached.
    """

    def __init__(
        self,
        *,
        tenant_id: str,
        audiences: tuple[str, ...],
        jwks_uri: str,
        authority_host: str,
        required_roles: tuple[str, ...],
        required_scopes: tuple[str, ...],
        leeway_s: int = 60,
        jwks_cache_s: int = 3600,
    ) -> None:
        import jwt

        self._jwt = jwt
        self.tenant_id = tenant_id
        self.audiences = audiences
        self.issuers = (
            f"{authority_host.rstrip('/')}/{tenant_id}/v2.0",
            f"https://sts.windows.net/{tenant_id}/",
        )
        self.required_roles = set(required_roles)
        self.required_scopes = set(required_scopes)
        self.leeway_s = leeway_s
        self._jwks = jwt.PyJWKClient(jwks_uri, cache_keys=True, lifespan=jwks_cache_s, timeout=10)

    def validate(self, token: str) -> Caller:
        """Return the caller a token stands for.

        Raises:
            Unauthorized: The token is malformed, unsigned, badly signed, expired,
                not yet valid, or for another audience or issuer.
            Forbidden: The token is valid but grants neither a required role nor scope (403);
                :func:`refused_caller` tells whom it refused.
        """
        jwt = self._jwt
        try:
            signing_key = self._jwks.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                signing_key.key,
                algorithms=["RS256"],
                audience=list(self.audiences),
                issuer=list(self.issuers),
                leeway=self.leeway_s,
                options={"require": ["exp", "nbf", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as err:
            raise Unauthorized("The bearer token has expired.", reason="token_expired") from err
        except jwt.ImmatureSignatureError as err:
            raise Unauthorized("The bearer token is not valid yet.", reason="token_not_yet_valid") from err
        except jwt.InvalidAudienceError as err:
            raise Unauthorized("The bearer token is for another audience.", reason="wrong_audience") from err
        except jwt.InvalidIssuerError as err:
            raise Unauthorized("The bearer token is from another issuer.", reason="wrong_issuer") from err
        except jwt.InvalidSignatureError as err:
            raise Unauthorized("The bearer token's signature is invalid.", reason="bad_signature") from err
        except jwt.PyJWKClientConnectionError as err:
            raise TransientFailure("The token signing keys cannot be fetched now.", retry_after=5) from err
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as err:
            raise Unauthorized("The bearer token is not a valid Entra ID token.", reason="invalid_token") from err
        roles = tuple(claims.get("roles") or ())
        scopes = tuple(str(claims.get("scp") or "").split())
        caller = Caller(
            kind="entra",
            id=str(claims.get("oid") or claims.get("sub") or "unknown"),
            app_id=claims.get("azp") or claims.get("appid"),
            tenant_id=claims.get("tid"),
            roles=roles + scopes,
        )
        if not (self.required_roles & set(roles) or self.required_scopes & set(scopes)):
            raise _missing_role(
                caller,
                reason="missing_role",
                required_roles=sorted(self.required_roles),
                required_scopes=sorted(self.required_scopes),
            )
        return caller


class ApiKeyValidator:
    """Checks ``X-API-Key`` against keys held as secrets.

    Args:
        secrets: Where the keys are read (Key Vault in Azure).
        secret_names: One secret per key; the name is the key id.
    """

    def __init__(self, secrets: SecretSource, secret_names: tuple[str, ...]) -> None:
        self._secrets = secrets
        self.secret_names = secret_names

    def check_configured(self) -> None:
        """Read every key once at start-up.

        Raises:
            ConfigurationError: Naming the first missing secret (never a value).
        """
        for name in self.secret_names:
            self._secrets.get(name)

    def validate(self, presented: str) -> Caller:
        """Return the caller for a presented key.

        Raises:
            Unauthorized: No configured key matches.
        """
        presented_digest = hashlib.sha256(presented.encode("utf-8")).digest()
        matched: str | None = None
        for name in self.secret_names:
            try:
                expected = self._secrets.get(name)
            except ConfigurationError:
                continue  # a key slot emptied during rotation is simply not accepted
            # Compare fixed-length digests in constant time; every slot is checked.
            if hmac.compare_digest(presented_digest, hashlib.sha256(expected.encode("utf-8")).digest()):
                matched = name
        if matched is None:
            raise Unauthorized("The API key is not valid.", reason="invalid_api_key")
        return Caller(kind="api_key", id=matched)


class Authenticator:
    """Turns request headers into a :class:`Caller`, per the configured modes."""

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretSource,
        entra: EntraTokenValidator | None,
        api_keys: ApiKeyValidator | None,
    ) -> None:
        self.settings = settings
        self.secrets = secrets
        self.entra = entra
        self.api_keys = api_keys
        self.disabled = settings.auth_disabled
        self.failures = FailedAuthCounter(settings.auth.failed_auth_window_s)

    def authenticate(self, headers: Mapping[str, str], request_id: str | None = None) -> Caller:
        """Authenticate one request from its headers (keys lower-case).

        Args:
            headers: The request headers, keys lower-case.
            request_id: The request's id, written to the ``auth_failed`` line of a refusal.

        Raises:
            Unauthorized: No credential, or an invalid one (401).
            Forbidden: A valid credential without the required role (403).
        """
        if self.disabled:
            return ANONYMOUS
        try:
            return self._authenticate(headers)
        except (Unauthorized, Forbidden) as err:
            self.failures.record(err.extra.get("reason", err.code), request_id)
            raise

    def _authenticate(self, headers: Mapping[str, str]) -> Caller:
        authorization = headers.get("authorization", "")
        api_key = headers.get("x-api-key", "")
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthorized("The Authorization header must be 'Bearer <token>'.", reason="malformed_header")
            if self.entra is None:
                raise Unauthorized("Bearer tokens are not accepted by this deployment.", reason="mode_disabled")
            return self.entra.validate(token.strip())
        if api_key:
            if self.api_keys is None:
                raise Unauthorized("API keys are not accepted by this deployment.", reason="mode_disabled")
            return self.api_keys.validate(api_key)
        raise Unauthorized(
            "Send a bearer token (Authorization) or an API key (X-API-Key).", reason="missing_credentials"
        )

    def check_configured(self) -> None:
        """Fail at start-up, naming what is missing, rather than on the first request."""
        if self.api_keys is not None:
            self.api_keys.check_configured()


def build_authenticator(settings: Settings, *, secrets: SecretSource | None = None) -> Authenticator:
    """The authenticator the settings call for.

    Raises:
        ConfigurationError: Entra mode without tenant or audience.
    """
    secrets = secrets or build_secret_source(settings)
    auth = settings.auth
    modes = set(auth.mode)
    entra = None
    if "entra" in modes:
        if not auth.tenant_id or not auth.audience:
            raise ConfigurationError(
                "MEDAI_AUTH_MODE includes entra: set MEDAI_ENTRA_TENANT_ID and MEDAI_ENTRA_AUDIENCE "
                "(or remove entra from MEDAI_AUTH_MODE)."
            )
        jwks_uri = auth.jwks_uri or f"{auth.authority_host.rstrip('/')}/{auth.tenant_id}/discovery/v2.0/keys"
        entra = EntraTokenValidator(
            tenant_id=auth.tenant_id,
            audiences=auth.audience,
            jwks_uri=jwks_uri,
            authority_host=auth.authority_host,
            required_roles=auth.required_roles,
            required_scopes=auth.required_scopes,
            leeway_s=auth.leeway_s,
            jwks_cache_s=auth.jwks_cache_s,
        )
    api_keys = ApiKeyValidator(secrets, auth.api_key_secret_names) if "api-key" in modes else None
    return Authenticator(settings, secrets=secrets, entra=entra, api_keys=api_keys)


def is_auth_error(error: ServiceError) -> bool:
    """True for 401 and 403 errors."""
    return isinstance(error, (Unauthorized, Forbidden))
