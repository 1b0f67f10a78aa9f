"""The compliance evidence of this repository: complete, current, and wired to the real tests."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from compliance.__main__ import main
from compliance.documents import GENERATED_DIR, build_documents, check_documents, collect
from compliance.gate import run_gate
from compliance.junit import PASSED
from compliance.risk import check_risks
from compliance.soup import check_soup
from compliance.trace import check_links
from tests.compliance.fixture_repo import REPO, write_junit

pytestmark = pytest.mark.requirement("REQ-REG-001")


@pytest.fixture(scope="module")
def context():
    ctx, findings = collect(REPO)
    return ctx, findings


@pytest.mark.requirement("REQ-REG-003")
def test_committed_documents_equal_a_fresh_generation(context, capsys):
    ctx, _ = context
    assert check_documents(REPO, build_documents(ctx)) == [], "run `python -m compliance generate` and commit"
    assert main(["generate", "--check"]) == 0
    assert "7 documents up to date" in capsys.readouterr().out


@pytest.mark.requirement("REQ-REG-003")
def test_generation_is_deterministic_and_holds_nothing_of_a_run(context):
    ctx, _ = context
    first, second = build_documents(ctx), build_documents(collect(REPO)[0])
    assert first == second
    for name, text in first.items():
        assert text.endswith("\n") and not text.endswith("\n\n"), name
        assert "\r" not in text, name
        assert not re.search(r"\b20\d\d-\d\d-\d\dT\d\d:\d\d", text), f"{name} holds a timestamp"
        for sha in _action_shas(ctx):
            text = text.replace(sha, "")
        assert not re.search(r"\b[0-9a-f]{40}\b", text), f"{name} holds a commit"
    assert sorted(p.name for p in (REPO / GENERATED_DIR).glob("*.md")) == sorted(first)


def _action_shas(ctx) -> set[str]:
    """The GitHub actions' pinned commit SHAs, which the plan lists on purpose (they are pins, not the commit)."""
    return {step["uses"].split("@")[1] for w in ctx.workflows.values() for job in w["jobs"].values()
            for step in job.get("steps", []) if "@" in str(step.get("uses", ""))}  # fmt: skip


def test_the_repository_passes_every_check_that_needs_no_test_run(context):
    ctx, findings = context
    assert findings == []  # data and markers
    assert check_links(ctx.trace) == []
    assert check_risks(ctx.data) == []
    assert check_soup(list(ctx.soup), ctx.data.soup, dt.date.today()) == []


def test_the_repository_passes_the_gate_when_every_linked_test_passes_and_fails_when_one_fails(context, tmp_path):
    ctx, _ = context
    everything = {key: PASSED for key in ctx.trace.tests}
    result = run_gate(REPO, write_junit(tmp_path / "junit.xml", ctx.trace.tests, everything), today=dt.date.today())
    assert result.findings == ()
    # The real wiring: the independent HU test verifies REQ-FUNC-005, which implements RC-001-1 (RISK-001).
    hu = "tests/unit/test_dicom.py::test_ct_rescale_gives_hounsfield_units"
    failed = run_gate(REPO, write_junit(tmp_path / "junit.xml", ctx.trace.tests, {**everything, hu: "failed"}),
                      today=dt.date.today())
    assert {(f.check, f.subject) for f in failed.findings} == {("control-failed", "RC-001-1")}


def test_every_requirement_category_and_every_risk_control_is_populated(context):
    ctx, _ = context
    categories = {r.category for r in ctx.data.requirements}
    assert categories == {"functional", "security", "performance", "regulatory"}
    assert all(control.requirements for _, control in ctx.data.controls)
    assert {t.stride for b in ctx.data.boundaries for t in b.threats} == {
        "Spoofing", "Tampering", "Repudiation", "Information disclosure", "Denial of service", "Elevation of privilege"
    }
    assert [b.name for b in ctx.data.boundaries] == [
        "client -> API", "storage -> blob trigger", "function -> Key Vault", "CI -> Azure"
    ]
