"""The infra package only describes infrastructure: it imports nothing from the service."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.requirement("REQ-REG-006")

REPO = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("inference", "service", "security", "function_app", "azure", "fastapi", "onnxruntime")


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
    return names


def test_no_infra_module_imports_the_service():
    files = sorted((REPO / "infra").rglob("*.py"))
    assert files
    for path in files:
        for name in _imported_modules(path):
            assert name.split(".")[0] not in SERVICE_PACKAGES, f"{path.relative_to(REPO)} imports {name}"


def test_running_both_generators_loads_no_service_module(tmp_path):
    code = (
        "import sys\n"
        "from infra.__main__ import main\n"
        f"assert main(['build', '--out', {str(tmp_path / 'b')!r}]) == 0\n"
        f"assert main(['k8s', '--out', {str(tmp_path / 'k')!r}]) == 0\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {SERVICE_PACKAGES!r})\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
