"""Serve the HTTP application locally with uvicorn, at the URLs the Functions host uses.

    python -m service                 # http://127.0.0.1:7071/api/v1/...
    python -m service --port 8080 --workers 2

The application is built by :func:`service.http_app.create_app`, the factory
``function_app.py`` hands to ``func.AsgiFunctionApp``.
"""

from __future__ import annotations

import argparse
import sys

NO_UVICORN = (
    "error: uvicorn is not installed. The local server is not part of the Function App's runtime "
    "(requirements.txt): pip install -r requirements.txt -r requirements-serve.txt, or run make serve."
)


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=7071, help="port (default 7071, as func start)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    args = parser.parse_args(argv)

    from .local import app

    options = {
        "host": args.host,
        "port": args.port,
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,
        "server_header": False,
    }
    from inference.errors import ServiceError

    if not _installed("uvicorn"):  # looked up, not imported: the import waits until the models load
        print(NO_UVICORN, file=sys.stderr)
        return 2
    try:
        application = app() if args.workers == 1 else None  # a bad setting fails before the port is bound
        import uvicorn

        if application is not None:
            uvicorn.run(application, **options)
        else:
            uvicorn.run("service.local:app", factory=True, workers=args.workers, **options)
    except ServiceError as err:  # a bad setting or a missing secret: say which, no traceback
        print(f"error: {err.code}: {err.detail}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
