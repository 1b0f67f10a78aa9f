"""Write generated files and detect drift between the generator and the committed files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .bicep_render import render_parameters, render_template
from .system.eventgrid import EVENTGRID_TEMPLATE
from .system.main import MAIN_TEMPLATE, PARAMETER_VALUES

PACKAGE_DIR = Path(__file__).resolve().parent
BICEP_DIR = PACKAGE_DIR / "bicep"
K8S_DIR = PACKAGE_DIR / "k8s"


def bicep_files() -> dict[str, str]:
    """Every Bicep output, keyed by path relative to the Bicep directory, in a stable order."""
    files = {
        "main.bicep": render_template(MAIN_TEMPLATE),
        "main.parameters.json": render_parameters(MAIN_TEMPLATE, PARAMETER_VALUES),
        "eventgrid.bicep": render_template(EVENTGRID_TEMPLATE),
    }
    for module in MAIN_TEMPLATE.modules:
        files.setdefault(module.path, render_template(module.template))
    return dict(sorted(files.items()))


def write_files(files: Mapping[str, str], out_dir: Path) -> list[Path]:
    """Write files under ``out_dir`` (LF line endings, UTF-8) and return their paths."""
    written = []
    for rel, text in files.items():
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


def drift(files: Mapping[str, str], out_dir: Path, pattern: str) -> list[str]:
    """Differences between freshly generated files and what is on disk.

    Args:
        files: Generated content keyed by relative path.
        out_dir: Directory holding the committed files.
        pattern: Glob of the generated file kinds, to find stale files the generator no longer makes.

    Returns:
        One line per missing, changed or stale file; empty when in sync.
    """
    problems = []
    for rel, text in files.items():
        path = out_dir / rel
        if not path.is_file():
            problems.append(f"missing: {path}")
        elif path.read_bytes() != text.encode("utf-8"):
            problems.append(f"changed: {path}")
    expected = {(out_dir / rel).resolve() for rel in files}
    for path in sorted(out_dir.rglob(pattern)) if out_dir.is_dir() else []:
        if path.resolve() not in expected:
            problems.append(f"stale: {path}")
    return problems
