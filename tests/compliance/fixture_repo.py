"""A small repository the compliance gate passes on, to break one thing at a time.

It holds two requirements, one risk with one control, a SOUP overlay for one real installed package
(PyYAML, so its licence comes from real metadata), a threat model with one boundary, two test
functions with requirement markers, the real document templates, and JUnit XML written the way pytest
writes it (xunit1, a ``file`` attribute, ``requirement`` properties).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import yaml

from compliance.documents import build_documents, collect, write_documents
from compliance.gate import GateResult, run_gate
from compliance.testlinks import TestFunction

REPO = Path(__file__).resolve().parents[2]
TODAY = dt.date(2026, 12, 3)
YAML_VERSION = metadata.version("PyYAML")

TEST_SOURCE = '''import pytest

pytestmark = pytest.mark.requirement("REQ-FUNC-001")


@pytest.mark.requirement("REQ-SEC-001")
def test_secure():
    assert True


def test_functional():
    assert True
'''
SECURE = "tests/test_app.py::test_secure"
FUNCTIONAL = "tests/test_app.py::test_functional"
STRIDE = ("Spoofing", "Tampering", "Repudiation", "Information disclosure", "Denial of service",
          "Elevation of privilege")  # fmt: skip


def _real(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "compliance" / "data" / name).read_text(encoding="utf-8"))


def base_data() -> dict[str, Any]:
    """The fixture's data files, as Python objects (edit, then :meth:`FixtureRepo.write_data`)."""
    risks = _real("risks.yaml")
    return {
        "requirements.yaml": {"requirements": [
            {"id": "REQ-FUNC-001", "title": "Works", "text": "It shall work.", "rationale": "Users need it.",
             "category": "functional", "safety_relevant": False, "safety_note": "None.", "modules": ["app/core.py"]},
            {"id": "REQ-SEC-001", "title": "Closed", "text": "It shall refuse strangers.", "rationale": "PHI.",
             "category": "security", "safety_relevant": True, "safety_note": "Access.", "modules": ["app"]},
        ]},  # fmt: skip
        "risks.yaml": {
            "scales": risks["scales"],
            "acceptability": risks["acceptability"],
            "risks": [{
                "id": "RISK-001", "hazard": "Strangers get in", "cause": "No check.",
                "hazardous_situation": "A stranger reads results.", "harm": "Disclosure.",
                "severity": 2, "probability_before": 4, "probability_after": 1,
                "controls": [{"id": "RC-001-1", "type": "protective measure", "measure": "Check callers.",
                              "requirements": ["REQ-SEC-001"]}],
            }],
        },  # fmt: skip
        "classification.yaml": {
            "software_system": "Fixture", "declared_class": "B", "intended_use": "Tests.",
            "external_risk_controls": [{"id": "EXT-1", "measure": "Review."}],
            "rationale": "Non-serious harm only.", "revisit_when": "Never.",
        },  # fmt: skip
        "soup.yaml": {
            "review": {"interval_days": 180, "method": "Offline.", "licence_deny": ["GPL", "AGPL"]},
            "packages": {"pyyaml": {
                "purpose": "Reads YAML.", "requirements": ["REQ-FUNC-001"], "risks": [], "risk_notes": "None.",
                "reviewed_version": YAML_VERSION, "reviewed_on": TODAY, "anomalies": "None relevant.",
            }},
        },  # fmt: skip
        "threats.yaml": {"boundaries": [{
            "id": "TB-1", "name": "client -> app", "description": "Callers.",
            "threats": [{"id": f"TB-1-{s[0]}", "stride": s, "threat": f"{s} of the app.",
                         "mitigations": [{"measure": "Check.", "requirements": ["REQ-SEC-001"], "tests": [SECURE]}]}
                        for s in STRIDE],
        }]},  # fmt: skip
        "iec62304.yaml": {"clauses": [
            {"clause": "5.2", "title": "Requirements", "classes": ["A", "B", "C"], "kind": "repository",
             "evidence": "requirements.yaml"},
            {"clause": "5.4.2", "title": "Detailed design", "classes": ["C"], "kind": "repository", "evidence": "-"},
        ]},  # fmt: skip
        "design_controls.yaml": {"elements": [
            {"cfr": "820.30(c)", "iso": "7.3.3", "element": "Design inputs", "record": "requirements.yaml",
             "figures": ["requirements"]},
        ]},  # fmt: skip
    }


class FixtureRepo:
    """A fixture repository on disk, with helpers to break it and to judge it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = base_data()
        (root / "app").mkdir(parents=True)
        (root / "app" / "core.py").write_text("VALUE = 1\n")
        (root / "tests").mkdir()
        (root / "tests" / "test_app.py").write_text(TEST_SOURCE)
        shutil.copytree(REPO / "compliance" / "templates", root / "compliance" / "templates")
        self.write_pins({"pyyaml": YAML_VERSION})
        self.write_data()
        self.generate()
        self.outcomes: dict[str, str] = {SECURE: "passed", FUNCTIONAL: "passed"}

    def write_data(self) -> None:
        directory = self.root / "compliance" / "data"
        directory.mkdir(parents=True, exist_ok=True)
        for name, content in self.data.items():
            (directory / name).write_text(yaml.safe_dump(content, sort_keys=False))

    def edit(self, name: str) -> dict[str, Any]:
        """A data file to change in place (call :meth:`write_data` after)."""
        return self.data[name]

    def write_pins(self, pins: dict[str, str]) -> None:
        lines = ["# fixture pins"]
        for name, version in sorted(pins.items()):
            lines += [f"{name}=={version}", "    # via -r requirements.in"]
        (self.root / "requirements.txt").write_text("\n".join(lines) + "\n")

    def generate(self) -> None:
        """Regenerate the committed documents, as a developer does after a change."""
        ctx, _ = collect(self.root)
        write_documents(self.root, build_documents(ctx))

    def junit(self, outcomes: dict[str, str] | None = None, properties: dict[str, list[str]] | None = None) -> Path:
        """JUnit XML for the fixture's tests (default: both passed); see :func:`write_junit`."""
        ctx, _ = collect(self.root)
        return write_junit(self.root / "junit.xml", ctx.trace.tests, self.outcomes if outcomes is None else outcomes,
                           properties)

    def gate(self, **junit: Any) -> GateResult:
        return run_gate(self.root, self.junit(**junit), today=TODAY)


def write_junit(
    path: Path,
    tests: Mapping[str, TestFunction],
    outcomes: Mapping[str, str],
    properties: Mapping[str, list[str]] | None = None,
) -> Path:
    """JUnit XML as pytest writes it (xunit1): one case per test key, with its ``requirement`` properties.

    Args:
        path: Where to write.
        tests: The static index, for each key's declared requirements.
        outcomes: Test key -> passed, failed or skipped.
        properties: Requirement properties to write instead of the declared ones, per key.
    """
    cases = []
    for key, outcome in outcomes.items():
        file, _, name = key.partition("::")
        declared = list(tests[key].requirements) if key in tests else []
        props = "".join(f'<property name="requirement" value="{r}" />' for r in (properties or {}).get(key, declared))
        body = {"passed": "", "failed": '<failure message="assert False">boom</failure>',
                "skipped": '<skipped type="pytest.skip" message="skip">skip</skipped>'}[outcome]  # fmt: skip
        classname = file[:-3].replace("/", ".")
        cases.append(f"<testcase classname={quoteattr(classname)} name={quoteattr(name)} file={quoteattr(file)} "
                     'line="1" time="0.01">' + (f"<properties>{props}</properties>" if props else "") + body
                     + "</testcase>")
    failures = sum(1 for o in outcomes.values() if o == "failed")
    skipped = sum(1 for o in outcomes.values() if o == "skipped")
    path.write_text('<?xml version="1.0" encoding="utf-8"?><testsuites name="pytest tests"><testsuite name="pytest" '
                    f'errors="0" failures="{failures}" skipped="{skipped}" tests="{len(outcomes)}" time="0.1" '
                    'timestamp="2026-12-03T10:00:00+00:00">' + "".join(cases) + "</testsuite></testsuites>")
    return path


def checks(result: GateResult) -> set[tuple[str, str]]:
    """(check, subject) of every finding, for exact assertions."""
    return {(f.check, f.subject) for f in result.findings}
