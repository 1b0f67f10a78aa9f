"""The requirement marker end to end: a real pytest run writes the IDs into its JUnit XML, and the gate
judges that run (a failing verifying test fails its risk control)."""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET  # nosec B405  # the XML our own pytest run writes

import pytest

from compliance.gate import run_gate
from tests.compliance.fixture_repo import REPO, TODAY, FixtureRepo, checks

pytestmark = pytest.mark.requirement("REQ-REG-001")

PYPROJECT = """[tool.pytest.ini_options]
addopts = "--strict-markers -p no:cacheprovider"
markers = ["requirement(*ids): requirements this test verifies"]
junit_family = "xunit1"
"""


def run_pytest(root) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(  # nosec B603  # pytest on a fixture, fixed arguments
        [sys.executable, "-m", "pytest", "-q", "--junitxml", str(root / "junit.xml"), "tests"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_a_real_pytest_run_records_requirements_and_the_gate_judges_it(tmp_path):
    repo = FixtureRepo(tmp_path / "repo")
    (repo.root / "pyproject.toml").write_text(PYPROJECT)
    (repo.root / "conftest.py").write_text((REPO / "conftest.py").read_text())  # loads compliance.pytest_plugin

    done = run_pytest(repo.root)
    assert done.returncode == 0, done.stdout + done.stderr
    cases = {case.get("name"): sorted(p.get("value") for p in case.iter("property"))
             for case in ET.parse(repo.root / "junit.xml").getroot().iter("testcase")}  # nosec B314  # own JUnit
    assert cases == {"test_secure": ["REQ-FUNC-001", "REQ-SEC-001"], "test_functional": ["REQ-FUNC-001"]}
    assert run_gate(repo.root, repo.root / "junit.xml", today=TODAY).passed

    source = repo.root / "tests" / "test_app.py"
    source.write_text(source.read_text().replace("def test_secure():\n    assert True",
                                                 "def test_secure():\n    assert False"))
    assert run_pytest(repo.root).returncode == 1
    found = checks(run_gate(repo.root, repo.root / "junit.xml", today=TODAY))
    assert ("control-failed", "RC-001-1") in found
    assert ("threat-unverified", "TB-1-S") in found
