"""The Dockerfile (it cannot be built here: no Docker engine) is checked by reading it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.requirement("REQ-SEC-013")

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
INSTRUCTIONS = [
    line.strip()
    for line in re.sub(r"\\\n\s*", " ", DOCKERFILE).splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def _all(keyword: str) -> list[str]:
    return [i[len(keyword):].strip() for i in INSTRUCTIONS if i.upper().startswith(keyword + " ")]


def test_official_functions_python_311_base_image():
    assert _all("FROM") == ["mcr.microsoft.com/azure-functions/python:4-python3.11"]


def test_runs_as_a_numeric_non_root_user_on_8080():
    users = _all("USER")
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert users[-1].split(":")[0].isdigit()
    assert _all("EXPOSE") == ["8080"]
    env = " ".join(_all("ENV"))
    assert "ASPNETCORE_URLS=http://+:8080" in env
    assert "AzureWebJobsScriptRoot=/home/site/wwwroot" in env


@pytest.mark.requirement("REQ-REG-004")
def test_git_commit_build_arg_becomes_the_setting():
    assert any(a.startswith("GIT_COMMIT") for a in _all("ARG"))
    assert "MEDAI_GIT_COMMIT=${GIT_COMMIT}" in " ".join(_all("ENV"))


@pytest.mark.requirement("REQ-REG-002")
def test_installs_runtime_requirements_only_and_copies_the_app():
    copies = _all("COPY")
    assert not any("requirements-dev" in i or "requirements-serve" in i for i in INSTRUCTIONS)
    assert any(c.startswith("requirements.txt ") for c in copies)
    sources = {src for c in copies for src in c.split()[:-1]}
    assert {"function_app.py", "host.json", "inference/", "security/", "service/", "models/"} <= sources
    for src in sources:
        assert (REPO / src).exists(), src


def test_healthcheck_probes_the_liveness_route():
    assert "/api/v1/health/live" in " ".join(_all("HEALTHCHECK"))


def test_dockerignore_keeps_secrets_and_dev_files_out():
    ignored = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    for entry in (".git", ".venv", "tests", "node_modules", "reports", "local.settings.json"):
        assert entry in ignored, entry
    for needed in ("function_app.py", "host.json", "inference", "security", "service", "models", "requirements.txt"):
        assert needed not in ignored, needed
