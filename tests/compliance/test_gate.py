"""The compliance gate on a small fixture repository: it passes, and each kind of gap makes it fail.

Each test starts from the passing fixture (``fixture_repo.py``), breaks exactly one thing, regenerates
the documents where a developer would, and asserts the exact findings.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from importlib import metadata

import pytest

from compliance.__main__ import main
from tests.compliance.fixture_repo import FUNCTIONAL, REPO, SECURE, TODAY, FixtureRepo, checks

pytestmark = pytest.mark.requirement("REQ-REG-001")


@pytest.fixture
def repo(tmp_path) -> FixtureRepo:
    return FixtureRepo(tmp_path / "repo")


def test_the_fixture_passes_the_gate(repo):
    result = repo.gate()
    assert result.findings == ()
    assert result.passed
    assert result.run.function_results() == {FUNCTIONAL: "passed", SECURE: "passed"}


def test_the_command_line_gate_exits_0_then_1_and_writes_the_run_reports(repo, capsys):
    out = repo.root / "reports"
    argv = ["--root", str(repo.root), "check", "--junit", str(repo.junit()), "--today", TODAY.isoformat()]
    assert main([*argv, "--out", str(out)]) == 0
    out_text = capsys.readouterr().out
    assert "compliance gate passed: 2 requirements, 1 risks, 1 risk controls, 1 SOUP packages" in out_text
    assert (out / "gate.txt").read_text() == "compliance gate passed\n"
    repo.junit({SECURE: "failed", FUNCTIONAL: "passed"})
    assert main(argv) == 1
    assert "[control-failed] RC-001-1" in capsys.readouterr().err


def test_a_requirement_without_a_verifying_test_fails(repo):
    repo.edit("requirements.yaml")["requirements"].append(
        {"id": "REQ-PERF-001", "title": "Fast", "text": "It shall be fast.", "rationale": "Time.",
         "category": "performance", "safety_relevant": False, "safety_note": "None.", "modules": ["app/core.py"]}
    )  # fmt: skip
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("requirement-untested", "REQ-PERF-001")}


def test_a_test_naming_an_unknown_requirement_fails(repo):
    source = repo.root / "tests" / "test_app.py"
    source.write_text(source.read_text().replace('"REQ-SEC-001"', '"REQ-SEC-001", "REQ-SEC-999"'))
    repo.generate()
    assert checks(repo.gate()) == {("unknown-id", SECURE)}


def test_a_requirement_marker_that_is_not_a_literal_fails(repo):
    source = repo.root / "tests" / "test_app.py"
    source.write_text(source.read_text().replace('@pytest.mark.requirement("REQ-SEC-001")',
                                                 'ID = "REQ-SEC-001"\n\n\n@pytest.mark.requirement(ID)'))
    repo.generate()
    found = checks(repo.gate(properties={SECURE: ["REQ-FUNC-001", "REQ-SEC-001"]}))
    assert ("marker-unreadable", "tests/test_app.py:9") in found
    assert ("junit", SECURE) in found  # pytest recorded REQ-SEC-001, the static reader could not


def test_a_failed_verifying_test_fails_its_risk_control_and_threat_mitigations(repo):
    result = repo.gate(outcomes={SECURE: "failed", FUNCTIONAL: "passed"})
    assert ("control-failed", "RC-001-1") in checks(result)
    assert {f.subject for f in result.findings if f.check == "threat-unverified"} == {
        f"TB-1-{letter}" for letter in "STRIDE"
    }
    assert {f.check for f in result.findings} == {"control-failed", "threat-unverified"}


def test_a_control_whose_tests_were_only_skipped_is_unverified(repo):
    assert ("control-unverified", "RC-001-1") in checks(repo.gate(outcomes={SECURE: "skipped", FUNCTIONAL: "passed"}))


def test_a_linked_test_missing_from_the_run_fails(repo):
    assert checks(repo.gate(outcomes={FUNCTIONAL: "passed"})) >= {("junit", SECURE), ("control-unverified", "RC-001-1")}


def test_requirement_properties_that_differ_from_the_source_fail(repo):
    assert checks(repo.gate(properties={FUNCTIONAL: ["REQ-SEC-001"]})) == {("junit", FUNCTIONAL)}


def test_a_junit_older_than_the_markers_says_to_re_run_pytest(repo):
    # The usual cause: a marker was edited after the last pytest run, so the JUnit file records the old IDs.
    source = repo.root / "tests" / "test_app.py"
    source.write_text(source.read_text().replace('"REQ-SEC-001"', '"REQ-SEC-001", "REQ-FUNC-001"'))
    repo.generate()
    assert repo.gate().findings == ()  # a JUnit written from the edited source: what a fresh run records
    stale = repo.gate(properties={SECURE: ["REQ-SEC-001"]})  # what the run before the edit recorded
    assert checks(stale) == {("junit", SECURE)}
    (finding,) = stale.findings
    assert "or re-run pytest" in finding.message and "literal IDs" in finding.message


def test_a_junit_without_any_requirement_property_says_the_plugin_is_missing(repo):
    found = checks(repo.gate(properties={SECURE: [], FUNCTIONAL: []}))
    assert ("junit", "requirement properties") in found


def test_an_unacceptable_residual_risk_fails(repo):
    risk = repo.edit("risks.yaml")["risks"][0]
    risk["probability_before"] = risk["probability_after"] = 5  # frequent, minor: U in the matrix
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("residual-risk", "RISK-001")}


def test_a_residual_risk_to_reduce_needs_a_benefit_risk_justification(repo):
    risk = repo.edit("risks.yaml")["risks"][0]
    risk["probability_after"] = 4  # probable, minor: R in the matrix
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("residual-risk", "RISK-001")}
    risk["benefit_risk"] = "The benefit of timely results outweighs it."
    repo.write_data()
    repo.generate()
    assert repo.gate().passed


def test_a_declared_class_below_what_the_register_implies_fails(repo):
    repo.edit("risks.yaml")["risks"][0]["severity"] = 3  # serious injury possible -> class C
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("classification", "class B")}
    repo.edit("classification.yaml")["declared_class"] = "C"
    repo.write_data()
    repo.generate()
    assert repo.gate().passed


def test_a_pinned_package_without_its_overlay_entry_fails(repo):
    repo.write_pins({"pyyaml": metadata.version("PyYAML"), "pluggy": metadata.version("pluggy")})
    repo.generate()
    assert checks(repo.gate()) == {("soup-overlay-missing", "pluggy")}


def test_an_overlay_entry_without_a_pin_fails(repo):
    repo.write_pins({})
    repo.generate()
    assert checks(repo.gate()) == {("soup-overlay-stale", "pyyaml")}


def test_a_moved_pin_or_an_old_review_needs_a_new_anomaly_review(repo):
    repo.edit("soup.yaml")["packages"]["pyyaml"]["reviewed_version"] = "1.0"
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("soup-review", "pyyaml")}
    repo.edit("soup.yaml")["packages"]["pyyaml"]["reviewed_version"] = metadata.version("PyYAML")
    repo.write_data()
    repo.generate()
    late = run_late(repo, days=181)
    assert {(f.check, f.subject) for f in late} == {("soup-review", "pyyaml")}


def run_late(repo: FixtureRepo, days: int):
    from compliance.gate import run_gate

    return run_gate(repo.root, repo.junit(), today=TODAY + dt.timedelta(days=days)).findings


def test_a_pin_that_is_not_the_installed_version_fails(repo):
    repo.write_pins({"pyyaml": "0.0.1"})
    repo.edit("soup.yaml")["packages"]["pyyaml"]["reviewed_version"] = "0.0.1"
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("soup-installed", "pyyaml")}


def test_a_denied_licence_fails(repo):
    repo.edit("soup.yaml")["review"]["licence_deny"] = ["MIT"]  # PyYAML's real licence, from its metadata
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("soup-licence", "pyyaml")}


def test_a_stale_missing_or_extra_document_fails(repo):
    generated = repo.root / "compliance" / "generated"
    (generated / "requirements.md").write_text((generated / "requirements.md").read_text() + "edited by hand\n")
    (generated / "soup.md").unlink()
    (generated / "notes.md").write_text("not generated\n")
    assert checks(repo.gate()) == {
        ("document-stale", "compliance/generated/requirements.md"),
        ("document-stale", "compliance/generated/soup.md"),
        ("document-stale", "compliance/generated/notes.md"),
    }


def test_a_data_change_without_regeneration_makes_the_documents_stale(repo):
    repo.edit("requirements.yaml")["requirements"][0]["title"] = "Works better"  # in the SRS and the matrix
    repo.write_data()
    stale = {subject for check, subject in checks(repo.gate()) if check == "document-stale"}
    assert stale == {"compliance/generated/requirements.md", "compliance/generated/traceability.md"}


def test_a_threat_mitigation_naming_a_missing_test_fails(repo):
    threat = repo.edit("threats.yaml")["boundaries"][0]["threats"][0]
    threat["mitigations"][0]["tests"] = ["tests/test_app.py::test_that_does_not_exist"]
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("threat-unverified", "TB-1-S")}


def test_a_boundary_that_skips_a_stride_category_fails(repo):
    repo.edit("threats.yaml")["boundaries"][0]["threats"].pop()  # no Elevation of privilege
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("data", "threats.yaml: TB-1")}


def test_a_deployed_module_no_requirement_names_fails(repo):
    (repo.root / "service").mkdir()
    (repo.root / "service" / "extra.py").write_text("X = 1\n")
    repo.generate()
    assert checks(repo.gate()) == {("software-item-untraced", "service/extra.py")}


def test_malformed_data_is_reported_not_raised(repo):
    requirements = repo.edit("requirements.yaml")["requirements"]
    requirements[0]["id"] = "REQ-FUN-1"
    requirements[1]["modules"] = ["app/missing.py"]
    repo.edit("risks.yaml")["risks"][0]["controls"][0]["requirements"] = ["REQ-SEC-404"]
    repo.write_data()
    repo.generate()
    found = checks(repo.gate())
    assert ("data", "requirements.yaml: REQ-FUN-1") in found
    assert ("data", "requirements.yaml: REQ-SEC-001") in found  # the missing module
    assert ("unknown-id", "RC-001-1") in found


def test_a_control_implemented_by_a_requirement_not_marked_safety_relevant_fails(repo):
    repo.edit("requirements.yaml")["requirements"][1]["safety_relevant"] = False
    repo.write_data()
    repo.generate()
    assert checks(repo.gate()) == {("data", "REQ-SEC-001")}


def test_the_command_line_runs_as_a_module(repo):
    done = subprocess.run(  # nosec B603 - the repository's own module, fixed arguments
        [sys.executable, "-m", "compliance", "--root", str(repo.root), "generate", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "7 documents up to date" in done.stdout
