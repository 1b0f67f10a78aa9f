"""The SOUP list: every runtime pin, its exact version, its licence from the installed metadata."""

from __future__ import annotations

import re

import pytest

from compliance.repo import read_pins
from compliance.soup import licence_of
from tests.compliance.fixture_repo import REPO

pytestmark = pytest.mark.requirement("REQ-REG-002")


def _pins_by_regex() -> dict[str, str]:
    """requirements.txt read independently of compliance.repo."""
    text = (REPO / "requirements.txt").read_text()
    return {re.sub(r"[-_.]+", "-", m[1]).lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9._-]+)==(\S+)", text, re.M)}


def test_the_pins_are_read_with_their_direct_dependencies():
    pins = read_pins(REPO / "requirements.txt")
    assert {p.name: p.version for p in pins} == _pins_by_regex()
    named = {re.sub(r"[-_.]+", "-", m[1]).lower() for m in
             re.finditer(r"^([A-Za-z0-9._-]+)", (REPO / "requirements.in").read_text(), re.M)}  # fmt: skip
    assert {p.name for p in pins if p.direct} == named
    assert next(p for p in pins if p.name == "starlette").required_by == ("fastapi",)


def test_the_soup_list_names_every_pin_with_its_exact_version():
    soup = (REPO / "compliance" / "generated" / "soup.md").read_text()
    pins = _pins_by_regex()
    assert len(pins) > 20
    for name, version in pins.items():
        assert f"| `{name}` | {version} |" in soup, name


def test_licences_come_from_the_installed_metadata_in_order_of_preference():
    assert licence_of("numpy")[:2] == ("BSD-3-Clause AND 0BSD AND MIT AND Zlib AND CC0-1.0", "License-Expression")
    assert licence_of("pydicom")[:2] == ("MIT License", "classifier")  # no expression, no License field
    assert licence_of("isodate")[1] == "classifier"  # its License field is a whole licence text, not a name
    assert licence_of("no-such-package-medai") == ("not installed", "-", None)
