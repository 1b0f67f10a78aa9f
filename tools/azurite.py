"""Start and stop Azurite, the Azure Storage emulator (npm package, ``npm ci`` installs it).

Used by the test suite and by ``make batch-demo``. Azurite is started through its
node entry point (not npx, which orphans the server when killed), with telemetry
off and the API version check skipped (the current SDK sends a newer version).
"""

from __future__ import annotations

import socket
import subprocess  # nosec B404  # starts the local storage emulator with fixed arguments
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AZURITE_JS = ROOT / "node_modules" / "azurite" / "dist" / "src" / "azurite.js"
# The emulator's fixed, publicly documented development account key; not a secret.
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="  # pragma: allowlist secret  # noqa: E501


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Block until something accepts connections on ``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


class Azurite:
    """A running Azurite with blob, queue and table services on free ports."""

    def __init__(self, location: Path) -> None:
        if not AZURITE_JS.exists():
            raise RuntimeError("Azurite is not installed: run `npm ci` (make test does it)")
        self.blob_port, self.queue_port, self.table_port = free_port(), free_port(), free_port()
        self._log = (location / "azurite.log").open("wb")
        self.process = subprocess.Popen(  # nosec B603 B607  # fixed arguments, a local test server
            [
                "node", str(AZURITE_JS), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
                "--location", str(location),
                "--blobHost", "127.0.0.1", "--blobPort", str(self.blob_port),
                "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port),
                "--tableHost", "127.0.0.1", "--tablePort", str(self.table_port),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_for_port(self.blob_port, process=self.process)
        wait_for_port(self.queue_port, process=self.process)

    @property
    def connection_string(self) -> str:
        return (
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
            f"AccountKey={AZURITE_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.blob_port}/devstoreaccount1;"
            f"QueueEndpoint=http://127.0.0.1:{self.queue_port}/devstoreaccount1;"
            f"TableEndpoint=http://127.0.0.1:{self.table_port}/devstoreaccount1;"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()
