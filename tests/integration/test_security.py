"""Authentication, authorisation, Key Vault secrets and the audit trail, in the production configuration.

The application runs with ``MEDAI_ENVIRONMENT=production``: Entra ID tokens
(validated against signing keys fetched over HTTP from a local JWKS endpoint)
and API keys read from Key Vault (the real ``SecretClient`` against a local
HTTPS fake of the Key Vault REST API). See ``tests/security_fakes.py``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets

import httpx
import pytest
from fastapi.testclient import TestClient

from inference.errors import ConfigurationError, MissingSecret, TransientFailure
from security.audit import AUDIT_LOGGER, FIELDS
from security.auth import ApiKeyValidator, build_authenticator
from security.secrets import SECRET_CLIENT_OPTIONS, KeyVaultSecrets
from service.http_app import create_app
from service.logs import _QUIET, JsonFormatter, configure_logging
from tests.conftest import DEFAULT_MODELS, LOCAL_ENV, ROOT, TEST_MODELS, ServedApp, make_settings, read_input
from tests.security_fakes import (
    AUDIENCE,
    CALLER_OID,
    CLIENT_APP,
    TENANT,
    FakeKeyVault,
    StaticTokenCredential,
    TokenFactory,
)

pytestmark = pytest.mark.integration

INFER = "/api/v1/models/ct-tissue-seg/infer"


@pytest.fixture(scope="module")
def tokens():
    factory = TokenFactory()
    yield factory
    factory.jwks.close()


@pytest.fixture(scope="module")
def keys():
    # Generated per run: no key exists in the repository.
    return {"primary": secrets.token_urlsafe(32), "secondary": secrets.token_urlsafe(32)}


@pytest.fixture(scope="module")
def vault(tmp_path_factory, keys):
    fake = FakeKeyVault(
        tmp_path_factory.mktemp("vault"),
        {"api-key-primary": keys["primary"], "api-key-secondary": keys["secondary"], "phi-hash-key": "k" * 32},
    )
    yield fake
    fake.close()


def production_settings(tokens, vault, **extra):
    return make_settings(
        MEDAI_ENVIRONMENT="production",
        MEDAI_AUTH_MODE="entra,api-key",
        MEDAI_ENTRA_TENANT_ID=TENANT,
        MEDAI_ENTRA_AUDIENCE=AUDIENCE,
        MEDAI_ENTRA_JWKS_URI=tokens.jwks.url,
        MEDAI_KEY_VAULT_URI=vault.url,
        MEDAI_MODELS_DIR=str(DEFAULT_MODELS),
        **extra,
    )


def vault_secrets(vault, **kw) -> KeyVaultSecrets:
    credential = StaticTokenCredential()
    return KeyVaultSecrets(vault.url, credential=credential, client_factory=vault.client_factory(credential), **kw)


@pytest.fixture(scope="module")
def client(tokens, vault):
    settings = production_settings(tokens, vault)
    authenticator = build_authenticator(settings, secrets=vault_secrets(vault))
    app = create_app(settings, authenticator=authenticator)
    with TestClient(app) as http:
        app.state.service.engine.registry.wait_loaded(30)
        yield http


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def post_ct(client, headers):
    return client.post(INFER, content=read_input("real_CT_small.dcm"), headers=headers)


# --- Entra ID bearer tokens --------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-001", "REQ-SEC-002")
def test_valid_token_is_accepted(client, tokens):
    response = post_ct(client, bearer(tokens.token()))
    assert response.status_code == 200, response.text


@pytest.mark.requirement("REQ-SEC-002")
def test_delegated_scope_instead_of_an_app_role(client, tokens):
    response = post_ct(client, bearer(tokens.token(roles=None, scp="openid Inference.Invoke")))
    assert response.status_code == 200


@pytest.mark.requirement("REQ-SEC-002")
def test_v1_issuer_of_the_same_tenant(client, tokens):
    response = post_ct(client, bearer(tokens.token(iss=f"https://sts.windows.net/{TENANT}/")))
    assert response.status_code == 200


@pytest.mark.parametrize(
    "case, make, status, reason",
    [
        ("expired", lambda t: t.token(exp=1_000_000_000, nbf=999_999_000, iat=999_999_000), 401, "token_expired"),
        ("not yet valid", lambda t: t.token(nbf=4_000_000_000), 401, "token_not_yet_valid"),
        ("wrong audience", lambda t: t.token(aud="api://someone-else"), 401, "wrong_audience"),
        (
            "wrong issuer",
            lambda t: t.token(iss="https://login.microsoftonline.com/00000000-0000-0000-0000-000000000000/v2.0"),
            401,
            "wrong_issuer",
        ),
        ("wrong signature", lambda t: t.token(key=t.other_key), 401, "bad_signature"),
        ("unknown key id", lambda t: t.token(key=t.other_key, kid="rogue"), 401, "invalid_token"),
        ("alg none", lambda t: t.unsigned(), 401, "invalid_token"),
        ("missing role", lambda t: t.token(roles=["Reader"]), 403, "missing_role"),
        ("no roles or scopes", lambda t: t.token(roles=None), 403, "missing_role"),
        ("missing exp", lambda t: t.token(exp=None), 401, "invalid_token"),
        ("garbage", lambda t: "not.a.jwt", 401, "invalid_token"),
    ],
)
@pytest.mark.requirement("REQ-SEC-002")
def test_bad_tokens_are_refused_with_the_right_status(client, tokens, case, make, status, reason):
    response = post_ct(client, bearer(make(tokens)))
    assert response.status_code == status, case
    problem = response.json()
    assert problem["code"] == ("forbidden" if status == 403 else "unauthorized")
    assert response.headers["content-type"] == "application/problem+json"
    assert problem["reason"] == reason
    if status == 401:
        assert "Bearer" in response.headers["www-authenticate"]


@pytest.mark.requirement("REQ-SEC-002")
def test_hmac_token_keyed_with_the_public_key_is_refused(client, tokens):
    # Algorithm confusion: an HS256 token whose secret is the published public key.
    from cryptography.hazmat.primitives import serialization

    import base64
    import hashlib
    import hmac as hmac_module

    public_pem = tokens.key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    # Built by hand: PyJWT itself refuses to use a PEM public key as an HMAC secret.
    signing_input = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': tokens.kid}).encode())}." + b64(
        json.dumps(tokens.claims()).encode()
    )
    signature = hmac_module.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    forged = f"{signing_input}.{b64(signature)}"
    assert post_ct(client, bearer(forged)).status_code == 401


@pytest.mark.requirement("REQ-SEC-002")
def test_malformed_authorization_header(client):
    response = post_ct(client, {"Authorization": "Basic dXNlcjpwYXNz"})
    assert (response.status_code, response.json()["reason"]) == (401, "malformed_header")


# --- API keys -----------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-003")
def test_primary_and_secondary_api_keys(client, keys):
    assert post_ct(client, {"X-API-Key": keys["primary"]}).status_code == 200
    assert post_ct(client, {"X-API-Key": keys["secondary"]}).status_code == 200


@pytest.mark.requirement("REQ-SEC-003")
def test_wrong_api_key(client, keys):
    response = post_ct(client, {"X-API-Key": keys["primary"][:-1] + "x"})
    assert (response.status_code, response.json()["reason"]) == (401, "invalid_api_key")


@pytest.mark.requirement("REQ-SEC-001")
def test_no_credentials(client):
    response = post_ct(client, {})
    assert (response.status_code, response.json()["reason"]) == (401, "missing_credentials")
    assert "ApiKey" in response.headers["www-authenticate"]


@pytest.mark.requirement("REQ-SEC-001")
@pytest.mark.parametrize("path", ["/api/v1/models", "/api/v1/models/ct-tissue-seg", "/api/v1/version"])
def test_model_and_version_routes_need_credentials(client, keys, path):
    assert client.get(path).status_code == 401
    assert client.get(path, headers={"X-API-Key": keys["primary"]}).status_code == 200


@pytest.mark.requirement("REQ-SEC-001", "REQ-FUNC-015")
@pytest.mark.parametrize("path", ["/api/v1/health/live", "/api/v1/health/ready", "/api/v1/openapi.json"])
def test_probes_and_the_api_description_are_anonymous(client, path):
    response = client.get(path)
    assert response.status_code == 200
    if path.endswith("ready"):
        assert response.json()["authentication"] == "enabled"


@pytest.mark.requirement("REQ-SEC-003", "REQ-SEC-004")
def test_api_key_rotation_without_restart(tokens, vault, keys):
    clock = [1000.0]
    store = vault_secrets(vault, ttl_s=300, clock=lambda: clock[0])
    authenticator = build_authenticator(production_settings(tokens, vault), secrets=store)
    old, new = keys["primary"], secrets.token_urlsafe(32)
    assert authenticator.authenticate({"x-api-key": old}).id == "api-key-primary"
    fetched = len(vault.requests)
    assert authenticator.authenticate({"x-api-key": old}).id == "api-key-primary"
    assert len(vault.requests) == fetched  # served from the cache, no vault round trip
    vault.secrets["api-key-primary"] = new
    try:
        clock[0] += 301  # the cache TTL passes; the process keeps running
        assert authenticator.authenticate({"x-api-key": new}).id == "api-key-primary"
        from inference.errors import Unauthorized

        with pytest.raises(Unauthorized):
            authenticator.authenticate({"x-api-key": old})
    finally:
        vault.secrets["api-key-primary"] = old


# --- Key Vault ----------------------------------------------------------------------------------


@pytest.mark.requirement("REQ-SEC-004")
def test_secret_client_answers_the_bearer_challenge(vault):
    credential = StaticTokenCredential()
    store = KeyVaultSecrets(vault.url, credential=credential, client_factory=vault.client_factory(credential))
    assert store.get("phi-hash-key") == "k" * 32
    assert ("https://vault.azure.net/.default",) in credential.scopes


@pytest.mark.requirement("REQ-SEC-004")
def test_missing_secret_names_the_secret_never_a_value(vault, keys):
    store = vault_secrets(vault)
    with pytest.raises(MissingSecret) as info:
        store.get("api-key-tertiary")
    assert "api-key-tertiary" in info.value.detail
    assert keys["primary"] not in str(info.value) and keys["secondary"] not in str(info.value)


@pytest.mark.requirement("REQ-SEC-004", "REQ-FUNC-026")
def test_start_up_fails_clearly_when_a_configured_key_is_missing(tokens, vault):
    settings = production_settings(tokens, vault, MEDAI_API_KEY_SECRETS="api-key-primary,api-key-rotated-in")
    with pytest.raises(MissingSecret) as info:
        create_app(settings, authenticator=build_authenticator(settings, secrets=vault_secrets(vault)))
    assert "'api-key-rotated-in'" in info.value.detail


@pytest.mark.requirement("REQ-SEC-001", "REQ-FUNC-026")
def test_entra_mode_without_tenant_fails_at_start_up(vault):
    settings = make_settings(MEDAI_ENVIRONMENT="production", MEDAI_AUTH_MODE="entra", MEDAI_KEY_VAULT_URI=vault.url)
    with pytest.raises(ConfigurationError) as info:
        build_authenticator(settings)
    assert "MEDAI_ENTRA_TENANT_ID" in info.value.detail


@pytest.mark.requirement("REQ-SEC-004")
def test_unreachable_vault_serves_the_cached_value_then_fails_transiently(tmp_path):
    outage = FakeKeyVault(tmp_path, {"api-key-primary": "cached-value"})
    clock = [0.0]
    store = vault_secrets(outage, ttl_s=10, clock=lambda: clock[0])
    assert store.get("api-key-primary") == "cached-value"
    outage.close()
    clock[0] = 60  # expired, and the vault is gone
    assert store.get("api-key-primary") == "cached-value"
    with pytest.raises(TransientFailure):
        store.get("never-read-before")


@pytest.mark.requirement("REQ-SEC-004", "REQ-SEC-003")
def test_a_vault_outage_after_the_ttl_costs_one_bounded_attempt_per_backoff_period(tmp_path):
    vault = FakeKeyVault(tmp_path, {"api-key-primary": "primary-value", "api-key-secondary": "secondary-value"})
    try:
        clock = [0.0]
        store = vault_secrets(vault, ttl_s=300, clock=lambda: clock[0])  # back-off: a tenth of the TTL, 30 s
        validator = ApiKeyValidator(store, ("api-key-primary", "api-key-secondary"))
        assert validator.validate("primary-value").id == "api-key-primary"  # both slots read and cached
        vault.unavailable = True
        clock[0] = 301  # both cached values expired, and the vault answers 503 to everything
        assert validator.validate("secondary-value").id == "api-key-secondary"  # served from the cache
        # One read, with the SDK's retries bounded (1 + retry_total attempts), and for the first slot only:
        # the second slot was served from the cache without asking a vault known to be down.
        attempts = 1 + SECRET_CLIENT_OPTIONS["retry_total"]
        assert vault.refused == attempts
        for _ in range(5):  # later requests within the back-off do not reach the vault at all
            clock[0] += 5
            assert validator.validate("primary-value").id == "api-key-primary"
        with pytest.raises(TransientFailure):
            store.get("never-read-before")  # nothing cached: refused at once, not after the retries
        assert vault.refused == attempts
        clock[0] += 30  # the back-off is over: one more bounded attempt, then back-off again
        assert validator.validate("primary-value").id == "api-key-primary"
        assert vault.refused == 2 * attempts
        vault.unavailable = False
        vault.secrets["api-key-primary"] = "rotated-value"
        clock[0] += 31  # the vault is back: the next read after the back-off fetches the current values
        assert validator.validate("rotated-value").id == "api-key-primary"
        assert vault.refused == 2 * attempts
    finally:
        vault.close()


# --- audit trail and failed-authentication rate ------------------------------------------------


def audit_records(caplog) -> list[dict]:
    """The audit records as their JSON log lines carry them (``service.logs.JsonFormatter``)."""
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == AUDIT_LOGGER]


LINE_FIELDS = {"level", "logger", "message"}  # what the JSON line adds to an audit record's own fields


@pytest.mark.requirement("REQ-SEC-007", "REQ-SEC-009")
def test_a_body_refused_unread_has_no_input_size_in_its_audit_record(tokens, vault, keys, caplog):
    caplog.set_level(logging.INFO)
    settings = production_settings(tokens, vault, MEDAI_MAX_BODY_BYTES="1024")
    app = create_app(settings, authenticator=build_authenticator(settings, secrets=vault_secrets(vault)))
    body = read_input("real_CT_small.dcm")  # 39206 bytes, declared in Content-Length
    key = {"X-API-Key": keys["primary"]}
    with TestClient(app) as http:
        declared = http.post(INFER, content=body, headers={**key, "X-Request-ID": "big-1"})
        chunks = iter([body[:1000], body[1000:2000]])  # no Content-Length: refused once 1024 bytes streamed in
        streamed = http.post(INFER, content=chunks, headers={**key, "X-Request-ID": "big-2"})
        empty = http.post(INFER, content=b"", headers={**key, "X-Request-ID": "empty-1"})
    assert [r.status_code for r in (declared, streamed, empty)] == [413, 413, 400]
    records = {r["request_id"]: r for r in audit_records(caplog)}
    for request_id in ("big-1", "big-2"):  # never read in full: the size is unknown, not 0
        assert (records[request_id]["code"], records[request_id]["input_bytes"]) == ("payload_too_large", None)
        assert records[request_id]["input_sha256"] is None
    assert (records["empty-1"]["code"], records["empty-1"]["input_bytes"]) == ("empty_body", 0)  # read: 0 bytes


@pytest.mark.requirement("REQ-SEC-007", "REQ-SEC-006")
def test_audit_record_of_an_inference_names_the_caller_never_the_token(client, tokens, caplog):
    caplog.set_level(logging.DEBUG)
    token = tokens.token()
    response = post_ct(client, {**bearer(token), "X-Request-ID": "audit-1"})
    [record] = [r for r in audit_records(caplog) if r["request_id"] == "audit-1"]
    assert set(record) == set(FIELDS) | LINE_FIELDS  # the fields are top-level, not a string in `message`
    assert record["event"] == "inference" and record["outcome"] == "success" and record["status"] == 200
    assert record["caller"] == {"kind": "entra", "id": CALLER_OID, "app_id": CLIENT_APP, "tenant_id": TENANT}
    assert record["model"] == {
        "name": "ct-tissue-seg",
        "version": "1.0.0",
        "sha256": response.json()["model"]["sha256"],
    }
    assert record["input_sha256"] == response.json()["input"]["sha256"]
    assert record["latency_ms"] > 0 and record["time"].endswith("Z") and record["source"] == "http"
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


@pytest.mark.requirement("REQ-SEC-007")
def test_audit_record_of_a_failed_inference_with_an_api_key(client, keys, caplog):
    caplog.set_level(logging.INFO)
    headers = {"X-API-Key": keys["secondary"], "X-Request-ID": "audit-2"}
    client.post(INFER, content=read_input("png_truncated.png"), headers=headers)
    [record] = [r for r in audit_records(caplog) if r["request_id"] == "audit-2"]
    assert record["caller"]["kind"] == "api_key" and record["caller"]["id"] == "api-key-secondary"
    assert (record["status"], record["code"], record["outcome"]) == (422, "corrupt_image", "client_error")
    assert keys["secondary"] not in caplog.text


@pytest.mark.requirement("REQ-SEC-007")
def test_an_inference_refused_for_a_bad_parameter_is_audited(client, keys, caplog):
    caplog.set_level(logging.INFO)
    headers = {"X-API-Key": keys["primary"], "X-Request-ID": "audit-400"}
    response = client.post(INFER, params={"top_k": "abc"}, content=read_input("real_CT_small.dcm"), headers=headers)
    assert (response.status_code, response.json()["code"]) == (400, "invalid_parameter")
    [record] = [r for r in audit_records(caplog) if r["request_id"] == "audit-400"]
    assert (record["status"], record["code"], record["outcome"]) == (400, "invalid_parameter", "client_error")
    assert record["caller"]["id"] == "api-key-primary" and record["model"]["name"] == "ct-tissue-seg"


@pytest.mark.requirement("REQ-SEC-007", "REQ-SEC-011")
def test_refused_requests_are_audited_and_the_failure_rate_is_logged(client, caplog):
    caplog.set_level(logging.INFO)
    for i in range(3):
        post_ct(client, {"X-API-Key": "wrong", "X-Request-ID": f"refused-{i}"})
    refused = [r for r in audit_records(caplog) if r["request_id"].startswith("refused-")]
    assert [r["event"] for r in refused] == ["refused"] * 3
    assert all(r["status"] == 401 and r["code"] == "unauthorized" and r["caller"] is None for r in refused)
    assert all(r["reason"] == "invalid_api_key" and r["model"]["name"] == "ct-tissue-seg" for r in refused)
    rates = [r.failures_in_window for r in caplog.records if getattr(r, "event", None) == "auth_failed"]
    assert rates[-1] >= 3 and rates == sorted(rates)


@pytest.mark.requirement("REQ-SEC-007")
def test_application_insights_never_samples_the_audit_trail():
    # Python log records reach Application Insights as Trace telemetry; adaptive sampling would drop some.
    sampling = json.loads((ROOT / "host.json").read_text())["logging"]["applicationInsights"]["samplingSettings"]
    excluded = {kind.strip() for kind in sampling.get("excludedTypes", "").split(";")}
    assert sampling.get("isEnabled") is False or "Trace" in excluded, sampling
    assert "Request" in excluded and "Exception" in excluded  # kept whole as before


def bundled_model_sha256() -> str:
    """sha256 of the bundled model's ONNX file, computed here rather than read from its manifest."""
    [onnx] = (DEFAULT_MODELS / "ct-tissue-seg").glob("*.onnx")
    return hashlib.sha256(onnx.read_bytes()).hexdigest()


@pytest.mark.requirement("REQ-SEC-007", "REQ-SEC-002")
def test_a_403_refusal_names_the_authenticated_caller_and_the_model_asked_for(client, tokens, caplog):
    caplog.set_level(logging.INFO)
    response = post_ct(client, {**bearer(tokens.token(roles=["Reader"])), "X-Request-ID": "refused-403"})
    assert (response.status_code, response.json()["reason"]) == (403, "missing_role")
    [record] = [r for r in audit_records(caplog) if r["request_id"] == "refused-403"]
    assert (record["event"], record["status"], record["code"]) == ("refused", 403, "forbidden")
    assert record["reason"] == "missing_role"
    # The token was valid: who was refused is known, from the token's own claims.
    assert record["caller"] == {"kind": "entra", "id": CALLER_OID, "app_id": CLIENT_APP, "tenant_id": TENANT}
    assert record["model"] == {"name": "ct-tissue-seg", "version": "1.0.0", "sha256": bundled_model_sha256()}
    assert "caller" not in response.json() and CALLER_OID not in response.text  # never told to the client


@pytest.mark.requirement("REQ-SEC-007", "REQ-SEC-011")
@pytest.mark.parametrize(
    "path, model",
    [
        ("/api/v1/models/ct-tissue-seg", {"name": "ct-tissue-seg", "version": "1.0.0"}),
        ("/api/v1/models/no-such-model", {"name": "no-such-model", "version": None}),
        ("/api/v1/models", None),
    ],
)
def test_a_401_refusal_joins_its_auth_failed_line_by_request_id(client, tokens, caplog, path, model):
    caplog.set_level(logging.INFO)
    expired = tokens.token(exp=1_000_000_000, nbf=999_999_000, iat=999_999_000)
    request_id = f"expired-{path.rsplit('/', 1)[-1]}"
    assert client.get(path, headers={**bearer(expired), "X-Request-ID": request_id}).status_code == 401
    [record] = [r for r in audit_records(caplog) if r["request_id"] == request_id]
    [failure] = [r for r in caplog.records if getattr(r, "event", None) == "auth_failed" and r.request_id == request_id]
    assert (record["reason"], failure.code) == ("token_expired", "token_expired")
    assert record["caller"] is None  # a 401: nobody was authenticated
    if model is None:
        assert record["model"] is None
    else:
        assert {k: record["model"][k] for k in model} == model


@pytest.mark.requirement("REQ-SEC-001")
def test_local_development_without_auth_says_so_loudly(caplog):
    caplog.set_level(logging.WARNING)
    app = create_app(make_settings(MEDAI_MODELS_DIR=str(DEFAULT_MODELS)))
    with TestClient(app) as http:
        assert "AUTHENTICATION IS DISABLED" in caplog.text
        assert http.get("/api/v1/health/ready").json()["authentication"].startswith("DISABLED")
        assert post_ct(http, {}).status_code == 200


@pytest.mark.slow
@pytest.mark.requirement("REQ-SEC-007")
def test_audit_trail_is_written_with_the_log_level_at_warning(tmp_path):
    # The served process as a user starts it, its root level raised: operational INFO lines go,
    # the audit records of a success and of a refusal stay. A JPEG on a test model: a DICOM
    # request right after start-up can race the DICOM decoder's warm-up import (see the report).
    key = secrets.token_urlsafe(32)
    env = {
        **LOCAL_ENV,
        "MEDAI_MODELS_DIR": str(TEST_MODELS),
        "MEDAI_MODELS": "identity-gray",
        "MEDAI_DEFAULT_MODEL": "identity-gray",
        "MEDAI_AUTH_MODE": "api-key",
        "MEDAI_LOG_LEVEL": "WARNING",
        "MEDAI_DEV_SECRETS_JSON": json.dumps({"api-key-primary": key, "api-key-secondary": secrets.token_urlsafe(32)}),
    }
    app = ServedApp(env, tmp_path / "service.log")
    infer = "/api/v1/models/identity-gray/infer"
    try:
        app.wait_ready()
        with httpx.Client(base_url=app.base_url, timeout=60) as http:
            image = read_input("gray_ok_64.jpg")
            ok = http.post(infer, content=image, headers={"X-API-Key": key, "X-Request-ID": "warn-200"})
            refused = http.post(infer, content=b"x", headers={"X-API-Key": "not-the-key", "X-Request-ID": "warn-401"})
    finally:
        app.stop()
    assert (ok.status_code, refused.status_code) == (200, 401), ok.text
    lines = [json.loads(line) for line in app.logs().splitlines() if line.startswith("{")]
    assert lines and all(line["level"] != "INFO" for line in lines if line["logger"] != AUDIT_LOGGER)
    audit = {line["request_id"]: line for line in lines if line["logger"] == AUDIT_LOGGER}
    # The served process's own JSON lines: the audit fields are top-level, the message a short summary.
    assert set(audit["warn-200"]) == set(FIELDS) | LINE_FIELDS
    assert audit["warn-200"]["message"] == "inference: 200 success"
    assert (audit["warn-200"]["status"], audit["warn-200"]["caller"]["id"]) == (200, "api-key-primary")
    assert audit["warn-200"]["input_sha256"] == hashlib.sha256(image).hexdigest()
    assert (audit["warn-401"]["event"], audit["warn-401"]["status"]) == ("refused", 401)


class MessageCapture(logging.Handler):
    """A handler with the default formatter, as the Functions Python worker's: it sees the message text only."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.name, self.format(record)))


@pytest.fixture
def functions_host_logging():
    """Logging configured as under the Functions host (``install_handler=False``), undone afterwards."""
    root, audit = logging.getLogger(), logging.getLogger(AUDIT_LOGGER)
    saved = root.level, audit.level, list(audit.filters), {name: logging.getLogger(name).level for name in _QUIET}
    capture = MessageCapture()
    configure_logging(make_settings(MEDAI_LOG_LEVEL="WARNING"), install_handler=False)
    root.addHandler(capture)
    try:
        yield capture
    finally:
        root.removeHandler(capture)
        root.setLevel(saved[0])
        audit.setLevel(saved[1])
        audit.filters[:] = saved[2]
        for name, level in saved[3].items():
            logging.getLogger(name).setLevel(level)


@pytest.mark.requirement("REQ-SEC-007")
def test_under_the_functions_host_the_audit_message_text_is_the_whole_record(client, keys, functions_host_logging):
    # The worker forwards a record's formatted message and logger name, nothing else: the text must be the record.
    response = post_ct(client, {"X-API-Key": keys["primary"], "X-Request-ID": "host-200"})
    texts = [text for name, text in functions_host_logging.lines if name == AUDIT_LOGGER and "host-200" in text]
    assert len(texts) == 1
    record = json.loads(texts[0])
    assert set(record) == set(FIELDS)
    assert (record["event"], record["status"], record["caller"]["id"]) == ("inference", 200, "api-key-primary")
    assert record["input_sha256"] == response.json()["input"]["sha256"]
