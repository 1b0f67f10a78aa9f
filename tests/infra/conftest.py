"""Fixtures of the infrastructure tests: the emitted Bicep parsed back by an independent parser."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pycep import BicepParser

REPO = Path(__file__).resolve().parents[2]
BICEP_DIR = REPO / "infra" / "bicep"
K8S_DIR = REPO / "infra" / "k8s"

Parsed = dict[str, Any]


def _parse(path: Path) -> Parsed:
    return BicepParser().parse(text=path.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def main_bicep() -> Parsed:
    """``infra/bicep/main.bicep`` as parsed by pycep-parser (not the Python objects that produced it)."""
    return _parse(BICEP_DIR / "main.bicep")


@pytest.fixture(scope="session")
def data_access_bicep() -> Parsed:
    """``infra/bicep/modules/data-access.bicep``, parsed."""
    return _parse(BICEP_DIR / "modules" / "data-access.bicep")


@pytest.fixture(scope="session")
def eventgrid_bicep() -> Parsed:
    """``infra/bicep/eventgrid.bicep``, parsed."""
    return _parse(BICEP_DIR / "eventgrid.bicep")


@pytest.fixture(scope="session")
def of_type() -> Callable[[Parsed, str], list[dict[str, Any]]]:
    """Resources of one type in a parsed file (their ``config``, with the symbol added as ``_symbol``)."""

    def find(parsed: Parsed, resource_type: str) -> list[dict[str, Any]]:
        found = []
        for symbol, res in parsed["resources"].items():
            if res["type"] == resource_type:
                found.append({**res["config"], "_symbol": symbol, "_api": res["api_version"],
                              "_existing": res["existing"]})
        return found

    return find
