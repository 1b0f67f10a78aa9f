"""A test run's results, read from pytest's JUnit XML and joined to the static test index.

Each ``<testcase>`` (one per parameter case) is mapped to its test function's key
(``tests/path.py::function``) from its ``file`` and ``classname`` attributes (pytest's xunit1 family)
and its name without the parameter suffix. A function's result is ``failed`` when any of its cases
failed or errored, ``passed`` when at least one passed and none failed, ``skipped`` when all were
skipped, and ``not run`` when it has no case in the file.

The ``requirement`` properties pytest wrote for each case (``compliance/pytest_plugin.py``) are
compared with the links read statically from the sources (``compliance/testlinks.py``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # nosec B405  # parses only the JUnit file our own pytest run wrote
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .findings import Finding
from .testlinks import TestFunction

PASSED, FAILED, SKIPPED, NOT_RUN = "passed", "failed", "skipped", "not run"


@dataclass(frozen=True)
class Case:
    """One ``<testcase>``: a test or one parameter case of it."""

    key: str | None
    name: str
    outcome: str
    requirements: frozenset[str]


@dataclass
class JunitRun:
    """The cases of one run and the suite's totals."""

    cases: list[Case] = field(default_factory=list)
    totals: dict[str, int] = field(default_factory=dict)
    timestamp: str | None = None

    def function_results(self) -> dict[str, str]:
        """Test function key -> passed, failed or skipped (functions absent from the run are absent here)."""
        outcomes: dict[str, set[str]] = {}
        for case in self.cases:
            if case.key is not None:
                outcomes.setdefault(case.key, set()).add(case.outcome)
        results = {}
        for key, seen in outcomes.items():
            if FAILED in seen:
                results[key] = FAILED
            elif PASSED in seen:
                results[key] = PASSED
            else:
                results[key] = SKIPPED
        return dict(sorted(results.items()))


def _outcome(element: ET.Element) -> str:
    tags = {child.tag for child in element}
    if tags & {"failure", "error"}:
        return FAILED
    if "skipped" in tags:
        return SKIPPED
    return PASSED


def _module_of(path: str) -> str:
    return path[:-3].replace("/", ".") if path.endswith(".py") else path.replace("/", ".")


def _key(element: ET.Element, modules: Mapping[str, str]) -> str | None:
    """The function key of a testcase, or None when it is not a test function (a collection error)."""
    classname = element.get("classname", "")
    name = element.get("name", "").split("[", 1)[0]
    path = element.get("file")
    if path and path.endswith(".py"):
        module = _module_of(path)
    else:  # xunit2 has no file attribute: the longest known module the classname starts with
        candidates = [m for m in modules if classname == m or classname.startswith(m + ".")]
        if not candidates:
            return None
        module = max(candidates, key=len)
        path = modules[module]
    if classname == module:
        return f"{path}::{name}"
    if classname.startswith(module + "."):
        return f"{path}::{classname[len(module) + 1:]}::{name}"
    return None


def read_junit(path: Path, tests: Mapping[str, TestFunction]) -> tuple[JunitRun, list[Finding]]:
    """Read a JUnit XML file written by pytest.

    Args:
        path: The file.
        tests: The static test index, to map cases to functions and compare requirement links.

    Returns:
        The run, and findings: an unreadable file, cases that are not known test functions
        (collection errors), and cases whose requirement properties differ from the static links.
    """
    findings: list[Finding] = []
    try:
        root = ET.parse(path).getroot()  # nosec B314  # the JUnit file our own pytest run wrote
    except (OSError, ET.ParseError) as err:
        return JunitRun(), [Finding("junit", str(path), f"cannot be read: {err}")]
    suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
    run = JunitRun(totals={"tests": 0, "failures": 0, "errors": 0, "skipped": 0})
    for suite in suites:
        run.timestamp = run.timestamp or suite.get("timestamp")
        for name in run.totals:
            run.totals[name] += int(suite.get(name, "0") or 0)
    modules = {_module_of(t.path): t.path for t in tests.values()}
    mismatched: set[str] = set()
    for element in root.iter("testcase"):
        key = _key(element, modules)
        properties = element.find("properties")
        requirements = frozenset(
            p.get("value", "") for p in (properties if properties is not None else []) if p.get("name") == "requirement"
        )
        case = Case(key, element.get("name", ""), _outcome(element), requirements)
        run.cases.append(case)
        label = f"{element.get('classname', '')}::{case.name}"
        if key is None or key not in tests:
            findings.append(Finding("junit", label, "is not a test function found in tests/ (a collection error?)"
                                    if case.outcome == FAILED else "is not a test function found in tests/"))
            continue
        declared = frozenset(tests[key].requirements)
        if requirements != declared and key not in mismatched:
            mismatched.add(key)
            findings.append(Finding(
                "junit", key,
                f"pytest recorded requirements {sorted(requirements)} but the source declares {sorted(declared)}; "
                "mark functions, classes or modules with literal IDs (not parameters), "
                "or re-run pytest if the markers changed after this JUnit file was written",
            ))
    return run, findings
