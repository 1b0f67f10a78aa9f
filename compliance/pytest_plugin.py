"""pytest side of the traceability: requirement markers become JUnit properties.

A test declares what it verifies with ``@pytest.mark.requirement("REQ-FUNC-001", ...)`` on the
function or class, or a module-level ``pytestmark``. At collection, every ID of every
``requirement`` marker that applies to an item is appended to ``item.user_properties`` as
``("requirement", ID)``; pytest's JUnit writer turns each into
``<property name="requirement" value="ID"/>`` inside the item's ``<testcase>``. The gate
(``python -m compliance check``) reads them back from the JUnit XML of the same run and compares
them with the links it reads statically from the test sources, so the committed traceability
matrix and the tests that actually ran cannot disagree.

Loaded by the repository's root ``conftest.py``; the marker itself is registered in
``pyproject.toml`` (``--strict-markers`` is on).
"""

from __future__ import annotations

import pytest

MARKER = "requirement"
PROPERTY = "requirement"


def requirement_ids(item: pytest.Item) -> list[str]:
    """The requirement IDs an item declares, sorted and without duplicates.

    Args:
        item: A collected test.

    Returns:
        Every positional argument of every ``requirement`` marker on the item, its class and module.
    """
    ids: set[str] = set()
    for marker in item.iter_markers(MARKER):
        ids.update(str(arg) for arg in marker.args)
    return sorted(ids)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Record each item's requirement IDs as JUnit properties (hook)."""
    for item in items:
        for requirement in requirement_ids(item):
            item.user_properties.append((PROPERTY, requirement))
