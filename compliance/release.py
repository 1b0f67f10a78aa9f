"""Per-run evidence: the traceability matrix with results, and the release record.

These vary with every run (the commit, the time, the test outcomes), so they are written to
``reports/compliance/`` by ``python -m compliance check --out``, uploaded by CI as artifacts, and never
committed. The committed documents (:mod:`compliance.documents`) hold everything that derives from the
repository alone.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .documents import Context, traceability_doc
from .findings import Finding
from .junit import JunitRun
from .render import cell, code, table
from .repo import bundled_models, current_commit, template_hashes
from .risk import derived_class

RECORD_SCHEMA = "medai-flow/release-record/v1"
_CI_VARIABLES = ("GITHUB_RUN_ID", "GITHUB_RUN_ATTEMPT", "GITHUB_WORKFLOW", "GITHUB_REF", "GITHUB_EVENT_NAME",
                 "GITHUB_REPOSITORY")  # fmt: skip


def release_record(
    ctx: Context,
    run: JunitRun,
    findings: list[Finding],
    *,
    now: dt.datetime,
    environ: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The release record of one verified state of the repository.

    Args:
        ctx: The repository context.
        run: The JUnit run the gate judged.
        findings: The gate's findings for this run.
        now: When the record is made (UTC).
        environ: Environment to read the CI variables from (``os.environ`` when omitted).

    Returns:
        A JSON-serialisable record: commit, CI run, Python, dependency pins, bundled models with the
        sha256 declared and computed, the sha256 of every template and generated compliance document,
        test totals, counts of requirements, risks and SOUP, and the gate verdict.
    """
    env = dict(os.environ if environ is None else environ)
    commit = current_commit(ctx.root, env)
    return {
        "schema": RECORD_SCHEMA,
        "created": now.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "commit": {"sha": commit.sha, "source": commit.source, "tracked_files_modified": commit.dirty},
        "ci": {name: env[name] for name in _CI_VARIABLES if env.get(name)},
        "python": platform.python_version(),
        "software_system": ctx.data.classification.software_system,
        "safety_class": {"declared": ctx.data.classification.declared_class,
                         "derived": derived_class(ctx.data.risk_model)},
        "dependencies": {
            "runtime": {item.pin.name: item.pin.version for item in ctx.soup},
            "development": {pin.name: pin.version for pin in ctx.dev_pins},
            "checkov": {pin.name: pin.version for pin in ctx.checkov_pins},
            "npm": dict(ctx.npm),
        },
        "models": [
            {"name": m.name, "version": m.version, "file": m.file, "sha256_manifest": m.declared_sha256,
             "sha256_file": m.file_sha256, "match": m.matches}
            for m in bundled_models(ctx.root)
        ],
        "templates": template_hashes(ctx.root),
        "tests": {**run.totals, "junit_timestamp": run.timestamp},
        "counts": {
            "requirements": len(ctx.data.requirements),
            "risks": len(ctx.data.risk_model.risks),
            "risk_controls": len(ctx.data.controls),
            "soup_packages": len(ctx.soup),
            "test_functions": len(ctx.trace.tests),
            "linked_test_functions": len(ctx.trace.linked_tests()),
        },
        "gate": {"passed": not findings, "findings": [str(f) for f in findings]},
    }


def check_models(ctx: Context) -> list[Finding]:
    """A bundled model whose file does not hash to its manifest's sha256 cannot be released."""
    return [Finding("release", m.file, f"sha256 {m.file_sha256} differs from the manifest's {m.declared_sha256}")
            for m in bundled_models(ctx.root) if not m.matches]  # fmt: skip


def record_markdown(record: dict[str, Any]) -> str:
    """The release record for people."""
    commit = record["commit"]
    out = ["# Release record\n",
           table(["", ""], [
               ("Created", record["created"]),
               ("Commit", f"{code(commit['sha'])} ({commit['source']}; tracked files modified: "
                          f"{commit['tracked_files_modified']})"),
               ("CI run", cell(", ".join(f"{k}={v}" for k, v in record["ci"].items())) or "-"),
               ("Python", record["python"]),
               ("Safety class", f"declared {record['safety_class']['declared']}, "
                                f"derived {record['safety_class']['derived']}"),
               ("Tests", cell(", ".join(f"{k} {v}" for k, v in record["tests"].items()))),
               ("Gate", "passed" if record["gate"]["passed"]
                else f"FAILED ({len(record['gate']['findings'])} findings)"),
           ]) + "\n",  # fmt: skip
           "## Models\n",
           table(["Model", "Version", "File", "sha256 (manifest)", "Matches file"],
                 [(m["name"], m["version"], code(m["file"]), code(m["sha256_manifest"]), m["match"])
                  for m in record["models"]]) + "\n",  # fmt: skip
           "## Runtime dependencies\n",
           table(["Package", "Version"], [(code(k), v) for k, v in record["dependencies"]["runtime"].items()]) + "\n",
           "## Templates and generated documents\n",
           table(["File", "sha256"], [(code(k), code(v)) for k, v in record["templates"].items()]) + "\n"]
    if record["gate"]["findings"]:
        out += ["## Gate findings\n", "\n".join(f"- {cell(f)}" for f in record["gate"]["findings"]) + "\n"]
    return "\n".join(out)


def results_json(ctx: Context, results: Mapping[str, str]) -> dict[str, Any]:
    """The traceability of one run as data: requirement -> tests -> result, control -> status."""
    trace = ctx.trace
    return {
        "requirements": {
            r.id: {"tests": {t: results.get(t, "not run") for t in trace.tests_for(r.id)},
                   "controls": trace.controls_for(r.id)}
            for r in ctx.data.requirements
        },
        "controls": {
            control.id: {"risk": risk.id, "requirements": list(control.requirements),
                         "status": trace.control_status(control, results)[0]}
            for risk, control in ctx.data.controls
        },
        "threats": {
            threat.id: [trace.mitigation_status(m, results)[0] for m in threat.mitigations]
            for boundary in ctx.data.boundaries for threat in boundary.threats
        },
    }  # fmt: skip


def write_run_reports(
    out: Path, ctx: Context, run: JunitRun, findings: list[Finding], *, now: dt.datetime
) -> dict[str, Path]:
    """Write the per-run artefacts into ``out``; returns them by name."""
    out.mkdir(parents=True, exist_ok=True)
    results = run.function_results()
    record = release_record(ctx, run, findings, now=now)
    texts = {
        "traceability-results.md": traceability_doc(ctx, results,
                                                    title="Traceability matrix with the results of one run"),
        "traceability-results.json": json.dumps(results_json(ctx, results), indent=2, sort_keys=True) + "\n",
        "release-record.json": json.dumps(record, indent=2, sort_keys=True) + "\n",
        "release-record.md": record_markdown(record),
        "gate.txt": "".join(f"{f}\n" for f in findings) or "compliance gate passed\n",
    }
    paths = {}
    for name, text in texts.items():
        paths[name] = out / name
        paths[name].write_text(text, encoding="utf-8")
    return paths
