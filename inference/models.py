"""Models and their warm cache.

One :class:`ModelRegistry` per worker process holds one onnxruntime session per
model. A session is created once (eagerly at start-up or on first use, per
``MEDAI_MODEL_LOADING``), after the model file's sha256 has been checked against
its manifest, and then reused by every request: ``InferenceSession.run`` is
thread-safe. The bytes that were hashed are the bytes handed to onnxruntime, so
the file cannot change between the check and the load. With the optimised-graph cache
(``MEDAI_ORT_OPTIMIZED_MODEL_DIR``), a start that finds the model's graph there loads that
graph, made from bytes verified when it was cached, while another thread checks the file
(streamed, never held in memory; a changed file still refuses to serve) and the graph against
the sha256 recorded when it was written. The concurrent session, built later, never uses the
cache. A cache that cannot be read, replaced or written is served around, never fatal.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from .cpu import available_cores
from .errors import ConfigurationError, ModelIntegrityError, ModelLoadError, ModelNotFound, NotReady, ServiceError
from .manifest import ONNX_TYPES, Manifest, load_manifest
from .settings import RuntimeSettings, Settings

log = logging.getLogger(__name__)

_BATCHED = {"NCHW": 4, "NHWC": 4}
_RANK = {"NCHW": 4, "NHWC": 4, "CHW": 3, "HWC": 3, "HW": 2}

# Open Inference Protocol v2 datatype names.
OIP_DATATYPES = {
    "float32": "FP32",
    "float16": "FP16",
    "float64": "FP64",
    "uint8": "UINT8",
    "int8": "INT8",
    "uint16": "UINT16",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
    "str": "BYTES",
    "object": "BYTES",
}


HASH_CHUNK_BYTES = 8 << 20
"""Bytes read and hashed per step by :func:`sha256_file`."""


def sha256_file(path: Path) -> str:
    """sha256 of a file, hex, streamed through one reused buffer (the file is never held whole).

    Each step reads and then hashes ``HASH_CHUNK_BYTES`` without the interpreter lock, taking the lock
    back after each. A start-up hashes the model and its cached graph while the main thread imports,
    and every retake of the lock can wait a switch interval (5 ms) for those imports: 12 retakes per
    47 MB file here, against 360 with ``hashlib.file_digest``'s 256 KiB steps.
    """
    digest = hashlib.sha256()
    buffer = bytearray(HASH_CHUNK_BYTES)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as handle:
        while True:
            size = handle.readinto(buffer)
            if not size:
                break
            digest.update(view[:size])
    return digest.hexdigest()


@dataclass
class LoadedModel:
    """A model whose session exists and whose manifest matched its graph.

    Attributes:
        manifest: The validated manifest.
        session: The onnxruntime session (thread-safe ``run``); its runs use
            ``MEDAI_ORT_INTRA_OP_THREADS`` threads.
        concurrent_session: A second session of the same graph whose runs use
            ``MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS`` threads, for runs that share the instance
            with other requests; None when that setting equals the first (or is 0).
        fixed_hw: The image input's fixed (height, width); None where dynamic.
        output_names: Outputs in graph order.
        signature: Inputs and outputs with OIP v2 datatypes and shapes.
        load_ms: How long creating the session took.
        warm: Whether the warm-up inference has run.
        batchable: Several images can share one run: the input's batch axis and every
            output's first axis are dynamic, and every output is a tensor.
    """

    manifest: Manifest
    session: Any
    fixed_hw: tuple[int | None, int | None]
    output_names: list[str]
    signature: dict[str, list[dict[str, Any]]]
    constants: dict[str, np.ndarray] = field(default_factory=dict)
    load_ms: float = 0.0
    warm: bool = False
    batchable: bool = False
    concurrent_session: Any = None
    runtime: RuntimeSettings | None = None
    graph_path: Path | None = None
    _concurrent_started: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    def run(self, tensor: np.ndarray, *, concurrent: bool = False) -> dict[str, Any]:
        """Run the session on one input tensor (plus the manifest's constants).

        Args:
            tensor: The image tensor.
            concurrent: Other requests share the instance: use the concurrent session (fewer
                threads per run, so runs and decoding proceed side by side) when there is one.

        Returns:
            Output name to value (numpy arrays, or lists/dicts for sequences and maps).
        """
        feeds = {self.manifest.input.name: tensor, **self.constants}
        session = self.session
        if concurrent:
            if self.concurrent_session is not None:
                session = self.concurrent_session
            elif self.runtime is not None and not self._concurrent_started.is_set():
                self._start_concurrent_session()  # first concurrency: build it aside, this run uses the first
        values = session.run(None, feeds)
        return dict(zip(self.output_names, values))

    def warm_up(self) -> None:
        """Run one inference on a zero input of the right shape."""
        self.run(self._zeros())
        self.warm = True

    def _zeros(self) -> np.ndarray:
        spec = self.manifest.input
        height = spec.size[0] if spec.size else (self.fixed_hw[0] or 64)
        width = spec.size[1] if spec.size else (self.fixed_hw[1] or 64)
        dims = {"N": 1, "C": spec.channels, "H": height, "W": width}
        return np.zeros([dims[axis] for axis in spec.layout], dtype=np.dtype(spec.dtype))

    def _start_concurrent_session(self) -> None:
        with _CONCURRENT_LOCK:
            if self._concurrent_started.is_set():
                return
            self._concurrent_started.set()
        runtime = self.runtime

        def build() -> None:
            try:
                self.add_concurrent_session(runtime)  # type: ignore[arg-type]
            except Exception:  # the first session keeps serving every run: worth a log line, not a failure
                log.exception("model %s: the concurrent session cannot be created", self.name)

        builder = threading.Thread(target=build, name=f"concurrent-session-{self.name}", daemon=True)
        builder.start()
        # As for the loader: a process that exits while onnxruntime is still building this session (a
        # short backfill run) would abort in native code; let the build finish first.
        atexit.register(builder.join, 60)

    def add_concurrent_session(self, runtime: RuntimeSettings, *, warm_up: bool = True) -> None:
        """Create (and warm) the concurrent session, if the settings call for one.

        It is built the first time a run shares the instance (on a background thread, so no
        request waits for it, and never during start-up, so it does not slow the first request);
        until it exists, concurrent runs use the first session.
        """
        self._concurrent_started.set()
        threads = concurrent_threads(runtime)
        if threads is None or self.concurrent_session is not None:
            return
        # From the verified model itself, not the cache: the bytes hashed are the bytes loaded, whatever
        # happened in the cache directory since start-up (this runs later, off the start-up path).
        session = create_session(read_verified(self.manifest), None, runtime, threads)
        check_signature(self.manifest, session)
        if warm_up:
            session.run(None, {self.manifest.input.name: self._zeros(), **self.constants})
        self.concurrent_session = session

    def describe(self) -> dict[str, Any]:
        """The model's public description (GET /models/{name})."""
        m = self.manifest
        return {
            "name": m.name,
            "version": m.version,
            "sha256": m.sha256,
            "task": m.task,
            "description": m.description,
            "labels": list(m.labels),
            "inputs": self.signature["inputs"],
            "outputs": self.signature["outputs"],
            "preprocessing": {
                "input": m.input.name,
                "layout": m.input.layout,
                "channels": m.input.channels,
                "size": list(m.input.size) if m.input.size else None,
                "model_fixed_size": [self.fixed_hw[0], self.fixed_hw[1]],
                "resize": m.input.resize,
                "dtype": m.input.dtype,
                "intensity": m.input.intensity,
                "window": (
                    {
                        "center": m.input.window.center,
                        "width": m.input.window.width,
                        "priority": m.input.window.priority,
                    }
                    if m.input.window
                    else None
                ),
                "range": list(m.input.value_range),
                "mean": list(m.input.mean),
                "std": list(m.input.std),
            },
            "loaded": True,
            "warm": self.warm,
        }


@dataclass
class _Slot:
    manifest: Manifest
    lock: threading.Lock = field(default_factory=threading.Lock)
    model: LoadedModel | None = None
    error: ServiceError | None = None


class ModelRegistry:
    """The per-process cache of loaded models.

    Args:
        settings: Service settings (models directory, enabled models, runtime).

    Raises:
        ConfigurationError: The models directory is missing, two manifests share
            a name, or an enabled model does not exist.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._slots: dict[str, _Slot] = {}
        self._discover()
        self._started = threading.Event()
        self._loading: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Called once every model is loaded by load_all (the engine warms its decoders there).
        self.on_loaded: Callable[[], None] | None = None

    def _discover(self) -> None:
        cfg = self._settings.models
        directory = cfg.models_dir
        if not directory.is_dir():
            raise ConfigurationError(f"MEDAI_MODELS_DIR: {directory} is not a directory")
        found: dict[str, Manifest] = {}
        for path in sorted(directory.glob("*/manifest.json")):
            manifest = load_manifest(path)
            if manifest.name in found:
                raise ConfigurationError(
                    f"Two manifests declare the model name {manifest.name!r}: "
                    f"{found[manifest.name].manifest_path} and {path}"
                )
            found[manifest.name] = manifest
        enabled = cfg.enabled or tuple(found)
        missing = [name for name in enabled if name not in found]
        if missing:
            raise ConfigurationError(f"MEDAI_MODELS names unknown model(s) {missing}; found {sorted(found)}")
        self._slots = {name: _Slot(found[name]) for name in enabled}

    # -- queries -----------------------------------------------------------

    def names(self) -> list[str]:
        """Names of the served models, sorted."""
        return sorted(self._slots)

    def manifest(self, name: str) -> Manifest:
        """The manifest of a served model.

        Raises:
            ModelNotFound: No served model has that name.
        """
        return self._slot(name).manifest

    def status(self) -> dict[str, dict[str, Any]]:
        """Per model: loaded, warm, and the error code if loading failed."""
        result = {}
        for name, slot in sorted(self._slots.items()):
            result[name] = {
                "version": slot.manifest.version,
                "sha256": slot.manifest.sha256,
                "loaded": slot.model is not None,
                "warm": bool(slot.model and slot.model.warm),
                "error": slot.error.code if slot.error else None,
            }
        return result

    @property
    def ready(self) -> bool:
        """True when every served model is loaded and warmed up."""
        return bool(self._slots) and all(s.model is not None and s.model.warm for s in self._slots.values())

    # -- loading -----------------------------------------------------------

    def get(self, name: str, *, wait: bool = True) -> LoadedModel:
        """Return a loaded, warm model, loading it now if needed.

        Args:
            name: Model name.
            wait: When False and the model is not loaded yet, raise NotReady
                instead of loading it on this thread.

        Raises:
            ModelNotFound: Unknown name.
            NotReady: ``wait`` is False and the model is still loading.
            ModelLoadError: The model cannot be loaded.
        """
        slot = self._slot(name)
        if slot.model is not None:
            return slot.model
        if not wait and slot.lock.locked():
            raise NotReady(f"Model {name!r} is loading.", retry_after=2)
        with slot.lock:
            if slot.model is None:
                return self._load(slot)
            return slot.model

    def load_all(self) -> None:
        """Load and warm every served model on this thread; failures are recorded, not raised.

        The concurrent sessions (MEDAI_ORT_CONCURRENT_INTRA_OP_THREADS) are created once every
        model is ready, so they never delay readiness or the first request.
        """
        for name in self.names():
            try:
                self.get(name)
            except ServiceError:
                continue  # recorded in the slot; readiness stays false
        if self.on_loaded is not None:
            try:
                self.on_loaded()
            except Exception:  # a warm-up of convenience: the service works without it
                log.exception("post-load warm-up failed")

    def start(self, *, background: bool = True) -> None:
        """Begin eager loading once per process (idempotent).

        Args:
            background: Load on a daemon thread so liveness answers meanwhile.
        """
        with self._start_lock:
            if self._started.is_set():
                return
            self._started.set()
            if background:
                self._loading = threading.Thread(target=self.load_all, name="model-loader", daemon=True)
                self._loading.start()
                # A process that exits while onnxruntime is still building a session aborts in native
                # code ("terminate called without an active exception"); let the loader finish first.
                atexit.register(self._loading.join, 60)
            else:
                self.load_all()

    def wait_loaded(self, timeout: float | None = None) -> bool:
        """Block until background loading ends; returns readiness."""
        if self._loading is not None:
            self._loading.join(timeout)
        return self.ready

    def _slot(self, name: str) -> _Slot:
        slot = self._slots.get(name)
        if slot is None:
            raise ModelNotFound(f"No model named {name!r} is served.", available=self.names())
        return slot

    def _load(self, slot: _Slot) -> LoadedModel:
        manifest = slot.manifest
        started = time.perf_counter()
        try:
            model = load_model(manifest, self._settings.runtime)
            if self._settings.models.warmup:
                model.warm_up()
            else:
                model.warm = True
        except ServiceError as err:
            slot.error = err
            log.error("model %s failed to load: %s", manifest.name, err.detail)
            raise
        except Exception as err:  # onnxruntime raises its own types on a bad graph
            slot.error = ModelLoadError(f"Model {manifest.name!r} cannot be loaded.")
            log.exception("model %s failed to load", manifest.name)
            raise slot.error from err
        model.load_ms = (time.perf_counter() - started) * 1000
        slot.model = model
        slot.error = None
        log.info(
            "model loaded",
            extra={
                "model": manifest.name,
                "model_version": manifest.version,
                "model_sha256": manifest.sha256,
                "load_ms": round(model.load_ms, 1),
            },
        )
        return model


_CONCURRENT_LOCK = threading.Lock()


def concurrent_threads(runtime: RuntimeSettings) -> int | None:
    """Intra-op threads of the concurrent session, or None when no second session is needed."""
    lone = runtime.intra_op_threads or available_cores()
    wanted = runtime.concurrent_intra_op_threads
    return wanted if wanted and wanted != lone else None


def session_options(runtime: RuntimeSettings, intra_op_threads: int | None = None) -> Any:
    """onnxruntime session options from the runtime settings."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    # 0 means one per usable core, counted here (cgroup quota included) rather than by onnxruntime,
    # which would count the host's cores in a CPU-limited container.
    threads = runtime.intra_op_threads if intra_op_threads is None else intra_op_threads
    options.intra_op_num_threads = threads or available_cores()
    options.inter_op_num_threads = runtime.inter_op_threads
    options.enable_cpu_mem_arena = runtime.memory_arena
    # A one-thread session has no pool threads; "0" says so explicitly for the concurrent session.
    spin = runtime.allow_spinning and options.intra_op_num_threads != 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    options.log_severity_level = 3  # errors only: warnings quote graph internals, not useful to operators
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return options


def load_model(manifest: Manifest, runtime: RuntimeSettings) -> LoadedModel:
    """Verify, load and check one model against its manifest.

    Raises:
        ModelIntegrityError: The file's sha256 differs from the manifest's.
        ModelLoadError: The file is missing or the graph does not match the manifest.
    """
    graph = optimized_graph(manifest, runtime)
    session = _load_cached(manifest, graph, runtime) if graph is not None and graph.is_file() else None
    if session is None:
        if graph is not None and graph.exists():  # a damaged entry that could not be removed, or not a file
            log.warning("model %s: %s in the optimised-graph cache cannot be used or replaced; served "
                        "without the cache", manifest.name, graph.name)
            graph = None
        # Read once: the bytes hashed are the bytes onnxruntime gets (and optimises into the cache).
        session = create_session(read_verified(manifest), graph, runtime)
        if graph is not None:
            graph = _kept_if_faithful(manifest, graph, runtime)
    fixed_hw, constants = check_signature(manifest, session)

    signature = {
        "inputs": [_describe_arg(arg) for arg in session.get_inputs()],
        "outputs": [_describe_arg(arg) for arg in session.get_outputs()],
    }
    return LoadedModel(
        manifest=manifest,
        session=session,
        fixed_hw=fixed_hw,
        output_names=[o.name for o in session.get_outputs()],
        signature=signature,
        constants=constants,
        batchable=_batchable(manifest, session),
        runtime=runtime,
        graph_path=graph,
    )


def _integrity_error(manifest: Manifest, actual: str) -> ModelIntegrityError:
    return ModelIntegrityError(
        f"Model {manifest.name!r}: {manifest.model_path.name} has sha256 {actual}, "
        f"the manifest says {manifest.sha256}; refusing to load it."
    )


def read_verified(manifest: Manifest) -> bytes:
    """The model file's bytes, after checking their sha256 against the manifest.

    Raises:
        ModelIntegrityError: The file's sha256 differs from the manifest's.
        ModelLoadError: The file cannot be read.
    """
    try:
        data = manifest.model_path.read_bytes()
    except OSError as err:
        raise ModelLoadError(f"Model {manifest.name!r}: cannot read {manifest.model_path.name}") from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != manifest.sha256:
        raise _integrity_error(manifest, actual)
    return data


def verify_file(manifest: Manifest) -> None:
    """Check the model file's sha256 against the manifest, streaming it (nothing kept in memory).

    Raises:
        ModelIntegrityError: The file's sha256 differs from the manifest's.
        ModelLoadError: The file cannot be read.
    """
    try:
        actual = sha256_file(manifest.model_path)
    except OSError as err:
        raise ModelLoadError(f"Model {manifest.name!r}: cannot read {manifest.model_path.name}") from err
    if actual != manifest.sha256:
        raise _integrity_error(manifest, actual)


UNCACHEABLE = ".uncacheable"
DIGEST = ".sha256"
"""Suffix of the file beside each cached graph that holds the graph's sha256, written with it."""


def _digest_path(graph: Path) -> Path:
    return graph.with_name(graph.name + DIGEST)


def _graph_intact(graph: Path) -> bool:
    """Whether the cached graph's bytes still have the sha256 recorded when it was written."""
    try:
        recorded = _digest_path(graph).read_text(encoding="ascii").strip()
        return recorded == sha256_file(graph)
    except (OSError, ValueError):
        return False


def _discard(graph: Path) -> bool:
    """Remove a cache entry (graph and record); False when it cannot be removed (a read-only cache)."""
    for path in (graph, _digest_path(graph)):
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.warning("cannot remove %s from the optimised-graph cache", path.name)
    return not graph.exists()


def _load_cached(manifest: Manifest, graph: Path, runtime: RuntimeSettings) -> Any | None:
    """The session of the cached graph at start-up, or None (the entry discarded) when it is damaged.

    onnxruntime loads the graph while another thread checks the model file against the manifest
    and the graph against its record (hashing releases the interpreter lock), so a start pays for
    the longer of the two rather than their sum. The session is returned, and so can serve, only
    once both checks have passed.

    Raises:
        ModelIntegrityError: The model file's sha256 differs from the manifest's.
        ModelLoadError: The model file cannot be read.
    """
    outcome: dict[str, Any] = {}

    def check() -> None:
        try:
            verify_file(manifest)
            outcome["intact"] = _graph_intact(graph)
        except Exception as err:  # handed to the loading thread, which raises it
            outcome["error"] = err

    checker = threading.Thread(target=check, name=f"verify-{manifest.name}", daemon=True)
    checker.start()
    try:
        session = _open_graph(graph, runtime)
    except Exception:  # unreadable: rebuilt below
        session = None
    checker.join()
    if "error" in outcome:
        raise outcome["error"]
    if session is None or not outcome.get("intact"):
        log.warning("cached optimised graph %s is damaged; rebuilding it", graph.name)
    elif not _fits(manifest, session):
        log.warning("model %s: its cached optimised graph does not fit the model; rebuilding it", manifest.name)
    else:
        return session
    _discard(graph)  # when it cannot be removed, load_model serves without the cache
    return None


def _fits(manifest: Manifest, session: Any) -> bool:
    """Whether a session built from a cached graph has the manifest's (and so the original's) signature."""
    try:
        check_signature(manifest, session)
        return True
    except Exception:  # any failure means: do not use this graph
        return False


def _open_graph(graph: Path, runtime: RuntimeSettings) -> Any:
    """A session of a cached graph, read by onnxruntime from its path and not optimised again."""
    import onnxruntime as ort

    options = session_options(runtime)
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])


def _machine_tag() -> str:
    """What an ``ORT_ENABLE_ALL`` graph depends on besides the model: onnxruntime's version and the
    CPU's instruction set (the NCHWc layout is chosen for it)."""
    import platform

    import onnxruntime as ort

    flags = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            flags = next((line for line in handle if line.startswith("flags")), "")
    except OSError:
        pass
    digest = hashlib.sha256(f"{platform.machine()}|{flags}".encode()).hexdigest()[:12]
    return f"ort{ort.__version__}-{digest}"


def optimized_graph(manifest: Manifest, runtime: RuntimeSettings) -> Path | None:
    """Where the optimised graph of this (verified) model is cached, or None without a cache.

    The name holds the model's sha256, onnxruntime's version and a digest of the CPU's flags,
    so a new model, a new onnxruntime or another machine never reads a stale graph.
    """
    if runtime.optimized_model_dir is None:
        return None
    graph = runtime.optimized_model_dir / f"{manifest.name}-{manifest.sha256[:16]}-{_machine_tag()}.onnx"
    marker = graph.with_name(graph.name + UNCACHEABLE)
    if marker.exists():
        log.info("model %s: served without the optimised-graph cache; %s says its graph does not serialise "
                 "faithfully (delete it to try again)", manifest.name, marker.name)
        return None
    return graph


def create_session(data: bytes, graph: Path | None, runtime: RuntimeSettings, threads: int | None = None) -> Any:
    """A session of the verified model ``data`` (see :func:`read_verified`), optimised here.

    With ``graph``, onnxruntime also writes the optimised graph there (the cache is filled, with
    its sha256 recorded beside it as ``<graph>.sha256``); a start that finds it loads it with
    :func:`_load_cached` instead, which skips optimising (about a quarter of the session's creation
    time on a ResNet-18). A cache that cannot be written is left alone. The record guards against
    damage, not against someone who can write the cache directory: that directory must be writable
    by the service only.
    """
    import onnxruntime as ort

    options = session_options(runtime, threads)
    providers = ["CPUExecutionProvider"]
    if graph is None:
        return ort.InferenceSession(data, sess_options=options, providers=providers)
    partial = graph.with_name(f"{graph.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        graph.parent.mkdir(parents=True, exist_ok=True)
        with partial.open("wb"):  # writable? onnxruntime's own failure to write raises its own types
            pass
        options.optimized_model_filepath = str(partial)
        session = ort.InferenceSession(data, sess_options=options, providers=providers)
        digest = partial.with_name(partial.name + DIGEST)
        digest.write_text(sha256_file(partial) + "\n", encoding="ascii")
        # The record first, then the graph, each replaced atomically: a concurrent start never reads
        # half a graph, and one that finds a graph and a record that do not match rebuilds it.
        os.replace(digest, _digest_path(graph))
        os.replace(partial, graph)
    except Exception as err:  # a read-only or full cache (onnxruntime raises its own types for its write)
        log.warning("the optimised graph cannot be cached (%s: %s); loading without the cache",
                    type(err).__name__, str(err)[:200])
        for leftover in (partial, partial.with_name(partial.name + DIGEST)):
            # On a read-only file system unlink fails with EROFS even for a file that is not there.
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
        return ort.InferenceSession(data, sess_options=session_options(runtime, threads), providers=providers)
    return session


def _kept_if_faithful(manifest: Manifest, graph: Path, runtime: RuntimeSettings) -> Path | None:
    """The graph this process has just written, once loaded back with the original's signature.

    Some older models (IR < 4) come back from serialisation with extra graph inputs: such a graph
    is removed and marked never to be cached, and the model is served from the session built from
    the original. None when the graph is not kept (or could not be written).
    """
    if not graph.is_file():
        return None
    try:
        faithful = _fits(manifest, _open_graph(graph, runtime))
    except Exception:  # unreadable: not kept either
        faithful = False
    if faithful:
        return graph
    log.warning("model %s: its optimised graph cannot be cached; served without the cache", manifest.name)
    _discard(graph)
    try:
        graph.with_name(graph.name + UNCACHEABLE).touch()  # not tried again on the next start
    except OSError:
        log.warning("model %s: the cache cannot be marked; the next start checks the graph again", manifest.name)
    return None


def _batchable(manifest: Manifest, session: Any) -> bool:
    """Whether one run can carry several images (see :attr:`LoadedModel.batchable`)."""
    layout = manifest.input.layout
    if "N" not in layout or manifest.constants:
        return False
    image = next(arg for arg in session.get_inputs() if arg.name == manifest.input.name)
    if isinstance(image.shape[layout.index("N")], int):
        return False
    for output in session.get_outputs():
        if not str(output.type).startswith("tensor(") or not output.shape or isinstance(output.shape[0], int):
            return False
    return True


def check_signature(manifest: Manifest, session: Any) -> tuple[tuple[int | None, int | None], dict[str, np.ndarray]]:
    """Check the manifest against the graph; return the fixed H/W and the constant feeds.

    Raises:
        ModelLoadError: Naming the mismatch.
    """
    spec = manifest.input
    inputs = {arg.name: arg for arg in session.get_inputs()}
    outputs = [arg.name for arg in session.get_outputs()]

    def fail(message: str) -> ModelLoadError:
        return ModelLoadError(f"Model {manifest.name!r}: {message}")

    if spec.name not in inputs:
        raise fail(f"input {spec.name!r} is not an input of the graph (it has {sorted(inputs)})")
    arg = inputs[spec.name]
    declared = ONNX_TYPES.get(arg.type)
    if declared != spec.dtype:
        raise fail(f"input {spec.name!r} is {arg.type} in the graph but the manifest says {spec.dtype}")
    shape = list(arg.shape)
    if len(shape) != _RANK[spec.layout]:
        raise fail(f"input {spec.name!r} has rank {len(shape)}; layout {spec.layout} needs {_RANK[spec.layout]}")
    dims = dict(zip(spec.layout, shape))
    if "N" in dims and isinstance(dims["N"], int) and dims["N"] != 1:
        raise fail(f"input {spec.name!r} has a fixed batch of {dims['N']}; 1 or dynamic is needed")
    if "C" in dims and isinstance(dims["C"], int) and dims["C"] != spec.channels:
        raise fail(f"input {spec.name!r} has {dims['C']} channels in the graph; the manifest says {spec.channels}")
    fixed_h = dims["H"] if isinstance(dims.get("H"), int) else None
    fixed_w = dims["W"] if isinstance(dims.get("W"), int) else None
    if spec.size and ((fixed_h and fixed_h != spec.size[0]) or (fixed_w and fixed_w != spec.size[1])):
        raise fail(f"input.size {list(spec.size)} contradicts the graph's fixed size {[fixed_h, fixed_w]}")

    constants: dict[str, np.ndarray] = {}
    for name in inputs:
        if name == spec.name:
            continue
        if name not in manifest.constants:
            raise fail(f"graph input {name!r} is neither the image input nor a manifest constant")
        c = manifest.constants[name]
        try:
            constants[name] = np.asarray(c.value, dtype=np.dtype(c.dtype)).reshape(c.shape)
        except (TypeError, ValueError) as err:
            raise fail(f"constant {name!r} does not match its dtype and shape") from err
    unknown = set(manifest.constants) - set(inputs)
    if unknown:
        raise fail(f"constants {sorted(unknown)} are not inputs of the graph")
    if manifest.postprocess.output and manifest.postprocess.output not in outputs:
        raise fail(f"postprocess.output {manifest.postprocess.output!r} is not an output (it has {outputs})")
    return (fixed_h, fixed_w), constants


def _describe_arg(arg: Any) -> dict[str, Any]:
    dtype = ONNX_TYPES.get(arg.type)
    return {
        "name": arg.name,
        "datatype": OIP_DATATYPES.get(dtype, arg.type) if dtype else arg.type,
        "shape": [d if isinstance(d, int) else -1 for d in (arg.shape or [])],
        "onnx_type": arg.type,
    }
