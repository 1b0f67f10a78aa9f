"""Fixtures for the pipeline tests: the workflows as data, loaded with PyYAML."""

from __future__ import annotations

from typing import Any

import pytest
from workflow_data import WORKFLOWS, load_workflow


@pytest.fixture(scope="session")
def ci() -> dict[str, Any]:
    return load_workflow(WORKFLOWS / "ci.yml")


@pytest.fixture(scope="session")
def deploy() -> dict[str, Any]:
    return load_workflow(WORKFLOWS / "deploy.yml")


@pytest.fixture(scope="session")
def workflows(ci: dict[str, Any], deploy: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"ci.yml": ci, "deploy.yml": deploy}
