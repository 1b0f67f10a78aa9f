"""The release record of a run: commit, dependency versions, model sha256s, template hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import pytest

from compliance.documents import REPORT_FILES, collect
from compliance.findings import Finding
from compliance.junit import JunitRun, read_junit
from compliance.release import release_record, write_run_reports
from tests.compliance.fixture_repo import REPO, write_junit

pytestmark = pytest.mark.requirement("REQ-REG-004")
NOW = dt.datetime(2026, 12, 3, 12, 0, tzinfo=dt.UTC)


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_release_record_identifies_commit_dependencies_models_and_templates():
    ctx, _ = collect(REPO)
    run = JunitRun(totals={"tests": 3, "failures": 0, "errors": 0, "skipped": 0})
    environ = {"GITHUB_SHA": "ab" * 20, "GITHUB_RUN_ID": "42", "GITHUB_REF": "refs/heads/main"}
    record = release_record(ctx, run, [], now=NOW, environ=environ)

    assert record["created"] == "2026-12-03T12:00:00Z"
    assert record["commit"]["sha"] == "ab" * 20 and record["commit"]["source"] == "GITHUB_SHA"
    assert record["ci"] == {"GITHUB_RUN_ID": "42", "GITHUB_REF": "refs/heads/main"}
    pins = dict(re.findall(r"^([A-Za-z0-9._-]+)==(\S+)", (REPO / "requirements.txt").read_text(), re.M))
    assert record["dependencies"]["runtime"] == {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in pins.items()}
    assert record["dependencies"]["development"]["pytest"]
    manifest = json.loads((REPO / "models" / "ct-tissue-seg" / "manifest.json").read_text())
    model = next(m for m in record["models"] if m["name"] == "ct-tissue-seg")
    assert model["sha256_manifest"] == manifest["sha256"] == _sha256(REPO / "models" / "ct-tissue-seg" / "model.onnx")
    assert model["match"] is True and model["version"] == manifest["version"]
    templates = record["templates"]
    assert templates["infra/bicep/main.bicep"] == _sha256(REPO / "infra" / "bicep" / "main.bicep")
    for path in [*REPO.glob("infra/k8s/*.yaml"), *REPO.glob("compliance/generated/*.md"),
                 *REPO.glob("compliance/templates/*.md")]:  # fmt: skip
        assert templates[path.relative_to(REPO).as_posix()] == _sha256(path)
    assert record["safety_class"] == {"declared": "B", "derived": "B"}
    assert record["gate"] == {"passed": True, "findings": []}
    json.dumps(record)  # serialisable as written


def test_without_github_the_commit_comes_from_git():
    ctx, _ = collect(REPO)
    record = release_record(ctx, JunitRun(totals={}), [], now=NOW, environ={})
    assert re.fullmatch(r"[0-9a-f]{40}", record["commit"]["sha"] or ""), record["commit"]
    assert record["commit"]["source"] == "git rev-parse HEAD"


def test_the_run_reports_hold_the_results_and_the_findings(tmp_path):
    ctx, _ = collect(REPO)
    key = "tests/unit/test_dicom.py::test_ct_rescale_gives_hounsfield_units"
    run, _ = read_junit(write_junit(tmp_path / "junit.xml", ctx.trace.tests, {key: "failed"}), ctx.trace.tests)
    finding = Finding("control-failed", "RC-001-1", "(RISK-001) verifying test(s) failed: " + key)
    paths = write_run_reports(tmp_path / "out", ctx, run, [finding], now=NOW)
    assert sorted(paths) == sorted(REPORT_FILES)
    assert f"{key} (failed)" in paths["traceability-results.md"].read_text()
    results = json.loads(paths["traceability-results.json"].read_text())
    assert results["requirements"]["REQ-FUNC-005"]["tests"][key] == "failed"
    assert results["controls"]["RC-001-1"]["status"] == "failed"
    assert json.loads(paths["release-record.json"].read_text())["gate"]["passed"] is False
    assert paths["gate.txt"].read_text() == str(finding) + "\n"
