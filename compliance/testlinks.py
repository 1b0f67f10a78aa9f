"""Which test verifies which requirement, read statically from the test sources.

The committed traceability matrix must not depend on a test run, so the links are read with
:mod:`ast` from ``tests/**/test_*.py``: ``@pytest.mark.requirement("REQ-...")`` on a test function,
on its class, and module- or class-level ``pytestmark`` (a mark or a list of marks). Marker
arguments must be string literals; anything else is reported (``marker-unreadable``), never guessed.

The JUnit check (:mod:`compliance.junit`) then compares these links with the properties pytest itself
wrote for every test of a run, so a marker applied in a way this reader cannot see (a parameter's
``marks=``, a mark built at run time) shows up as a mismatch instead of a silent gap.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from .findings import Finding

TESTS_DIR = "tests"
MARKER = "requirement"
# pytest's defaults (python_files, python_classes, python_functions); pyproject.toml does not change them.
FILE_PATTERNS = ("test_*.py", "*_test.py")
CLASS_PREFIX = "Test"
FUNCTION_PREFIX = "test"


@dataclass(frozen=True)
class TestFunction:
    """A test function (all its parameter cases) and the requirements it declares.

    Attributes:
        key: ``tests/path.py::function`` or ``tests/path.py::Class::method``.
        path: The file, relative to the repository root, with forward slashes.
        line: Line of the ``def``.
        requirements: Sorted requirement IDs from every marker that applies.
    """

    __test__ = False  # a record about tests, not a test class pytest should collect

    key: str
    path: str
    line: int
    requirements: tuple[str, ...]

    @property
    def level(self) -> str:
        """The test level: the directory under ``tests/`` (unit, integration, infra, ...)."""
        parts = self.path.split("/")
        return parts[1] if len(parts) > 2 else "(top level)"


def _is_requirement_mark(node: ast.expr) -> bool:
    """True for ``pytest.mark.requirement(...)`` and ``mark.requirement(...)``."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute) or node.func.attr != MARKER:
        return False
    owner = node.func.value
    return (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark"
    )


def _marks(node: ast.expr | None) -> list[ast.expr]:
    """The mark expressions of a ``pytestmark`` value (one mark, or a list or tuple of marks)."""
    if node is None:
        return []
    if isinstance(node, (ast.List, ast.Tuple)):
        return list(node.elts)
    return [node]


class _Collector:
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []

    def ids(self, marks: list[ast.expr], where: str) -> set[str]:
        found: set[str] = set()
        for mark in marks:
            if not isinstance(mark, ast.Call) or not _is_requirement_mark(mark):
                continue
            if mark.keywords or not mark.args:
                self.findings.append(Finding("marker-unreadable", f"{self.path}:{mark.lineno}",
                                             f"{where}: requirement() takes requirement IDs as positional strings"))
            for arg in mark.args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
                else:
                    self.findings.append(Finding("marker-unreadable", f"{self.path}:{mark.lineno}",
                                                 f"{where}: requirement IDs must be string literals"))
        return found

    def pytestmark(self, body: list[ast.stmt], where: str) -> set[str]:
        found: set[str] = set()
        for statement in body:
            value: ast.expr | None = None
            if isinstance(statement, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in statement.targets
            ):
                value = statement.value
            elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                if statement.target.id == "pytestmark":
                    value = statement.value
            found |= self.ids(_marks(value), where)
        return found


def scan_file(root: Path, path: Path) -> tuple[list[TestFunction], list[Finding]]:
    """The test functions of one file and the requirements each declares."""
    relative = path.relative_to(root).as_posix()
    collector = _Collector(relative)
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
    except SyntaxError as err:
        return [], [Finding("marker-unreadable", relative, f"cannot be parsed: {err.msg}")]
    module_ids = collector.pytestmark(tree.body, "pytestmark")
    tests: list[TestFunction] = []

    def add(node: ast.FunctionDef | ast.AsyncFunctionDef, key: str, inherited: set[str]) -> None:
        ids = inherited | collector.ids(node.decorator_list, node.name)
        tests.append(TestFunction(key, relative, node.lineno, tuple(sorted(ids))))

    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(FUNCTION_PREFIX):
            add(node, f"{relative}::{node.name}", module_ids)
        elif isinstance(node, ast.ClassDef) and node.name.startswith(CLASS_PREFIX):
            class_ids = module_ids | collector.ids(node.decorator_list, node.name)
            class_ids |= collector.pytestmark(node.body, f"{node.name}.pytestmark")
            for member in node.body:
                if isinstance(member, (ast.FunctionDef, ast.AsyncFunctionDef)) and member.name.startswith(
                    FUNCTION_PREFIX
                ):
                    add(member, f"{relative}::{node.name}::{member.name}", class_ids)
    return tests, collector.findings


def scan_tests(root: Path) -> tuple[dict[str, TestFunction], list[Finding]]:
    """Every test function under ``root/tests`` with its declared requirements, by key.

    Args:
        root: The repository root.

    Returns:
        Test functions by key (sorted), and the markers that could not be read.
    """
    files: set[Path] = set()
    for pattern in FILE_PATTERNS:
        files.update((root / TESTS_DIR).rglob(pattern))
    tests: dict[str, TestFunction] = {}
    findings: list[Finding] = []
    for path in sorted(files):
        if "__pycache__" in path.parts:
            continue
        found, problems = scan_file(root, path)
        tests.update((t.key, t) for t in found)
        findings.extend(problems)
    return dict(sorted(tests.items())), findings


def tests_by_requirement(tests: dict[str, TestFunction]) -> dict[str, list[str]]:
    """Requirement ID -> the keys of the tests that declare it (sorted)."""
    index: dict[str, list[str]] = {}
    for key, test in tests.items():
        for requirement in test.requirements:
            index.setdefault(requirement, []).append(key)
    return {requirement: sorted(keys) for requirement, keys in sorted(index.items())}
