"""The compliance gate: every check of :data:`compliance.findings.CHECKS` on one repository and one run.

:func:`run_gate` is what ``python -m compliance check`` and ``make compliance`` run after pytest; it
returns every finding rather than stopping at the first, so one CI log shows all that is missing.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from .documents import Context, build_documents, check_documents, collect
from .findings import Finding
from .junit import NOT_RUN, JunitRun, read_junit
from .release import check_models
from .risk import check_risks
from .soup import check_soup
from .trace import check_links, check_results


@dataclass(frozen=True)
class GateResult:
    """What the gate found, with what it looked at."""

    context: Context
    run: JunitRun
    findings: tuple[Finding, ...]

    @property
    def passed(self) -> bool:
        return not self.findings


def check_run(ctx: Context, run: JunitRun) -> list[Finding]:
    """Checks that the run covered what the sources declare."""
    findings = []
    results = run.function_results()
    linked = ctx.trace.linked_tests()
    if linked and run.cases and not any(case.requirements for case in run.cases):
        findings.append(Finding("junit", "requirement properties",
                                "no test case carries a requirement property: is compliance.pytest_plugin loaded "
                                "(the root conftest.py) and junit_family xunit1?"))
    for key in linked:
        if results.get(key, NOT_RUN) == NOT_RUN:
            findings.append(Finding("junit", key,
                                    "declares requirements but did not run (deselected or not collected)"))
    return findings


def run_gate(root: Path, junit: Path, *, today: dt.date) -> GateResult:
    """Run every check.

    Args:
        root: The repository root.
        junit: The JUnit XML of the test run to judge (the same ``make test``).
        today: The date the SOUP review ages are measured against.

    Returns:
        The findings, sorted by check and subject, and what was judged.
    """
    ctx, findings = collect(root)
    run, junit_findings = read_junit(junit, ctx.trace.tests)
    findings += junit_findings
    findings += check_run(ctx, run)
    findings += check_links(ctx.trace)
    findings += check_results(ctx.trace, run.function_results())
    findings += check_risks(ctx.data)
    findings += check_soup(list(ctx.soup), ctx.data.soup, today)
    findings += check_documents(root, build_documents(ctx))
    findings += check_models(ctx)
    return GateResult(ctx, run, tuple(sorted(set(findings))))
