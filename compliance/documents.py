"""The committed documents: built only from what is in the repository, so they are deterministic.

Nothing here depends on a test run, the clock or the commit: links, not results. Results, the commit
and the release record are per-run artefacts (:mod:`compliance.release`), written to ``reports/`` by CI.

``python -m compliance generate`` writes :data:`DOCUMENTS` to ``compliance/generated/``;
``--check`` (and the gate) compare them with a fresh generation.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .findings import CHECKS, Finding
from .model import CATEGORIES, ComplianceData, load_data
from .render import bullets, cell, code, fill, header, lines, table
from .repo import (
    CHECKOV_PINS,
    DEV_PINS,
    RUNTIME_PINS,
    SERVE_PINS,
    WORKFLOWS_DIR,
    MakeTarget,
    Pin,
    direct_names,
    job_order,
    load_workflows,
    make_targets,
    npm_dev_dependencies,
    python_requirement,
    read_pins,
    software_items,
)
from .risk import class_of, derived_class, initial_zone, residual_zone
from .soup import SoupItem, soup_items
from .testlinks import TestFunction, scan_tests
from .trace import Trace

GENERATED_DIR = Path("compliance") / "generated"
TEMPLATES_DIR = Path("compliance") / "templates"
REPORT_FILES = ("traceability-results.md", "traceability-results.json", "release-record.json", "release-record.md",
                "gate.txt")  # fmt: skip
"""What ``python -m compliance check --out DIR`` writes for each run."""


@dataclass(frozen=True)
class Context:
    """Everything the documents are built from."""

    root: Path
    data: ComplianceData
    trace: Trace
    soup: tuple[SoupItem, ...]
    workflows: dict[str, dict[str, Any]]
    make: dict[str, MakeTarget]
    dev_pins: tuple[Pin, ...]
    serve_pins: tuple[Pin, ...]
    checkov_pins: tuple[Pin, ...]
    dev_direct: tuple[str, ...]
    serve_direct: tuple[str, ...]
    checkov_direct: tuple[str, ...]
    npm: dict[str, str]
    python: str | None

    def template(self, name: str) -> str:
        return (self.root / TEMPLATES_DIR / name).read_text(encoding="utf-8")


def collect(root: Path) -> tuple[Context, list[Finding]]:
    """Read the data, the tests and the repository facts the documents and the gate need."""
    data, findings = load_data(root)
    tests, marker_findings = scan_tests(root)
    findings.extend(marker_findings)
    context = Context(
        root=root,
        data=data,
        trace=Trace(data, tests, tuple(software_items(root))),
        soup=tuple(soup_items(root, data.soup)),
        workflows=load_workflows(root),
        make=make_targets(root),
        dev_pins=tuple(read_pins(root / DEV_PINS)),
        serve_pins=tuple(read_pins(root / SERVE_PINS)),
        checkov_pins=tuple(read_pins(root / CHECKOV_PINS)),
        dev_direct=tuple(direct_names(root / "requirements-dev.in")),
        serve_direct=tuple(direct_names(root / "requirements-serve.in")),
        checkov_direct=tuple(direct_names(root / "requirements-checkov.in")),
        npm=npm_dev_dependencies(root),
        python=python_requirement(root),
    )
    return context, findings


# --- requirements ------------------------------------------------------------------------------------------


def requirements_doc(ctx: Context) -> str:
    data, trace = ctx.data, ctx.trace
    out = [header("Software requirements specification", ["compliance/data/requirements.yaml", "tests/"])]
    out.append("IEC 62304 §5.2. Each requirement has a stable id; tests declare the requirements they verify "
               "(`@pytest.mark.requirement`), and the gate fails when one has no verifying test. Test names and "
               "results are in `traceability.md` and, per run, `reports/compliance/traceability-results.md`.\n")
    counts = Counter(r.category for r in data.requirements)
    safety = Counter(r.category for r in data.requirements if r.safety_relevant)
    rows = [(prefix, name, counts[name], safety[name]) for prefix, name in CATEGORIES.items()]
    rows.append(("", "**total**", len(data.requirements), sum(safety.values())))
    out.append(table(["Prefix", "Category", "Requirements", "Safety-relevant"], rows) + "\n")
    for prefix, name in CATEGORIES.items():
        out.append(f"## {name.capitalize()} requirements (REQ-{prefix})\n")
        for requirement in (r for r in data.requirements if r.category == name):
            controls = trace.controls_for(requirement.id)
            verified = trace.tests_for(requirement.id)
            out.append(f"### {requirement.id}: {requirement.title}\n")
            out.append(table(["", ""], [
                ("Requirement", cell(requirement.text)),
                ("Rationale", cell(requirement.rationale)),
                ("Safety-relevant", cell(("yes: " if requirement.safety_relevant else "no: ")
                                         + requirement.safety_note)),
                ("Implemented in", ", ".join(code(m) for m in requirement.modules)),
                ("Implements risk controls", ", ".join(controls) or "-"),
                ("Verified by", f"{len(verified)} test function(s)"),
            ]) + "\n")  # fmt: skip
    return "\n".join(out)


# --- risk management ---------------------------------------------------------------------------------------


def risk_doc(ctx: Context) -> str:
    data = ctx.data
    model = data.risk_model
    out = [header("Risk management file", ["compliance/data/risks.yaml", "compliance/data/classification.yaml"])]
    out.append("ISO 14971:2019 with IEC 62304 §7. Probabilities are of the harm per use; before control the "
               "software is assumed to fail (probability of software failure 1, IEC 62304 §4.3). Zones are computed "
               "from the acceptability matrix below, never stated by a risk.\n")
    out.append("## Scales\n")
    out.append(table(["Severity", "Name", "Definition"],
                     [(lv.level, lv.name, cell(lv.definition)) for lv in model.severity]) + "\n")
    out.append(table(["Probability", "Name", "Definition"],
                     [(lv.level, lv.name, cell(lv.definition)) for lv in model.probability]) + "\n")
    out.append("## Acceptability matrix\n")
    out.append(table(["Probability \\ Severity", *(f"{lv.level} {lv.name}" for lv in model.severity)],
                     [(f"{lv.level} {lv.name}", *model.matrix.get(lv.level, ()))
                      for lv in sorted(model.probability, key=lambda p: -p.level)]) + "\n")  # fmt: skip
    out.append(table(["Zone", "Name", "Rule"], [(z.code, z.name, cell(z.rule)) for z in model.zones.values()]) + "\n")
    out.append("## Register\n")
    out.append(table(
        ["Risk", "Hazard", "Hazardous situation", "Harm", "S", "P before", "Zone", "Controls", "P after", "Residual"],
        [(r.id, cell(r.hazard), cell(r.hazardous_situation), cell(r.harm), r.severity, r.probability_before,
          initial_zone(model, r), lines(c.id for c in r.controls), r.probability_after, residual_zone(model, r))
         for r in model.risks],
    ) + "\n")  # fmt: skip
    before = Counter(initial_zone(model, r) for r in model.risks)
    after = Counter(residual_zone(model, r) for r in model.risks)
    out.append(table(["Zone", "Before control", "After control"],
                     [(code_, before[code_], after[code_]) for code_ in model.zones]) + "\n")
    out.append("## Risk controls\n")
    out.append(table(["Control", "Risk", "Type", "Measure", "Implemented by"],
                     [(c.id, r.id, c.type, cell(c.measure), ", ".join(c.requirements))
                      for r, c in data.controls]) + "\n")  # fmt: skip
    out.append("## Analysis of each risk\n")
    for risk in model.risks:
        out.append(f"### {risk.id}: {risk.hazard}\n")
        rows = [("Cause (sequence of events)", cell(risk.cause)),
                ("Hazardous situation", cell(risk.hazardous_situation)),
                ("Harm", cell(risk.harm)), ("Severity", risk.severity),
                ("Probability before / after", f"{risk.probability_before} / {risk.probability_after}"),
                ("Zone before / after", f"{initial_zone(model, risk)} / {residual_zone(model, risk)}"),
                ("Class this risk calls for", class_of(model, risk))]  # fmt: skip
        if risk.benefit_risk:
            rows.append(("Benefit-risk", cell(risk.benefit_risk)))
        out.append(table(["", ""], rows) + "\n")
    out.append(_classification_section(ctx))
    return "\n".join(out)


def _classification_section(ctx: Context) -> str:
    c = ctx.data.classification
    model = ctx.data.risk_model
    derived = derived_class(model)
    counts = Counter(class_of(model, r) for r in model.risks)
    out = ["## Software safety classification (IEC 62304 §4.3)\n",
           table(["", ""], [
               ("Software system", cell(c.software_system)),
               ("Declared class", f"**{c.declared_class}**"),
               ("Class the register implies", f"{derived} (risks calling for A / B / C: "
                                              f"{counts['A']} / {counts['B']} / {counts['C']})"),
               ("Intended use", cell(c.intended_use)),
               ("Rationale", cell(c.rationale)),
               ("Revisit when", cell(c.revisit_when)),
           ]) + "\n",  # fmt: skip
           "External risk control measures considered:\n",
           table(["Id", "Measure"], [(i, cell(m)) for i, m in c.external_controls]) + "\n"]
    return "\n".join(out)


# --- traceability ------------------------------------------------------------------------------------------


def traceability_doc(ctx: Context, results: dict[str, str] | None = None, title: str | None = None) -> str:
    """The traceability matrix; with ``results`` (one run's), every test carries its outcome."""
    trace, data = ctx.trace, ctx.data

    def test_cell(keys: list[str]) -> str:
        if results is None:
            return lines(keys)
        return lines(f"{key} ({results.get(key, 'not run')})" for key in keys)

    sources = ["compliance/data/*.yaml", "tests/", "the deployed modules"]
    out = [header(title or "Traceability matrix", sources if results is None else [*sources, "a JUnit run"])]
    linked = trace.linked_tests()
    out.append(table(["", ""], [
        ("Requirements", len(data.requirements)),
        ("Risk controls", len(data.controls)),
        ("Threat mitigations", sum(len(t.mitigations) for b in data.boundaries for t in b.threats)),
        ("Deployed software items", len(trace.software_items)),
        ("Test functions", len(trace.tests)),
        ("Test functions linked to a requirement", len(linked)),
    ]) + "\n")  # fmt: skip
    out.append("## Requirement -> implementation -> verification\n")
    rows = []
    for r in data.requirements:
        rows.append((r.id, cell(r.title), "yes" if r.safety_relevant else "no", lines(code(m) for m in r.modules),
                     test_cell(trace.tests_for(r.id)), ", ".join(trace.controls_for(r.id)) or "-"))
    out.append(table(["Requirement", "Title", "Safety", "Modules", "Verifying tests", "Risk controls"], rows) + "\n")
    out.append("## Risk control -> requirement -> verification\n")
    rows = []
    for risk, control in data.controls:
        for requirement in control.requirements:
            status = ""
            if results is not None:
                status = trace.control_status(control, results)[0]
            rows.append((risk.id, control.id, requirement, test_cell(trace.tests_for(requirement)),
                         *((status,) if results is not None else ())))
    headers = ["Risk", "Control", "Requirement", "Verifying tests", *(["Control verified"] if results else [])]
    out.append(table(headers, rows) + "\n")
    out.append("## Threat mitigation -> requirement -> verification\n")
    rows = []
    for boundary in data.boundaries:
        for threat in boundary.threats:
            for mitigation in threat.mitigations:
                extra = (trace.mitigation_status(mitigation, results)[0],) if results is not None else ()
                rows.append((threat.id, cell(mitigation.measure), ", ".join(mitigation.requirements),
                             test_cell(list(mitigation.tests)), *extra))
    headers = ["Threat", "Mitigation", "Requirements", "Tests", *(["Verified"] if results else [])]
    out.append(table(headers, rows) + "\n")
    out.append("## Deployed software item -> requirements\n")
    out.append("The modules of the Function App package (`pipeline/function_package.py`), the same code the image "
               "runs. Every one must be named by a requirement.\n")
    out.append(table(["Software item", "Requirements"],
                     [(code(item), ", ".join(trace.requirements_for_item(item)) or "**none**")
                      for item in trace.software_items]) + "\n")  # fmt: skip
    out.append("## Test -> requirements\n")
    rows = []
    for key, test in trace.tests.items():
        outcome = (results.get(key, "not run"),) if results is not None else ()
        rows.append((code(key), ", ".join(test.requirements) or "-", *outcome))
    out.append(table(["Test function", "Requirements", *(["Result"] if results else [])], rows) + "\n")
    return "\n".join(out)


# --- SOUP --------------------------------------------------------------------------------------------------


def soup_doc(ctx: Context) -> str:
    overlay = ctx.data.soup
    sources = [RUNTIME_PINS, "installed package metadata", "compliance/data/soup.yaml"]
    out = [header("SOUP list (IEC 62304 §8.1.2)", sources)]
    direct = sum(1 for item in ctx.soup if item.pin.direct)
    out.append(f"{len(ctx.soup)} runtime packages pinned in `{RUNTIME_PINS}` ({direct} named in `requirements.in`, "
               f"{len(ctx.soup) - direct} pulled in by them). This is everything the Function App's remote build and "
               "the container image install; development tools are pinned separately and never reach them. Licences "
               "are read from each installed distribution's metadata (`License-Expression`, else a one-line "
               "`License`, else its trove classifiers).\n")
    rows = []
    for item in ctx.soup:
        entry = item.overlay
        required_by = "direct" if item.pin.direct else "via " + ", ".join(s for s in item.pin.required_by)
        rows.append((
            f"`{item.pin.name}`", item.pin.version, cell(f"{item.licence} ({item.licence_source})"), cell(required_by),
            cell(entry.purpose) if entry else "**missing**", ", ".join(entry.requirements) if entry else "-",
            ", ".join(entry.risks) or "-" if entry else "-",
            f"{entry.reviewed_version}, {entry.reviewed_on.isoformat()}" if entry else "-",
        ))  # fmt: skip
    out.append(table(["Package", "Version", "Licence (source)", "Required", "Purpose", "Requirements", "Risks",
                      "Anomaly review (version, date)"], rows) + "\n")  # fmt: skip
    out.append("## Risk notes and known anomalies\n")
    out.append(table(["Package", "Risk notes", "Known anomalies"],
                     [(f"`{i.pin.name}`", cell(i.overlay.risk_notes), cell(i.overlay.anomalies))
                      for i in ctx.soup if i.overlay]) + "\n")  # fmt: skip
    out.append("## Known-anomaly review\n")
    out.append(f"Interval: every {overlay.interval_days} days and whenever a pin changes (the gate fails otherwise).\n")
    out.append(cell(overlay.method) + "\n")
    denied = ", ".join(f"`{d}`" for d in overlay.licence_deny)
    out.append(f"Licences matching any of these fail the gate: {denied}.\n")
    return "\n".join(out)


# --- threat model ------------------------------------------------------------------------------------------


def threat_doc(ctx: Context) -> str:
    out = [header("Threat model (STRIDE per trust boundary)", ["compliance/data/threats.yaml"])]
    out.append("Each mitigation names the requirements it rests on and the tests that verify it; the gate fails when "
               "a named test does not exist or did not pass.\n")
    for boundary in ctx.data.boundaries:
        out.append(f"## {boundary.id}: {boundary.name}\n")
        out.append(cell(boundary.description) + "\n")
        rows = []
        for threat in boundary.threats:
            for mitigation in threat.mitigations:
                rows.append((threat.id, threat.stride, cell(threat.threat), cell(mitigation.measure),
                             ", ".join(mitigation.requirements), lines(code(t) for t in mitigation.tests)))
        out.append(table(["Id", "STRIDE", "Threat", "Mitigation", "Requirements", "Tests"], rows) + "\n")
        if boundary.residual:
            out.append(f"Residual: {cell(boundary.residual)}\n")
    return "\n".join(out)


# --- software development plan ----------------------------------------------------------------------------


def _ci_stages(ctx: Context) -> str:
    out = []
    ci = ctx.workflows.get("ci.yml")
    if ci:
        for job_id, job in (ci.get("jobs") or {}).items():
            out.append(f"`ci.yml` job `{job_id}` ({cell(job.get('name', job_id))}) on `{job.get('runs-on', '?')}`, "
                       "in this order:\n")
            steps = []
            for number, step in enumerate(job.get("steps", []), start=1):
                if "run" in step:
                    what = code(step["run"].strip().splitlines()[0])
                else:
                    what = code(step.get("uses", "").split("@")[0])
                when = f" (`if: {step['if']}`)" if "if" in step else ""
                steps.append((number, cell(step.get("name", "")), what + when))
            out.append(table(["#", "Step", "Runs"], steps) + "\n")
    else:
        out.append("No CI workflow (`.github/workflows/ci.yml`) found.\n")
    test = ctx.make.get("test")
    if test:
        out.append(f"`make test` (what `.ci/run` runs) is `{' '.join(test.prerequisites)}`, in this order:\n")
        rows = []
        for name in test.prerequisites:
            target = ctx.make.get(name)
            if target is None:
                continue
            sub = [p for p in target.prerequisites if p in ctx.make and not p.startswith("$")]
            rows.append((f"`{name}`", lines(code(r) for r in target.recipe) if target.recipe else "-",
                         ", ".join(f"`{s}`" for s in sub) or "-"))
            for child in sub:
                if ctx.make[child].recipe:
                    rows.append((f"`{name}` > `{child}`", lines(code(r) for r in ctx.make[child].recipe), "-"))
        out.append(table(["Target", "Commands", "Also runs"], rows) + "\n")
    return "\n".join(out)


def _deploy_stages(ctx: Context) -> str:
    deploy = ctx.workflows.get("deploy.yml")
    if not deploy:
        return "No deployment workflow (`.github/workflows/deploy.yml`) found."
    jobs = deploy.get("jobs") or {}
    order = job_order(deploy)
    rows = []
    for job_id in order:
        job = jobs[job_id]
        needs = job.get("needs", [])
        needs = [needs] if isinstance(needs, str) else needs
        writes = sorted(k for k, v in (job.get("permissions") or {}).items() if v == "write")
        rows.append((f"`{job_id}`", cell(job.get("name", job_id)), ", ".join(f"`{n}`" for n in needs) or "-",
                     f"`{job['environment']}`" if "environment" in job else "-", ", ".join(writes) or "read only"))
    return ("`deploy.yml`: " + " -> ".join(order) + "\n\n"
            + table(["Job", "What", "Needs", "Environment", "Token writes"], rows))


_TRIGGER_DEFAULTS = {
    "push": "every branch",
    "pull_request": "every branch",
    "workflow_dispatch": "by hand, from any branch (see the job conditions)",
    "workflow_call": "when another workflow calls it",
}


def _describe(value: Any) -> str:
    """A YAML value as short text: ``branches: main; types: opened``."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_describe(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(_describe(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _branch_rules(ctx: Context) -> str:
    out = ["Triggers and branch rules, as the workflows declare them:\n"]
    rows = []
    for name, workflow in ctx.workflows.items():
        triggers = workflow.get("on") or {}
        for event, spec in (triggers.items() if isinstance(triggers, dict) else ((t, None) for t in triggers)):
            detail = _describe(spec) if spec else _TRIGGER_DEFAULTS.get(event, "any")
            rows.append((f"`{name}`", f"`{event}`", cell(detail)))
        if "concurrency" in workflow:
            rows.append((f"`{name}`", "concurrency", cell(_describe(workflow["concurrency"]))))
        for job_id, job in (workflow.get("jobs") or {}).items():
            if "if" in job:
                rows.append((f"`{name}`", f"job `{job_id}` runs only if", code(job["if"])))
    out.append(table(["Workflow", "Rule", "Detail"], rows))
    out.append("\nThe `production` environment's required reviewers and its `main`-only deployment branch rule are "
               "GitHub settings (pipeline/README.md), outside what the repository can enforce.")
    return "\n".join(out)


def _verification(ctx: Context) -> str:
    by_level: dict[str, list[TestFunction]] = {}
    for test in ctx.trace.tests.values():
        by_level.setdefault(test.level, []).append(test)
    rows = [(f"`tests/{level}`", len(tests), sum(1 for t in tests if t.requirements),
             len({r for t in tests for r in t.requirements})) for level, tests in sorted(by_level.items())]
    return ("Test levels (directories under `tests/`), with the number of test functions, how many declare the "
            "requirements they verify, and how many requirements they verify between them:\n\n"
            + table(["Level", "Test functions", "Linked", "Requirements verified"], rows)
            + "\n\nExpected values come from the standards, the shared cases (`tests/data/cases.json`) or independent "
              "computations, never from the code under test. `make test` writes the JUnit results to "
              "`reports/junit.xml`; the gate joins them to the requirements, risk controls and threat mitigations.")


def _documentation_level(ctx: Context) -> str:
    declared = ctx.data.classification.declared_class
    required = [c for c in ctx.data.clauses if declared in c.classes]
    not_required = [c for c in ctx.data.clauses if declared not in c.classes]
    out = [f"Documentation level of class {declared}: the activities IEC 62304 requires for it "
           "(Annex A, Table A.1), and where their evidence is.\n",
           table(["Clause", "Activity", "Evidence", "Kind"],
                 [(c.clause, cell(c.title), cell(c.evidence), c.kind) for c in required])]  # fmt: skip
    if not_required:
        out.append(f"\nNot required for class {declared}:\n")
        out.append(table(["Clause", "Activity", "Classes", "Note"],
                         [(c.clause, cell(c.title), ", ".join(c.classes), cell(c.evidence)) for c in not_required]))
    return "\n".join(out)


def _tools(ctx: Context) -> str:
    rows = [("Python", ctx.python or "?", "pyproject.toml `requires-python`; the Azure Functions runtime version")]
    dev = {p.name: p.version for p in ctx.dev_pins}
    for name in ctx.dev_direct:
        rows.append((f"`{name}`", dev.get(name, "not pinned"), DEV_PINS))
    serve = {p.name: p.version for p in ctx.serve_pins}
    for name in ctx.serve_direct:
        rows.append((f"`{name}`", serve.get(name, "not pinned"), f"{SERVE_PINS} (the local server only)"))
    checkov = {p.name: p.version for p in ctx.checkov_pins}
    for name in ctx.checkov_direct:
        rows.append((f"`{name}`", checkov.get(name, "not pinned"), f"{CHECKOV_PINS} (own virtual environment)"))
    for name, version in ctx.npm.items():
        rows.append((f"`{name}` (npm)", version, "package-lock.json"))
    for action, (sha, release) in sorted(_pinned_actions(ctx.root).items()):
        rows.append((f"`{action}` (GitHub action)", f"{release} `{sha}`", "pinned by commit SHA in .github/workflows"))
    runners = sorted({str(job.get("runs-on")) for w in ctx.workflows.values() for job in (w.get("jobs") or {}).values()
                      if job.get("runs-on")})  # fmt: skip
    for runner in runners:
        rows.append(("GitHub runner image", f"`{runner}`", "runs-on"))
    return table(["Tool", "Version", "Pinned in"], rows)


_USES = re.compile(r"uses:\s*([A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+)@([0-9a-f]{40})(?:\s+#\s*(\S+))?")


def _pinned_actions(root: Path) -> dict[str, tuple[str, str]]:
    """Action -> (commit SHA, the release its comment names) from the workflow files' text."""
    actions = {}
    for path in sorted((root / WORKFLOWS_DIR).glob("*.yml")):
        for match in _USES.finditer(path.read_text(encoding="utf-8")):
            actions[match.group(1)] = (match.group(2), match.group(3) or "")
    return actions


def _gate_checks() -> str:
    return table(["Check", "Fails when"], [(f"`{name}`", cell(text)) for name, text in CHECKS.items()])


def _risk_management(ctx: Context) -> str:
    model = ctx.data.risk_model
    after = Counter(residual_zone(model, r) for r in model.risks)
    return (f"The register (`compliance/data/risks.yaml`, `risk-management.md`) holds {len(model.risks)} risks with "
            f"{len(ctx.data.controls)} risk controls; every control names the requirements that implement it, and is "
            "verified on every CI run by those requirements' tests (the gate fails on a failed or unverified control). "
            f"Residual risk zones: {', '.join(f'{after[z]} {model.zones[z].name}' for z in model.zones)}. The threat "
            f"model (`threat-model.md`) covers {len(ctx.data.boundaries)} trust boundaries with STRIDE and is "
            "verified the same way. A change to the register, the classification or a SOUP pin is re-evaluated by "
            "the gate on the change itself (IEC 62304 §7.4).")


def _soup_management(ctx: Context) -> str:
    return (f"{len(ctx.soup)} runtime packages, all pinned to exact versions in `{RUNTIME_PINS}` (compiled from "
            "`requirements.in` by `make lock`), are listed in `soup.md` with their licences and the overlay's "
            "purpose, requirements, risks and known-anomaly review. The gate fails when a pinned package has no "
            "overlay entry, when its review was for another version or is older than "
            f"{ctx.data.soup.interval_days} days, or when a licence is on the deny list. Published vulnerabilities "
            "are checked by `pip-audit --strict` in the CI workflow, and the CycloneDX SBOM of the same pins is an "
            "artifact of every run.")


def _configuration_management(ctx: Context) -> str:
    drift = ctx.trace.tests_for("REQ-REG-003")
    pinned_files = (RUNTIME_PINS, SERVE_PINS, DEV_PINS, CHECKOV_PINS, "package-lock.json")
    pins = [name for name in pinned_files if (ctx.root / name).is_file()]
    return ("Pinned files: " + ", ".join(f"`{p}`" for p in pins) + ".\n\n"
            "Tests of the generators and of the committed generated files (the tests verifying REQ-REG-003; the "
            "drift checks among them regenerate into a temporary place and compare byte for byte):\n\n"
            + bullets(code(t) for t in drift))


def _deliverables(ctx: Context) -> str:
    committed = [(f"`{GENERATED_DIR.as_posix()}/{name}`", "committed; regenerated and compared on every run")
                 for name in DOCUMENTS]  # fmt: skip
    per_run = [(f"`reports/compliance/{name}`", "per CI run, uploaded as an artifact") for name in REPORT_FILES]
    return table(["Deliverable", "When"], committed + per_run
                 + [("`reports/junit.xml`", "per CI run, uploaded as an artifact"),
                    ("`reports/sbom.cdx.json`", "per CI run, uploaded as an artifact")])  # fmt: skip


def _system(ctx: Context) -> str:
    c = ctx.data.classification
    return (f"**{cell(c.software_system)}**. {cell(c.intended_use)}\n\n"
            f"Deployed software items ({len(ctx.trace.software_items)} modules, the Function App package): "
            + ", ".join(code(i) for i in ctx.trace.software_items) + ".")


def _classification(ctx: Context) -> str:
    c = ctx.data.classification
    derived = derived_class(ctx.data.risk_model)
    return (f"Declared class **{c.declared_class}**; the risk register implies class **{derived}** "
            "(`risk-management.md`). " + cell(c.rationale) + "\n\nRevisit when: " + cell(c.revisit_when))


def plan_doc(ctx: Context) -> str:
    sections = {
        "system": _system(ctx),
        "classification": _classification(ctx),
        "documentation_level": _documentation_level(ctx),
        "ci_stages": _ci_stages(ctx),
        "deploy_stages": _deploy_stages(ctx),
        "branch_rules": _branch_rules(ctx),
        "verification": _verification(ctx),
        "gate_checks": _gate_checks(),
        "risk_management": _risk_management(ctx),
        "soup_management": _soup_management(ctx),
        "configuration_management": _configuration_management(ctx),
        "tools": _tools(ctx),
        "deliverables": _deliverables(ctx),
    }
    body = fill(ctx.template("software-development-plan.md"), sections, name="software-development-plan.md")
    return header(None, ["compliance/templates/software-development-plan.md", "the repository"]) + "\n" + body


# --- design-control map -----------------------------------------------------------------------------------


def _figures(ctx: Context) -> dict[str, str]:
    data, trace = ctx.data, ctx.trace
    categories = Counter(r.category for r in data.requirements)
    deploy = ctx.workflows.get("deploy.yml", {})
    ci = ctx.workflows.get("ci.yml", {})
    deploy_jobs = deploy.get("jobs") or {}
    environments = Counter(job["environment"] for job in deploy_jobs.values() if "environment" in job)
    artifacts = [step for job in (ci.get("jobs") or {}).values() for step in job.get("steps", [])
                 if str(step.get("uses", "")).startswith("actions/upload-artifact@")]  # fmt: skip
    smoke = deploy_jobs.get("smoke", {})
    templates = [*(ctx.root / "infra").glob("bicep/**/*.bicep"), *(ctx.root / "infra").glob("k8s/*.yaml")]
    return {
        "safety_class": f"software safety class {data.classification.declared_class}",
        "requirements": f"{len(data.requirements)} requirements ("
                        + ", ".join(f"{categories[c]} {c}" for c in CATEGORIES.values()) + ")",
        "risks": f"{len(data.risk_model.risks)} risks, {len(data.controls)} risk controls",
        "threats": f"{len(data.boundaries)} trust boundaries, {sum(len(b.threats) for b in data.boundaries)} threats",
        "software_items": f"{len(trace.software_items)} deployed modules, each traced to requirements",
        "templates": f"{len(templates)} emitted Bicep and Kubernetes files",
        "deploy_environment": ", ".join(f"environment `{e}` on {n} jobs" for e, n in environments.items()) or "none",
        "linked_tests": f"{len(trace.linked_tests())} of {len(trace.tests)} test functions linked to requirements",
        "controls": f"{len(data.controls)} risk controls verified through their requirements' tests",
        "smoke": "smoke steps: " + ("; ".join(s.get("name", "") for s in smoke.get("steps", [])) or "none"),
        "deploy_stages": " -> ".join(job_order(deploy)) if deploy else "no deploy workflow",
        "ci_triggers": "CI on " + ", ".join(f"`{t}`" for t in (ci.get("on") or {})) if ci else "no CI workflow",
        "artifacts": "; ".join(f"{s['with']['path']} ({s['with'].get('retention-days', '?')} days)" for s in artifacts)
                     or "none",
    }  # fmt: skip


def design_map_doc(ctx: Context) -> str:
    figures = _figures(ctx)
    rows = []
    for element in ctx.data.design_elements:
        values = [figures.get(name, f"**unknown figure {name}**") for name in element.figures]
        rows.append((element.cfr, element.iso, cell(element.element), cell(element.record.replace("generated:", "")),
                     lines(values)))
    run_records = table(["Record", "Content"], [
        ("`reports/junit.xml`", "every test case and its outcome, with the requirements it verifies"),
        ("`reports/compliance/traceability-results.md`", "the traceability matrix with the run's results"),
        ("`reports/compliance/release-record.json`", "commit, dependency versions, model sha256s, template hashes, "
                                                     "test totals, gate verdict"),
        ("`reports/sbom.cdx.json`", "CycloneDX SBOM of the runtime pins"),
    ])  # fmt: skip
    outside = bullets(cell(f"{c.clause} {c.title}: {c.evidence}") for c in ctx.data.clauses if c.kind == "outside")
    body = fill(ctx.template("design-control-map.md"),
                {"elements": table(["21 CFR 820", "ISO 13485", "Element", "Record", "Figures"], rows),
                 "run_records": run_records, "outside": outside}, name="design-control-map.md")  # fmt: skip
    return header(None, ["compliance/templates/design-control-map.md", "the repository"]) + "\n" + body


DOCUMENTS: dict[str, Callable[[Context], str]] = {
    "requirements.md": requirements_doc,
    "risk-management.md": risk_doc,
    "traceability.md": traceability_doc,
    "soup.md": soup_doc,
    "threat-model.md": threat_doc,
    "software-development-plan.md": plan_doc,
    "design-control-map.md": design_map_doc,
}
"""The committed documents, by file name in ``compliance/generated``."""


def build_documents(ctx: Context) -> dict[str, str]:
    """Every committed document's text, ending with exactly one newline."""
    return {name: build(ctx).rstrip("\n") + "\n" for name, build in DOCUMENTS.items()}


def write_documents(root: Path, documents: dict[str, str]) -> list[Path]:
    """Write the documents (LF line ends) and remove stale ones; returns the written paths."""
    directory = root / GENERATED_DIR
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.md"):
        if stale.name not in documents:
            stale.unlink()
    written = []
    for name, text in documents.items():
        path = directory / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


def check_documents(root: Path, documents: dict[str, str]) -> list[Finding]:
    """A finding per committed document that differs from ``documents``, is missing, or is extra."""
    directory = root / GENERATED_DIR
    findings = []
    for name, text in documents.items():
        path = directory / name
        if not path.is_file():
            findings.append(Finding("document-stale", f"{GENERATED_DIR.as_posix()}/{name}",
                                    "is missing: run `python -m compliance generate` and commit"))
        elif path.read_bytes() != text.encode("utf-8"):
            findings.append(Finding("document-stale", f"{GENERATED_DIR.as_posix()}/{name}",
                                    "differs from a fresh generation: run `python -m compliance generate` and commit"))
    for path in sorted(directory.glob("*.md")) if directory.is_dir() else []:
        if path.name not in documents:
            findings.append(Finding("document-stale", f"{GENERATED_DIR.as_posix()}/{path.name}",
                                    "is not generated any more: run `python -m compliance generate` and commit"))
    return findings
