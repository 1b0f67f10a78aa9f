"""Local stand-ins for what cannot exist here: Entra ID and Key Vault.

* :class:`JwksServer` serves a tenant's signing keys over real HTTP, as
  ``login.microsoftonline.com/{tenant}/discovery/v2.0/keys`` does, and
  :class:`TokenFactory` signs tokens with locally generated RSA keys. The
  service's validator fetches the keys with PyJWT's real ``PyJWKClient``.
* :class:`FakeKeyVault` is a local HTTPS server speaking the Key Vault secrets
  REST API (``GET /secrets/{name}``), including the 401 bearer challenge, so
  the real ``azure.keyvault.secrets.SecretClient`` talks to it unchanged; only
  the endpoint is fake.
* :class:`StaticTokenCredential` stands in for the managed identity's token
  endpoint at the SDK's credential boundary (``TokenCredential.get_token``):
  there is no Entra ID here to issue tokens.
"""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import jwt
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

TENANT = "7d3c2f1e-0b9a-4c8d-9e6f-5a4b3c2d1e0f"
AUDIENCE = "api://medai-flow-test"
CLIENT_APP = "11111111-2222-3333-4444-555555555555"
CALLER_OID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"


def _serve(server: ThreadingHTTPServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return thread


class JwksServer:
    """Serves ``/keys`` (a JWKS) on 127.0.0.1 and counts the fetches."""

    def __init__(self, public_keys: dict[str, Any]) -> None:
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                outer.fetches += 1
                keys = [{**jwt.algorithms.RSAAlgorithm.to_jwk(key, as_dict=True), "kid": kid, "use": "sig"}
                        for kid, key in public_keys.items()]  # fmt: skip
                body = json.dumps({"keys": keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/keys"
        _serve(self._server)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class TokenFactory:
    """Signs Entra-shaped access tokens with local RSA keys."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)  # never published
        self.kid = "test-signing-key"
        self.jwks = JwksServer({self.kid: self.key.public_key()})

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {
            "aud": AUDIENCE,
            "iss": f"https://login.microsoftonline.com/{TENANT}/v2.0",
            "tid": TENANT,
            "oid": CALLER_OID,
            "azp": CLIENT_APP,
            "roles": ["Inference.Invoke"],
            "iat": now,
            "nbf": now - 5,
            "exp": now + 600,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, *, key: Any = None, kid: str | None = None, algorithm: str = "RS256", **claims: Any) -> str:
        headers = {"kid": kid or self.kid}
        return jwt.encode(self.claims(**claims), key or self.key, algorithm=algorithm, headers=headers)

    def unsigned(self, **claims: Any) -> str:
        """An ``alg: none`` token: header and payload, empty signature."""
        import base64

        def b64(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

        return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': self.kid})}.{b64(self.claims(**claims))}."


class StaticTokenCredential:
    """A ``TokenCredential`` returning a fixed token.

    Stand-in for the managed identity at the SDK's credential boundary: there is
    no Entra ID token endpoint here. The fake vault only accepts this token.
    """

    TOKEN = "vault-access-token-for-tests"  # noqa: S105 - not a secret; the fake vault's expected value

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.TOKEN, int(time.time()) + 3600)


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as PEM files."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "vault.crt", directory / "vault.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class FakeKeyVault:
    """A local HTTPS endpoint implementing ``GET /secrets/{name}`` of the Key Vault REST API.

    Attributes:
        secrets: Name to value; tests change it to rotate a secret.
        requests: Secret names fetched, in order.
        unavailable: While true, every request is answered 503 (an outage of the vault's
            front end) and counted in ``refused``.
        refused: Requests answered 503 during an outage, retries included.
        url: The vault URI to configure (``https://127.0.0.1:PORT/``).
        ca_file: The certificate clients must trust.
    """

    def __init__(self, directory: Path, secrets: dict[str, str]) -> None:
        self.secrets = dict(secrets)
        self.requests: list[str] = []
        self.unavailable = False
        self.refused = 0
        self.ca_file, key_file = self_signed_certificate(directory)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if outer.unavailable:
                    outer.refused += 1
                    self._reply(503, {"error": {"code": "ServiceUnavailable", "message": "Service unavailable."}})
                    return
                path = urlparse(self.path).path.strip("/").split("/")
                if self.headers.get("Authorization") != f"Bearer {StaticTokenCredential.TOKEN}":
                    self._reply(
                        401,
                        {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer"}},
                        {
                            "WWW-Authenticate": f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                            'resource="https://vault.azure.net"'
                        },
                    )
                    return
                if len(path) >= 2 and path[0] == "secrets":
                    name = path[1]
                    outer.requests.append(name)
                    if name in outer.secrets:
                        version = uuid.uuid4().hex
                        self._reply(
                            200,
                            {
                                "value": outer.secrets[name],
                                "id": f"{outer.url}secrets/{name}/{version}",
                                "attributes": {"enabled": True, "created": 1700000000, "updated": 1700000000},
                            },
                        )
                        return
                    self._reply(404, {"error": {"code": "SecretNotFound", "message": f"A secret with (name/id) {name} was not found in this key vault."}})  # noqa: E501
                    return
                self._reply(404, {"error": {"code": "NotFound", "message": "no such route"}})

            def _reply(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, key_file)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}/"
        _serve(self._server)

    def client_factory(self, credential: StaticTokenCredential) -> Any:
        """Builds the real ``SecretClient`` against this endpoint (trusting its certificate).

        The options the service passes (its bounded retry policy and timeouts) are kept.
        """
        from azure.keyvault.secrets import SecretClient

        def factory(vault_url: str, _: Any, **options: Any) -> Any:
            # verify_challenge_resource: the challenge names vault.azure.net, the endpoint is 127.0.0.1.
            return SecretClient(
                vault_url, credential, verify_challenge_resource=False, connection_verify=str(self.ca_file), **options
            )

        return factory

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
