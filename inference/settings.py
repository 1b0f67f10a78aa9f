"""The one settings object.

The environment is read once, at start-up, into a frozen, validated
:class:`Settings`. Nothing else in the code base reads ``os.environ``. Each
field declares its environment variable and documentation in its metadata, so
the README's configuration table is generated from this file
(``python -m inference settings-doc``) and cannot drift from it.

Secrets are never settings: API keys and the PHI hashing key live in Key Vault.
The only exception is the explicitly development-only fallback
``MEDAI_DEV_SECRETS_JSON``, refused unless ``MEDAI_ENVIRONMENT=local``.
"""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin
from urllib.parse import urlsplit

from .errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
"""The repository (or deployed ``wwwroot``) directory."""

MiB = 1024 * 1024
PILLOW_MAX_IMAGE_PIXELS = 89_478_485
"""Pillow's default decompression-bomb threshold; the pixel limit may not exceed it."""


LIBRARY_DEFAULTS = {"OPENBLAS_NUM_THREADS": "1"}
"""Variables of the numeric libraries that the entry points set where the environment does not.

OpenBLAS reads ``OPENBLAS_NUM_THREADS`` when numpy is imported. onnxruntime does the models'
arithmetic with its own threads; with more, OpenBLAS's extra threads spin for about 0.1 s of CPU
when numpy is imported, and for about 50 ms after any BLAS call it splits across them."""


def apply_library_defaults() -> None:
    """Set :data:`LIBRARY_DEFAULTS` where the process environment does not set them.

    Effective only before numpy is imported; ``service/startup.py`` calls it first thing.
    """
    for key, value in LIBRARY_DEFAULTS.items():
        os.environ.setdefault(key, value)


def _s(env: str, doc: str, default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """Declare a setting: its environment variable, documentation and default."""
    meta = {"env": env, "doc": doc}
    if default is dataclasses.MISSING:
        return field(metadata=meta, **kw)
    if isinstance(default, (list, dict, set)):
        return field(default_factory=lambda: default, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass(frozen=True)
class ModelSettings:
    """Which models are served and how they are loaded."""

    models_dir: Path = _s(
        "MEDAI_MODELS_DIR",
        "Directory holding one sub-directory per model (`manifest.json` + `.onnx`).",
        PROJECT_ROOT / "models",
    )
    enabled: tuple[str, ...] = _s(
        "MEDAI_MODELS",
        "Comma-separated model names to serve; empty serves every model found in the models directory.",
        (),
    )
    default_model: str = _s(
        "MEDAI_DEFAULT_MODEL",
        "Model used by the CLI and the blob path when none is named.",
        "ct-tissue-seg",
    )
    loading: Literal["eager", "lazy"] = _s(
        "MEDAI_MODEL_LOADING",
        "`eager`: load and warm every model at start-up (readiness waits for it); "
        "`lazy`: load a model on its first request.",
        "eager",
    )
    warmup: bool = _s("MEDAI_MODEL_WARMUP", "Run one inference on a synthetic input when a model loads.", True)


@dataclass(frozen=True)
class LimitSettings:
    """Limits checked before any large allocation."""

    max_body_bytes: int = _s(
        "MEDAI_MAX_BODY_BYTES",
        "Largest accepted request body or blob, in bytes (the Functions host refuses above 100 MB).",
        64 * MiB,
    )
    max_pixels: int = _s(
        "MEDAI_MAX_PIXELS",
        "Largest accepted frame, in pixels (rows x columns), checked from the header before decoding.",
        40_000_000,
    )
    max_frames: int = _s("MEDAI_MAX_FRAMES", "Largest accepted number of frames in a multi-frame DICOM.", 512)
    max_decoded_bytes: int = _s(
        "MEDAI_MAX_DECODED_BYTES",
        "Largest decoded pixel buffer (all frames, all samples), in bytes, checked from the header.",
        512 * MiB,
    )
    max_dicom_header_bytes: int = _s(
        "MEDAI_MAX_DICOM_HEADER_BYTES",
        "Largest DICOM header (everything before Pixel Data) accepted, in bytes.",
        4 * MiB,
    )


@dataclass(frozen=True)
class ImagingSettings:
    """Policies for decoding images, documented in the README."""

    multiframe: Literal["all", "first", "reject"] = _s(
        "MEDAI_MULTIFRAME",
        "Multi-frame DICOM policy: `all` infers every frame (one prediction per frame), "
        "`first` infers frame 0 only, `reject` answers 422 `multiframe_not_supported`.",
        "all",
    )
    alpha_background: tuple[int, int, int] = _s(
        "MEDAI_ALPHA_BACKGROUND",
        "RGB colour that transparent pixels (PNG alpha, palette tRNS, LA) are composited on, as `R,G,B`.",
        (0, 0, 0),
    )


@dataclass(frozen=True)
class RuntimeSettings:
    """onnxruntime and concurrency tuning."""

    intra_op_threads: int = _s(
        "MEDAI_ORT_INTRA_OP_THREADS",
        "onnxruntime intra-op threads per session; 0 lets onnxruntime use one per core.",
        0,
    )
    concurrent_intra_op_threads: int = _s(
        "MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS",
        "Intra-op threads of a run that shares the instance with other requests. When it differs from "
        "MEDAI_ORT_INTRA_OP_THREADS a second session per model serves those runs (one more copy of the "
        "weights in memory): a lone request gets every core, concurrent ones one core each. 0: one session.",
        1,
    )
    inter_op_threads: int = _s("MEDAI_ORT_INTER_OP_THREADS", "onnxruntime inter-op threads per session.", 1)
    allow_spinning: bool = _s(
        "MEDAI_ORT_ALLOW_SPINNING",
        "Let the intra-op threads of a lone request's run spin between operators instead of sleeping (lower "
        "latency). Concurrent runs use one-thread sessions, which have no threads to spin.",
        True,
    )
    memory_arena: bool = _s(
        "MEDAI_ORT_MEMORY_ARENA",
        "Use onnxruntime's CPU memory arena. Off keeps RSS flat when input sizes vary.",
        False,
    )
    malloc_arena_max: int = _s(
        "MEDAI_MALLOC_ARENA_MAX",
        "Most malloc arenas of the C allocator (glibc). With two, a thread arena's heap kept 20 to 34 MiB "
        "resident at rest on some runs, which returning freed memory did not give back; one measured no "
        "slower. 0: glibc's default (eight per core).",
        1,
    )
    memory_trim_idle_s: float = _s(
        "MEDAI_MEMORY_TRIM_IDLE_S",
        "Seconds without work after which freed memory is returned to the system (`malloc_trim`), so an "
        "idle instance holds only what it uses. The next request faults its pages in again (about 10 ms on "
        "a ResNet-18), so a request arriving sooner than this after the last one does not pay it. 0: never.",
        5.0,
    )
    memory_trim_period_s: float = _s(
        "MEDAI_MEMORY_TRIM_PERIOD_S",
        "While requests keep coming, freed memory is returned at most this often, in seconds (each time "
        "costs the next request a page fault per page it touches again). 0: only at rest.",
        60.0,
    )
    malloc_mmap_threshold: int = _s(
        "MEDAI_MALLOC_MMAP_THRESHOLD",
        "Blocks of this many bytes and more get their own memory mapping from the C allocator (glibc), "
        "returned to the system the moment they are freed: the lowest RSS, but every run faults its "
        "large buffers in again (a ResNet-18 served 30% slower at 64 KiB). 0 keeps glibc's dynamic "
        "threshold. At most 33554432.",
        0,
    )
    optimized_model_dir: Path | None = _s(
        "MEDAI_ORT_OPTIMIZED_MODEL_DIR",
        "Directory where optimised graphs are cached between starts (empty: no cache).",
        None,
    )
    max_in_flight: int = _s(
        "MEDAI_MAX_IN_FLIGHT",
        "Inferences running at once per worker process (0: one per core).",
        0,
    )
    max_queue: int = _s(
        "MEDAI_MAX_QUEUE",
        "Requests allowed to wait for an inference slot; beyond it the API answers 503 with Retry-After.",
        32,
    )
    queue_timeout_s: float = _s(
        "MEDAI_QUEUE_TIMEOUT_S",
        "Longest a request waits for an inference slot before a 503.",
        10.0,
    )
    max_batch: int = _s(
        "MEDAI_MAX_BATCH",
        "Micro-batching: most single-image requests merged into one run (1 disables; for GPU or large hosts).",
        1,
    )
    max_batch_delay_ms: float = _s(
        "MEDAI_MAX_BATCH_DELAY_MS",
        "Micro-batching: longest a request waits for others to join its batch.",
        2.0,
    )

    @property
    def inference_slots(self) -> int:
        """Inferences at once per worker process: MEDAI_MAX_IN_FLIGHT, or one per usable core."""
        from .cpu import available_cores

        return self.max_in_flight or available_cores()


@dataclass(frozen=True)
class AuthSettings:
    """Who may call the API. Authentication is on unless explicitly disabled for local development."""

    mode: tuple[str, ...] = _s(
        "MEDAI_AUTH_MODE",
        "Accepted credentials, comma-separated: `entra` (Microsoft Entra ID bearer tokens), "
        "`api-key` (the `X-API-Key` header), or `none` (only with `MEDAI_ENVIRONMENT=local`).",
        ("entra", "api-key"),
    )
    tenant_id: str = _s("MEDAI_ENTRA_TENANT_ID", "Entra ID tenant (directory) id whose tokens are accepted.", "")
    audience: tuple[str, ...] = _s(
        "MEDAI_ENTRA_AUDIENCE",
        "Accepted token audiences (the API's application id URI and/or client id), comma-separated.",
        (),
    )
    required_roles: tuple[str, ...] = _s(
        "MEDAI_ENTRA_REQUIRED_ROLES",
        "App roles (application permissions) any one of which allows inference.",
        ("Inference.Invoke",),
    )
    required_scopes: tuple[str, ...] = _s(
        "MEDAI_ENTRA_REQUIRED_SCOPES",
        "Delegated scopes (`scp`) any one of which allows inference.",
        ("Inference.Invoke",),
    )
    authority_host: str = _s(
        "MEDAI_ENTRA_AUTHORITY_HOST",
        "Entra ID authority (sovereign clouds use another).",
        "https://login.microsoftonline.com",
    )
    jwks_uri: str = _s(
        "MEDAI_ENTRA_JWKS_URI",
        "Signing keys URL; empty derives it from the authority and tenant.",
        "",
    )
    jwks_cache_s: int = _s("MEDAI_ENTRA_JWKS_CACHE_S", "How long signing keys are cached, in seconds.", 3600)
    leeway_s: int = _s("MEDAI_ENTRA_LEEWAY_S", "Clock skew tolerated on `exp` and `nbf`, in seconds.", 60)
    api_key_secret_names: tuple[str, ...] = _s(
        "MEDAI_API_KEY_SECRETS",
        "Key Vault secret names holding API keys; the secret name is the key id recorded in the audit trail.",
        ("api-key-primary", "api-key-secondary"),
    )
    failed_auth_window_s: int = _s(
        "MEDAI_FAILED_AUTH_WINDOW_S",
        "Window over which failed authentications are counted and logged as a rate.",
        60,
    )


@dataclass(frozen=True)
class SecretSettings:
    """Where secrets come from."""

    key_vault_uri: str = _s(
        "MEDAI_KEY_VAULT_URI",
        "Key Vault URI (`https://<name>.vault.azure.net/`); read with the managed identity.",
        "",
    )
    cache_ttl_s: int = _s(
        "MEDAI_SECRET_CACHE_TTL_S",
        "How long a secret value is cached; a rotated key is picked up within this time. While Key Vault is "
        "unreachable cached values are served and the vault is retried at most once per tenth of it.",
        300,
    )
    phi_hash_key_secret: str = _s(
        "MEDAI_PHI_HASH_KEY_SECRET",
        "Key Vault secret holding the key of the keyed hash used to refer to DICOM instances.",
        "phi-hash-key",
    )
    dev_secrets_json: str = _s(
        "MEDAI_DEV_SECRETS_JSON",
        "Development only (`MEDAI_ENVIRONMENT=local`): a JSON object of secret name to value, "
        "used instead of Key Vault.",
        "",
    )


@dataclass(frozen=True)
class StorageConnection:
    """A Functions-style storage connection, resolved from the ``<name>...`` settings.

    In Azure: ``<name>__blobServiceUri`` / ``<name>__queueServiceUri`` (or
    ``<name>__accountName``), ``<name>__credential=managedidentity`` and, for a
    user-assigned identity, ``<name>__clientId``. For the local emulator only:
    ``<name>`` holding a connection string.
    """

    connection_string: str | None = field(default=None, repr=False)
    blob_service_uri: str | None = None
    queue_service_uri: str | None = None
    client_id: str | None = None

    @classmethod
    def from_env(cls, name: str, env: Mapping[str, str]) -> StorageConnection:
        account = env.get(f"{name}__accountName")
        blob_uri = env.get(f"{name}__blobServiceUri") or env.get(f"{name}__serviceUri")
        queue_uri = env.get(f"{name}__queueServiceUri")
        if account and not blob_uri:
            blob_uri = f"https://{account}.blob.core.windows.net"
        if account and not queue_uri:
            queue_uri = f"https://{account}.queue.core.windows.net"
        return cls(
            connection_string=env.get(name) or None,
            blob_service_uri=blob_uri or None,
            queue_service_uri=queue_uri or None,
            client_id=env.get(f"{name}__clientId") or None,
        )


AfterSuccess = Literal["move", "tag", "keep"]
AFTER_SUCCESS_POLICIES: tuple[str, ...] = get_args(AfterSuccess)
"""What may happen to a blob input once its record is written (``MEDAI_BLOB_AFTER_SUCCESS``)."""


@dataclass(frozen=True)
class BlobSettings:
    """The blob-triggered batch path."""

    connection: str = _s(
        "MEDAI_BLOB_CONNECTION",
        "Name (prefix) of the storage connection setting: `<name>__blobServiceUri` for a managed identity "
        "in Azure, or `<name>` holding a connection string for the local emulator.",
        "AzureWebJobsStorage",
    )
    source: Literal["EventGrid", "LogsAndContainerScan"] = _s(
        "MEDAI_BLOB_SOURCE",
        "Blob trigger source: `EventGrid` (Flex Consumption) or `LogsAndContainerScan` (polling, AKS).",
        "EventGrid",
    )
    input_container: str = _s("MEDAI_BLOB_INPUT_CONTAINER", "Container watched for new images.", "inference-input")
    results_container: str = _s("MEDAI_BLOB_RESULTS_CONTAINER", "Container receiving result JSON.", "inference-results")
    errors_container: str = _s(
        "MEDAI_BLOB_ERRORS_CONTAINER", "Container receiving error records (problem JSON).", "inference-errors"
    )
    archive_container: str = _s(
        "MEDAI_BLOB_ARCHIVE_CONTAINER",
        "Container inputs are moved to when done (`processed/` and `failed/` prefixes).",
        "inference-archive",
    )
    after_success: AfterSuccess = _s(
        "MEDAI_BLOB_AFTER_SUCCESS",
        "What happens to an input once its result or error record is written: `move` to the archive container "
        "(lets the KEDA blob scaler scale to zero), `tag` with `medai-status` `processed` or `failed`, or `keep`; with "
        "`tag` and `keep` the input stays, so the KEDA blob scaler, which counts blobs, never scales to zero.",
        "move",
    )
    model: str = _s(
        "MEDAI_BLOB_MODEL",
        "Model applied to blobs (and by the backfill, unless `--model`); empty uses the default model.",
        "",
    )
    poison_queue: str = _s(
        "MEDAI_BLOB_POISON_QUEUE",
        "Queue where the Functions host puts blobs that failed every retry.",
        "webjobs-blobtrigger-poison",
    )
    storage: StorageConnection = field(default_factory=StorageConnection)
    """Resolved from the settings named by ``MEDAI_BLOB_CONNECTION`` (see :class:`StorageConnection`)."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the service, read once from the environment."""

    environment: Literal["production", "staging", "local"] = _s(
        "MEDAI_ENVIRONMENT",
        "Deployment environment. `local` allows the development-only settings.",
        "production",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _s(
        "MEDAI_LOG_LEVEL", "Root log level; the audit logger (`medai.audit`) stays at INFO whatever it is.", "INFO"
    )
    git_commit: str = _s(
        "MEDAI_GIT_COMMIT",
        "Commit the deployment was built from (set by the pipeline); locally read from `.git`.",
        "",
    )
    models: ModelSettings = field(default_factory=ModelSettings)
    limits: LimitSettings = field(default_factory=LimitSettings)
    imaging: ImagingSettings = field(default_factory=ImagingSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    secrets: SecretSettings = field(default_factory=SecretSettings)
    blob: BlobSettings = field(default_factory=BlobSettings)

    @property
    def auth_disabled(self) -> bool:
        """True when authentication was explicitly switched off for local development."""
        return "none" in self.auth.mode

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build validated settings from an environment mapping.

        Args:
            environ: Variables to read; ``os.environ`` when omitted. This is the
                only place in the code base that reads the process environment.

        Raises:
            ConfigurationError: A value does not parse or breaks a rule; the
                message names the variable.
        """
        env = os.environ if environ is None else environ
        sections: dict[str, Any] = {}
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            if dataclasses.is_dataclass(hint):
                sections[f.name] = _load_section(hint, env)
            else:
                value = _read(f, hint, env)
                if value is not dataclasses.MISSING:
                    sections[f.name] = value
        blob = sections["blob"]
        sections["blob"] = dataclasses.replace(blob, storage=StorageConnection.from_env(blob.connection, env))
        settings = cls(**sections)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Check the rules that span several settings.

        Raises:
            ConfigurationError: Naming the offending variable.
        """
        modes = set(self.auth.mode)
        unknown = modes - {"entra", "api-key", "none"}
        accepted = (
            "accepted: entra, api-key or both, comma-separated (the default), or none (MEDAI_ENVIRONMENT=local only)"
        )
        if not modes:  # set but blank: say so rather than list an empty set of unknown modes
            raise ConfigurationError(f"MEDAI_AUTH_MODE is empty; {accepted}. Unset it for the default.")
        if unknown:
            raise ConfigurationError(f"MEDAI_AUTH_MODE: unknown mode(s) {', '.join(sorted(unknown))}; {accepted}")
        if "none" in modes and len(modes) > 1:
            raise ConfigurationError("MEDAI_AUTH_MODE: `none` cannot be combined with other modes")
        if "none" in modes and self.environment != "local":
            raise ConfigurationError(
                "MEDAI_AUTH_MODE=none is allowed only with MEDAI_ENVIRONMENT=local (local development)"
            )
        if self.secrets.dev_secrets_json and self.environment != "local":
            raise ConfigurationError("MEDAI_DEV_SECRETS_JSON is allowed only with MEDAI_ENVIRONMENT=local")
        for name, value in (
            ("MEDAI_MAX_BODY_BYTES", self.limits.max_body_bytes),
            ("MEDAI_MAX_PIXELS", self.limits.max_pixels),
            ("MEDAI_MAX_FRAMES", self.limits.max_frames),
            ("MEDAI_MAX_DECODED_BYTES", self.limits.max_decoded_bytes),
            ("MEDAI_MAX_QUEUE", self.runtime.max_queue + 1),
            ("MEDAI_MAX_BATCH", self.runtime.max_batch),
        ):
            if value <= 0:
                raise ConfigurationError(f"{name} must be positive")
        jwks = urlsplit(self.auth.jwks_uri) if self.auth.jwks_uri else None
        if jwks is not None and (jwks.scheme not in ("https", "http") or not jwks.netloc):
            raise ConfigurationError(
                "MEDAI_ENTRA_JWKS_URI must be an https URL of the tenant's signing keys "
                "(or empty, to derive it from the authority and tenant)"
            )
        runtime = self.runtime
        if min(runtime.malloc_arena_max, runtime.memory_trim_idle_s, runtime.memory_trim_period_s) < 0:
            raise ConfigurationError(
                "MEDAI_MALLOC_ARENA_MAX, MEDAI_MEMORY_TRIM_IDLE_S and MEDAI_MEMORY_TRIM_PERIOD_S may not be negative"
            )
        if not 0 <= self.runtime.malloc_mmap_threshold <= 32 * MiB:
            raise ConfigurationError("MEDAI_MALLOC_MMAP_THRESHOLD must be between 0 and 33554432 (glibc's limit)")
        if self.limits.max_pixels > PILLOW_MAX_IMAGE_PIXELS:
            raise ConfigurationError(
                f"MEDAI_MAX_PIXELS may not exceed {PILLOW_MAX_IMAGE_PIXELS}, Pillow's decompression-bomb threshold"
            )
        if any(not 0 <= c <= 255 for c in self.imaging.alpha_background) or len(self.imaging.alpha_background) != 3:
            raise ConfigurationError("MEDAI_ALPHA_BACKGROUND must be three integers 0..255, e.g. 0,0,0")


def _load_section(cls: type, env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if "env" not in f.metadata:
            continue  # derived, not read from one variable
        value = _read(f, hints[f.name], env)
        if value is not dataclasses.MISSING:
            values[f.name] = value
    return cls(**values)


def _read(f: dataclasses.Field, hint: Any, env: Mapping[str, str]) -> Any:
    name = f.metadata["env"]
    raw = env.get(name)
    if raw is None:
        return dataclasses.MISSING
    try:
        return _parse(raw.strip(), hint)
    except (ValueError, TypeError) as err:
        raise ConfigurationError(f"{name}: {err}") from err


def _parse(raw: str, hint: Any) -> Any:
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is typing.Union or (origin is not None and type(None) in args):
        inner = [a for a in args if a is not type(None)]
        return None if raw == "" else _parse(raw, inner[0])
    if origin is Literal:
        if raw not in args:
            raise ValueError(f"must be one of {', '.join(map(str, args))}, not {raw!r}")
        return raw
    if origin is tuple:
        items = [item.strip() for item in raw.split(",") if item.strip()]
        if args and args[-1] is not Ellipsis:
            return tuple(_parse(i, t) for i, t in zip(items, args, strict=True))
        return tuple(_parse(i, args[0]) for i in items)
    if hint is bool:
        lowered = raw.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise ValueError(f"must be true or false, not {raw!r}")
    if hint is int:
        return int(raw)
    if hint is float:
        return float(raw)
    if hint is Path:
        return Path(raw)
    if hint is str:
        return raw
    raise TypeError(f"unsupported setting type {hint!r}")


def describe_settings() -> list[dict[str, str]]:
    """Every setting with its variable, type, default and documentation.

    Returns:
        One dict per setting, in declaration order, for the README table.
    """
    rows: list[dict[str, str]] = []

    def walk(cls: type) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if dataclasses.is_dataclass(hints[f.name]):
                if "env" not in f.metadata and f.name != "storage":
                    walk(hints[f.name])
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append(
                {
                    "env": f.metadata["env"],
                    "default": _format_default(default),
                    "doc": f.metadata["doc"],
                }
            )

    walk(Settings)
    return rows


def _format_default(value: Any) -> str:
    if value is None or value == () or value == "":
        return "(empty)"
    if isinstance(value, Path):
        try:
            return "./" + value.relative_to(PROJECT_ROOT).as_posix()
        except ValueError:
            return value.as_posix()
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)
