"""The compliance package is a development and CI tool: nothing deployed imports or ships it."""

from __future__ import annotations

import ast
import zipfile

import pytest

from compliance.repo import software_items
from pipeline.function_package import build_package
from tests.compliance.fixture_repo import REPO

pytestmark = pytest.mark.requirement("REQ-REG-006")


def test_no_deployed_module_imports_compliance():
    items = software_items(REPO)
    assert "function_app.py" in items and "inference/engine.py" in items
    for item in items:
        tree = ast.parse((REPO / item).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n == "compliance" or n.startswith("compliance.") for n in names), item


def test_neither_the_function_package_nor_the_image_contains_it(tmp_path):
    build_package(REPO, tmp_path / "app.zip")
    with zipfile.ZipFile(tmp_path / "app.zip") as archive:
        assert not [n for n in archive.namelist() if n.startswith("compliance/") or n == "conftest.py"]
    assert "compliance" in (REPO / ".dockerignore").read_text().split()
    assert not [line for line in (REPO / "Dockerfile").read_text().splitlines()
                if line.startswith("COPY") and "compliance" in line]  # fmt: skip
