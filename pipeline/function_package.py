"""Build the code package published to the Function App.

The package holds exactly the app's code and the bundled models at its root,
next to ``host.json`` (what the Functions host and Flex Consumption expect):
``function_app.py host.json requirements.txt inference/ security/ service/
models/``. Dependencies are not vendored: the deployment asks for a remote
build, which installs ``requirements.txt`` on the platform's own Linux image.
Tests, tooling, local settings and caches never enter the package.

The archive is reproducible: entries are sorted and carry a fixed timestamp,
so the same commit always gives the same bytes (and the same SHA-256, which
the workflow logs).

Usage::

    python -m pipeline.function_package --out build/functionapp.zip
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Final

APP_FILES: Final = ("function_app.py", "host.json", "requirements.txt")
APP_DIRS: Final = ("inference", "security", "service", "models")
"""The Function App's code: the contract of issue 6 (``function_app.py host.json requirements.txt
inference/ security/ service/ models/``)."""

_EXCLUDED_PARTS: Final = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache"})
_EXCLUDED_SUFFIXES: Final = frozenset({".pyc", ".pyo"})
_EXCLUDED_NAMES: Final = frozenset({"local.settings.json", ".DS_Store"})
_FIXED_TIME: Final = (1980, 1, 1, 0, 0, 0)
"""The earliest timestamp a zip entry can hold: makes the archive independent of checkout times."""


def package_files(root: Path) -> Iterator[tuple[Path, str]]:
    """Yield ``(path, archive name)`` for every file of the package, sorted by archive name.

    Raises:
        FileNotFoundError: one of :data:`APP_FILES` or :data:`APP_DIRS` is missing.
    """
    entries: list[tuple[Path, str]] = []
    for name in APP_FILES:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"function app file missing: {name}")
        entries.append((path, name))
    for name in APP_DIRS:
        directory = root / name
        if not directory.is_dir():
            raise FileNotFoundError(f"function app directory missing: {name}/")
        for path in directory.rglob("*"):
            relative = path.relative_to(root)
            if not path.is_file() or _EXCLUDED_PARTS.intersection(relative.parts):
                continue
            if path.suffix in _EXCLUDED_SUFFIXES or path.name in _EXCLUDED_NAMES:
                continue
            entries.append((path, relative.as_posix()))
    yield from sorted(entries, key=lambda entry: entry[1])


def build_package(root: Path, out: Path) -> str:
    """Write the package to ``out`` and return its SHA-256 (hex)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, name in package_files(root):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return hashlib.sha256(out.read_bytes()).hexdigest()


def main(argv: Sequence[str] | None = None) -> int:
    """Build the package; print its path and SHA-256."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."), help="repository root (default: .)")
    parser.add_argument("--out", type=Path, required=True, help="zip file to write")
    args = parser.parse_args(argv)
    digest = build_package(args.root, args.out)
    print(f"{args.out} sha256:{digest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
