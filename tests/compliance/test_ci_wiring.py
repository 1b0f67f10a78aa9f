"""The gate runs in CI after the tests it judges, on their JUnit file, and its reports are kept."""

from __future__ import annotations

import pytest

from compliance.repo import load_workflows, make_targets
from tests.compliance.fixture_repo import REPO

pytestmark = pytest.mark.requirement("REQ-REG-007", "REQ-REG-001")


def test_make_test_runs_the_gate_last_on_the_junit_file_pytest_writes():
    targets = make_targets(REPO)
    assert targets["test"].prerequisites[-2:] == ("pytest", "compliance")
    junit = "--junitxml=$(REPORTS)/junit.xml"
    assert any(junit in line for line in targets["pytest"].recipe)
    assert targets["compliance"].recipe == (
        "$(PY) -m compliance check --junit $(REPORTS)/junit.xml --out $(COMPLIANCE_REPORTS)",
    )
    assert "make test" in (REPO / ".ci" / "run").read_text()


def test_ci_keeps_the_compliance_reports_whatever_happened():
    steps = load_workflows(REPO)["ci.yml"]["jobs"]["test"]["steps"]
    runs = [step.get("run", "").strip() for step in steps]
    upload = next(s for s in steps if s.get("with", {}).get("path") == "reports/compliance/")
    assert upload["if"] == "always()"
    assert steps.index(upload) > runs.index("make test")
