"""Native decoders that can abort the process run in a child process.

GDCM (the decoder for JPEG Lossless, JPEG-LS and 12-bit JPEG DICOM) is C++: on
some malformed codestreams it throws an exception that nothing converts to a
Python error, and ``std::terminate`` aborts the whole process: the server, every
request in flight, and the batch worker. A crafted upload must not be able to do
that, so every decode that would go through GDCM runs in a separate Python
process (``python -m inference.isolation``), kept warm and reused. If it dies or
hangs, only that request fails (422 ``corrupt_pixel_data``) and a fresh child
replaces it.

The protocol on the child's stdin/stdout is length-prefixed pickles. Pickle is
safe here because both ends are this module: the child is our own process,
started with fixed arguments, and reads only what the parent writes.
"""

from __future__ import annotations

import io
import pickle  # nosec B403  # both ends of the pipe are this module (see the docstring)
import select
import struct
import subprocess  # nosec B404  # starts this module as a child with fixed arguments
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_HEADER = struct.Struct("<Q")
DEFAULT_TIMEOUT_S = 30.0


class ChildFailure(Exception):
    """The child died, hung, or the decoder raised inside it."""


def _send(stream: Any, obj: Any) -> None:
    payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def _read_exactly(stream: Any, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            raise EOFError("the pipe closed")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _receive(stream: Any) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, size))  # nosec B301  # written by our own child process


class _Child:
    """One warm child process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(  # nosec B603  # this interpreter running this module, no shell
            [sys.executable, "-m", "inference.isolation"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # native decoders write diagnostics there; nothing of them is needed
            close_fds=True,
        )
        _send(self.process.stdin, list(sys.path))  # the child imports exactly what this process imports

    def call(self, request: Any, timeout_s: float) -> Any:
        _send(self.process.stdin, request)
        ready, _, _ = select.select([self.process.stdout], [], [], timeout_s)
        if not ready:
            raise ChildFailure(f"the decoder did not answer within {timeout_s:.0f} s")
        status, value = _receive(self.process.stdout)
        if status == "error":
            raise ChildFailure(value)
        return value

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


class IsolatedDecoder:
    """A small pool of warm child processes decoding DICOM pixel data.

    Args:
        size: Children kept (at most this many decodes at once).
        timeout_s: Longest a decode may take before its child is killed.
    """

    def __init__(self, size: int = 2, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self._size = size
        self._timeout_s = timeout_s
        self._idle: list[_Child] = []
        self._slots = threading.BoundedSemaphore(size)
        self._lock = threading.Lock()

    @contextmanager
    def _child(self) -> Iterator[_Child]:
        with self._slots:
            with self._lock:
                child = self._idle.pop() if self._idle else None
            if child is None or child.process.poll() is not None:
                child = _Child()
            healthy = False
            try:
                yield child
                healthy = True
            finally:
                if healthy:
                    with self._lock:
                        self._idle.append(child)
                else:
                    child.kill()

    def decode(self, data: bytes, index: int | None, plugin: str) -> tuple[Any, dict[str, Any]]:
        """Decode frame ``index`` (None: all) of the DICOM file ``data`` with ``plugin``.

        Raises:
            ChildFailure: The decoder raised, crashed the child, or timed out.
        """
        try:
            with self._child() as child:
                return child.call((data, index, plugin), self._timeout_s)  # type: ignore[no-any-return]
        except (EOFError, OSError, struct.error, pickle.UnpicklingError) as err:
            raise ChildFailure("the decoder process ended abruptly") from err

    def close(self) -> None:
        """Stop every idle child."""
        with self._lock:
            children, self._idle = self._idle, []
        for child in children:
            child.kill()


def _decode(data: bytes, index: int | None, plugin: str) -> tuple[Any, dict[str, Any]]:
    import warnings

    import pydicom
    from pydicom.pixels import get_decoder

    warnings.filterwarnings("ignore")
    ds = pydicom.dcmread(io.BytesIO(data))
    decoder = get_decoder(ds.file_meta.TransferSyntaxUID)
    return decoder.as_array(ds, index=index, as_rgb=True, decoding_plugin=plugin)  # type: ignore[no-any-return]


def _serve() -> None:
    """The child's loop: read a request, decode, answer; until stdin closes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write on the protocol's stream
    sys.path[:0] = [p for p in _receive(stdin) if p not in sys.path]
    while True:
        try:
            data, index, plugin = _receive(stdin)
        except EOFError:
            return
        try:
            answer = ("ok", _decode(data, index, plugin))
        except Exception as err:  # reported to the parent, which maps it to corrupt_pixel_data
            answer = ("error", type(err).__name__)
        _send(stdout, answer)


if __name__ == "__main__":
    _serve()
