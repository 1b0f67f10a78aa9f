"""Start and stop the two servers under test, read their memory and thread counts from /proc."""

from __future__ import annotations

import http.client
import os
import socket
# bandit: only fixed, local commands (servers, wrk, node, git)
import subprocess  # nosec B404  # starts the servers under test with fixed arguments
import sys
import time
from pathlib import Path

from .models import ROOT

LOCAL_ENV = {"MEDAI_ENVIRONMENT": "local", "MEDAI_AUTH_MODE": "none"}
INFER_PATH = "/api/v1/models/{model}/infer"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (kB) and Threads of a process, from /proc/PID/status (Linux)."""
    wanted = {"VmRSS", "VmHWM", "Threads"}
    values: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as handle:
        for line in handle:
            key, _, rest = line.partition(":")
            if key in wanted:
                values[key] = int(rest.split()[0])
    return values


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, from /proc/PID/stat (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_quiet(pid: int, *, window_s: float = 0.2, busy_cores: float = 0.05, timeout_s: float = 10.0) -> float:
    """Wait until a server has finished the work a load generator left it (requests still queued
    when wrk stopped), so it does not compete with the next round on another server.

    Returns:
        Seconds waited.
    """
    started = time.monotonic()
    before = process_cpu_s(pid)
    while time.monotonic() - started < timeout_s:
        time.sleep(window_s)
        now = process_cpu_s(pid)
        if (now - before) / window_s < busy_cores:
            break
        before = now
    return time.monotonic() - started


def rss_kb(pid: int) -> int:
    """Resident set size of a process in kB."""
    return proc_status(pid)["VmRSS"]


class Server:
    """A server process on a free 127.0.0.1 port, stdout and stderr to a log file.

    Args:
        kind: ``service`` (``python -m service``) or ``peer`` (``python -m bench.peer_server``).
        models_dir: The models directory served.
        models: Names to serve (all when empty).
        log_dir: Where ``<kind>-<port>.log`` is written.
        extra_env: Further environment variables (e.g. ``MEDAI_ORT_INTRA_OP_THREADS``) for the service.
    """

    def __init__(
        self,
        kind: str,
        models_dir: Path,
        *,
        models: list[str] | None = None,
        log_dir: Path,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.kind = kind
        self.port = free_port()
        self.host = "127.0.0.1"
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if kind == "service":
            env.update(LOCAL_ENV)
            env["MEDAI_MODELS_DIR"] = str(models_dir)
            if models:
                env["MEDAI_MODELS"] = ",".join(models)
                env["MEDAI_DEFAULT_MODEL"] = models[0]
            env.update(extra_env or {})
            argv = [sys.executable, "-m", "service", "--port", str(self.port)]
        elif kind == "peer":
            argv = [sys.executable, "-m", "bench.peer_server", "--port", str(self.port)]
            argv += ["--models-dir", str(models_dir)]
            if models:
                argv += ["--models", ",".join(models)]
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{kind}-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(  # nosec B603  # our own modules, fixed arguments, no shell
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def ready_path(self) -> str:
        return "/api/v1/health/ready" if self.kind == "service" else "/health"

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Block until the readiness route answers 200; return seconds since the process started.

        Raises:
            RuntimeError: The process exited.
            TimeoutError: Not ready within ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} exited with {self.process.returncode}; see {self.log_path}")
            try:
                connection = http.client.HTTPConnection(self.host, self.port, timeout=5)
                connection.request("GET", self.ready_path)
                status = connection.getresponse().status
                connection.close()
                if status == 200:
                    return time.perf_counter() - self.started
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"{self.kind} not ready after {timeout} s; see {self.log_path}")

    def stop(self) -> None:
        """Terminate the process (SIGTERM, then SIGKILL after 10 s) and close its log."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()


def post(host: str, port: int, path: str, body: bytes, media_type: str, timeout: float = 60.0) -> tuple[int, bytes]:
    """One POST on a fresh connection; (status, body)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("POST", path, body=body, headers={"Content-Type": media_type})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()
