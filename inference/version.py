"""What is running: package version, commit, library and model versions."""

from __future__ import annotations

import platform
import re
from importlib import metadata
from pathlib import Path
from typing import Any

from . import __version__
from .settings import PROJECT_ROOT, Settings

_RUNTIME_PACKAGES = ("onnxruntime", "numpy", "pillow", "pydicom", "python-gdcm")
_SHA = re.compile(r"^[0-9a-f]{40}$")


def git_commit(settings: Settings, root: Path = PROJECT_ROOT) -> str | None:
    """The commit: ``MEDAI_GIT_COMMIT`` when the pipeline set it, else read from ``.git`` without git."""
    if settings.git_commit:
        return settings.git_commit
    git = root / ".git"
    try:
        head = (git / "HEAD").read_text(encoding="ascii").strip()
        if head.startswith("ref: "):
            ref = head[5:]
            ref_file = git / ref
            if ref_file.is_file():
                head = ref_file.read_text(encoding="ascii").strip()
            else:
                packed = (git / "packed-refs").read_text(encoding="ascii")
                head = next((line.split()[0] for line in packed.splitlines() if line.endswith(" " + ref)), "")
        return head if _SHA.match(head) else None
    except (OSError, StopIteration):
        return None


def runtime_versions() -> dict[str, Any]:
    """Versions of Python and the libraries that compute results."""
    versions: dict[str, Any] = {"python": platform.python_version()}
    for name in _RUNTIME_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def version_info(settings: Settings, models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``GET /version`` document."""
    return {
        "service": "medai-flow",
        "version": __version__,
        "git_commit": git_commit(settings),
        "models": {name: {"version": m["version"], "sha256": m["sha256"]} for name, m in models.items()},
        "runtime": runtime_versions(),
    }
