"""Traceability: requirements, risk controls, threats and software items joined to tests and results.

Used by the committed documents (links only) and by the gate and the per-run reports (links and the
results of one JUnit run).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property

from .findings import Finding
from .junit import FAILED, NOT_RUN, PASSED
from .model import ComplianceData, Control, Mitigation
from .repo import covers
from .testlinks import TestFunction, tests_by_requirement

VERIFIED, FAILED_CONTROL, UNVERIFIED = "verified", "failed", "unverified"


@dataclass(frozen=True)
class Trace:
    """The links between data, code and tests of one repository state."""

    data: ComplianceData
    tests: Mapping[str, TestFunction]
    software_items: tuple[str, ...]

    @cached_property
    def by_requirement(self) -> dict[str, list[str]]:
        """Requirement ID -> verifying test keys (declared IDs only, including unknown ones)."""
        return tests_by_requirement(dict(self.tests))

    def tests_for(self, requirement: str) -> list[str]:
        return self.by_requirement.get(requirement, [])

    def controls_for(self, requirement: str) -> list[str]:
        """The risk controls a requirement implements."""
        return [c.id for _, c in self.data.controls if requirement in c.requirements]

    def requirements_for_item(self, item: str) -> list[str]:
        """The requirements whose modules cover a software item."""
        return [r.id for r in self.data.requirements if any(covers(m, item) for m in r.modules)]

    def linked_tests(self) -> list[str]:
        """Test keys that declare at least one requirement."""
        return [key for key, test in self.tests.items() if test.requirements]

    def control_status(self, control: Control, results: Mapping[str, str]) -> tuple[str, list[str]]:
        """Whether a control was verified by the run: every implementing requirement has a passed test
        and none of their tests failed.

        Returns:
            (verified, failed or unverified, the tests or requirements responsible).
        """
        failed = sorted({t for r in control.requirements for t in self.tests_for(r) if results.get(t) == FAILED})
        if failed:
            return FAILED_CONTROL, failed
        unverified = [r for r in control.requirements
                      if not any(results.get(t) == PASSED for t in self.tests_for(r))]  # fmt: skip
        return (UNVERIFIED, unverified) if unverified else (VERIFIED, [])

    def mitigation_status(self, mitigation: Mitigation, results: Mapping[str, str]) -> tuple[str, list[str]]:
        """Whether every test a threat mitigation names exists and passed."""
        missing = [t for t in mitigation.tests if t not in self.tests]
        if missing:
            return UNVERIFIED, missing
        bad = [t for t in mitigation.tests if results.get(t, NOT_RUN) != PASSED]
        if any(results.get(t) == FAILED for t in bad):
            return FAILED_CONTROL, bad
        return (UNVERIFIED, bad) if bad else (VERIFIED, [])


def check_links(trace: Trace) -> list[Finding]:
    """Checks that need no test run: every requirement tested, every ID known, every item traced."""
    data = trace.data
    findings = []
    known = data.requirement_ids
    for requirement in data.requirements:
        if not trace.tests_for(requirement.id):
            findings.append(Finding("requirement-untested", requirement.id,
                                    "no test declares @pytest.mark.requirement for it"))
    for key, test in trace.tests.items():
        for requirement in test.requirements:
            if requirement not in known:
                findings.append(Finding("unknown-id", key, f"declares unknown requirement {requirement}"))
    implementing = {r for _, c in data.controls for r in c.requirements}
    for requirement in data.requirements:
        if requirement.id in implementing and not requirement.safety_relevant:
            findings.append(Finding("data", requirement.id,
                                    f"implements risk control(s) {', '.join(trace.controls_for(requirement.id))} "
                                    "but is not marked safety_relevant"))
    for _, control in data.controls:
        if not control.requirements:
            findings.append(Finding("control-unverified", control.id, "names no requirement"))
    for item in trace.software_items:
        if not trace.requirements_for_item(item):
            findings.append(Finding("software-item-untraced", item,
                                    "is deployed but no requirement names it (or its directory) in modules"))
    for boundary in data.boundaries:
        for threat in boundary.threats:
            for mitigation in threat.mitigations:
                for test in mitigation.tests:
                    if test not in trace.tests:
                        findings.append(Finding("threat-unverified", threat.id,
                                                f"names test {test}, which does not exist"))
    return findings


def check_results(trace: Trace, results: Mapping[str, str]) -> list[Finding]:
    """Checks of one run: every risk control and threat mitigation verified by passed tests."""
    findings = []
    for risk, control in trace.data.controls:
        status, detail = trace.control_status(control, results)
        if status == FAILED_CONTROL:
            findings.append(Finding("control-failed", control.id,
                                    f"({risk.id}) verifying test(s) failed: {', '.join(detail)}"))
        elif status == UNVERIFIED:
            findings.append(Finding("control-unverified", control.id,
                                    f"({risk.id}) no passed test in this run for {', '.join(detail)}"))
    for boundary in trace.data.boundaries:
        for threat in boundary.threats:
            for mitigation in threat.mitigations:
                status, detail = trace.mitigation_status(mitigation, results)
                if status == FAILED_CONTROL:
                    findings.append(Finding("threat-unverified", threat.id, f"test(s) failed: {', '.join(detail)}"))
                elif status == UNVERIFIED and all(t in trace.tests for t in mitigation.tests):
                    findings.append(Finding("threat-unverified", threat.id,
                                            f"test(s) did not pass in this run: {', '.join(detail)}"))
    return findings
