"""The compliance data (``compliance/data/*.yaml``) as typed, validated objects.

:func:`load_data` reads every file and returns the objects together with the problems found (a
missing field, a wrong type, a duplicate or malformed id, a reference to an id that does not exist,
a module path that does not exist). It never stops at the first problem, so one gate run lists them all.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .findings import Finding

DATA_DIR = Path("compliance") / "data"
CATEGORIES = {"FUNC": "functional", "SEC": "security", "PERF": "performance", "REG": "regulatory"}
REQUIREMENT_ID = re.compile(r"^REQ-(FUNC|SEC|PERF|REG)-\d{3}$")
RISK_ID = re.compile(r"^RISK-\d{3}$")
CONTROL_ID = re.compile(r"^RC-\d{3}-\d+$")
CONTROL_TYPES = ("inherent safety by design", "protective measure", "information for safety")
STRIDE = ("Spoofing", "Tampering", "Repudiation", "Information disclosure", "Denial of service",
          "Elevation of privilege")  # fmt: skip
SAFETY_CLASSES = ("A", "B", "C")
TEST_REF = re.compile(r"^tests/[\w/.-]+\.py::[A-Za-z_]\w*(::[A-Za-z_]\w*)?$")


@dataclass(frozen=True)
class Requirement:
    """A software requirement (IEC 62304 §5.2)."""

    id: str
    title: str
    text: str
    rationale: str
    category: str
    safety_relevant: bool
    safety_note: str
    modules: tuple[str, ...]


@dataclass(frozen=True)
class Control:
    """A risk control measure and the requirements that implement it (ISO 14971 §7.1)."""

    id: str
    type: str
    measure: str
    requirements: tuple[str, ...]


@dataclass(frozen=True)
class Risk:
    """One hazard's analysis, evaluation and control (ISO 14971 §5-§7)."""

    id: str
    hazard: str
    cause: str
    hazardous_situation: str
    harm: str
    severity: int
    probability_before: int
    probability_after: int
    controls: tuple[Control, ...]
    benefit_risk: str | None = None


@dataclass(frozen=True)
class Level:
    """One step of the severity or probability scale."""

    level: int
    name: str
    definition: str


@dataclass(frozen=True)
class Zone:
    """A region of the acceptability matrix."""

    code: str
    name: str
    rule: str


@dataclass(frozen=True)
class RiskModel:
    """The scales, the acceptability matrix and the register."""

    severity: tuple[Level, ...]
    probability: tuple[Level, ...]
    zones: Mapping[str, Zone]
    matrix: Mapping[int, tuple[str, ...]]
    risks: tuple[Risk, ...]

    def zone(self, probability: int, severity: int) -> str:
        """The zone code of a (probability, severity) cell of the matrix."""
        return self.matrix[probability][severity - 1]


@dataclass(frozen=True)
class Classification:
    """The declared IEC 62304 software safety class and why."""

    software_system: str
    declared_class: str
    intended_use: str
    external_controls: tuple[tuple[str, str], ...]
    rationale: str
    revisit_when: str


@dataclass(frozen=True)
class SoupEntry:
    """What people know about one SOUP package (the overlay of the pinned list)."""

    name: str
    purpose: str
    requirements: tuple[str, ...]
    risks: tuple[str, ...]
    risk_notes: str
    reviewed_version: str
    reviewed_on: dt.date
    anomalies: str


@dataclass(frozen=True)
class SoupOverlay:
    """The SOUP overlay and its review policy."""

    interval_days: int
    method: str
    licence_deny: tuple[str, ...]
    packages: Mapping[str, SoupEntry]


@dataclass(frozen=True)
class Mitigation:
    """A mitigation of a threat: the requirements it rests on and the tests that verify it."""

    measure: str
    requirements: tuple[str, ...]
    tests: tuple[str, ...]


@dataclass(frozen=True)
class Threat:
    """One STRIDE threat at a trust boundary."""

    id: str
    stride: str
    threat: str
    mitigations: tuple[Mitigation, ...]


@dataclass(frozen=True)
class Boundary:
    """A trust boundary of the threat model."""

    id: str
    name: str
    description: str
    threats: tuple[Threat, ...]
    residual: str | None


@dataclass(frozen=True)
class Clause:
    """An IEC 62304 activity, the classes it applies to and where its evidence is."""

    clause: str
    title: str
    classes: tuple[str, ...]
    kind: str
    evidence: str


@dataclass(frozen=True)
class DesignElement:
    """A design-control element of 21 CFR 820 / ISO 13485 §7.3 and its record."""

    cfr: str
    iso: str
    element: str
    record: str
    figures: tuple[str, ...]


@dataclass(frozen=True)
class ComplianceData:
    """Everything under ``compliance/data``."""

    requirements: tuple[Requirement, ...]
    risk_model: RiskModel
    classification: Classification
    soup: SoupOverlay
    boundaries: tuple[Boundary, ...]
    clauses: tuple[Clause, ...]
    design_elements: tuple[DesignElement, ...]

    @property
    def requirement_ids(self) -> set[str]:
        return {r.id for r in self.requirements}

    @property
    def controls(self) -> list[tuple[Risk, Control]]:
        """Every (risk, control) pair in register order."""
        return [(risk, control) for risk in self.risk_model.risks for control in risk.controls]


@dataclass
class _Reader:
    """Reads typed fields from YAML mappings, recording problems instead of raising."""

    file: str
    findings: list[Finding] = field(default_factory=list)

    def problem(self, subject: str, message: str) -> None:
        self.findings.append(Finding("data", f"{self.file}: {subject}", message))

    def get(self, node: Any, key: str, kind: type | tuple[type, ...], subject: str, default: Any = None) -> Any:
        if not isinstance(node, dict):
            self.problem(subject, "is not a mapping")
            return default
        if key not in node:
            self.problem(subject, f"has no {key!r}")
            return default
        value = node[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
            self.problem(subject, f"{key!r} must be {names}, not {type(value).__name__}")
            return default
        return value

    def text(self, node: Any, key: str, subject: str) -> str:
        value = self.get(node, key, str, subject, "")
        if isinstance(value, str) and not value.strip():
            self.problem(subject, f"{key!r} is empty")
        return " ".join(str(value).split())

    def strings(self, node: Any, key: str, subject: str) -> tuple[str, ...]:
        values = self.get(node, key, list, subject, [])
        if not all(isinstance(v, str) for v in values):
            self.problem(subject, f"{key!r} must be a list of strings")
            return tuple(str(v) for v in values)
        return tuple(values)

    def items(self, node: Any, key: str, subject: str) -> list[Any]:
        return list(self.get(node, key, list, subject, []))


def _load_yaml(root: Path, name: str, findings: list[Finding]) -> Any:
    path = root / DATA_DIR / name
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as err:
        findings.append(Finding("data", str(DATA_DIR / name), f"cannot be read ({err.strerror})"))
    except yaml.YAMLError as err:
        findings.append(Finding("data", str(DATA_DIR / name), f"is not valid YAML: {err}"))
    return {}


def _unique(ids: Iterable[str], file: str, findings: list[Finding]) -> None:
    seen: set[str] = set()
    for value in ids:
        if value in seen:
            findings.append(Finding("data", f"{file}: {value}", "id is used more than once"))
        seen.add(value)


def _requirements(root: Path, findings: list[Finding]) -> tuple[Requirement, ...]:
    read = _Reader("requirements.yaml", findings)
    raw = _load_yaml(root, "requirements.yaml", findings)
    result = []
    for index, node in enumerate(read.items(raw, "requirements", "the file")):
        subject = str(node.get("id", f"entry {index + 1}")) if isinstance(node, dict) else f"entry {index + 1}"
        requirement = Requirement(
            id=read.text(node, "id", subject),
            title=read.text(node, "title", subject),
            text=read.text(node, "text", subject),
            rationale=read.text(node, "rationale", subject),
            category=read.text(node, "category", subject),
            safety_relevant=bool(read.get(node, "safety_relevant", bool, subject, False)),
            safety_note=read.text(node, "safety_note", subject),
            modules=read.strings(node, "modules", subject),
        )
        match = REQUIREMENT_ID.match(requirement.id)
        if not match:
            read.problem(subject, "id must look like REQ-FUNC-001 (FUNC, SEC, PERF or REG, three digits)")
        elif CATEGORIES[match.group(1)] != requirement.category:
            read.problem(subject, f"category {requirement.category!r} does not match the id "
                                  f"(expected {CATEGORIES[match.group(1)]!r})")  # fmt: skip
        if not requirement.modules:
            read.problem(subject, "names no implementing module")
        for module in requirement.modules:
            if not (root / module).exists():
                read.problem(subject, f"module {module!r} does not exist")
        result.append(requirement)
    _unique((r.id for r in result), "requirements.yaml", findings)
    return tuple(result)


def _levels(read: _Reader, node: Any, key: str) -> tuple[Level, ...]:
    levels = []
    for item in read.items(node, key, f"scales.{key}"):
        subject = f"scales.{key}"
        levels.append(Level(read.get(item, "level", int, subject, 0), read.text(item, "name", subject),
                            read.text(item, "definition", subject)))  # fmt: skip
    if [lv.level for lv in levels] != list(range(1, len(levels) + 1)):
        read.problem(f"scales.{key}", "levels must be 1, 2, 3, ... in order")
    return tuple(levels)


def _risk_model(root: Path, ids: set[str], findings: list[Finding]) -> RiskModel:
    read = _Reader("risks.yaml", findings)
    raw = _load_yaml(root, "risks.yaml", findings)
    scales = read.get(raw, "scales", dict, "the file", {})
    severity, probability = _levels(read, scales, "severity"), _levels(read, scales, "probability")
    acceptability = read.get(raw, "acceptability", dict, "the file", {})
    zones = {
        str(code): Zone(str(code), read.text(node, "name", f"zone {code}"), read.text(node, "rule", f"zone {code}"))
        for code, node in read.get(acceptability, "zones", dict, "acceptability", {}).items()
    }
    matrix: dict[int, tuple[str, ...]] = {}
    for level, row in read.get(acceptability, "matrix", dict, "acceptability", {}).items():
        if not isinstance(row, list) or len(row) != len(severity) or any(cell not in zones for cell in row):
            read.problem(f"acceptability.matrix[{level}]", f"must list one of {sorted(zones)} per severity level")
            continue
        matrix[int(level)] = tuple(row)
    if sorted(matrix) != [lv.level for lv in probability]:
        read.problem("acceptability.matrix", "must have one row per probability level")
    scale_ok = set(range(1, len(severity) + 1)), set(matrix)

    risks = []
    for index, node in enumerate(read.items(raw, "risks", "the file")):
        subject = str(node.get("id", f"risk {index + 1}")) if isinstance(node, dict) else f"risk {index + 1}"
        controls = []
        for c_index, c_node in enumerate(read.items(node, "controls", subject)):
            c_subject = f"{subject} control {c_index + 1}"
            control = Control(
                id=read.text(c_node, "id", c_subject),
                type=read.text(c_node, "type", c_subject),
                measure=read.text(c_node, "measure", c_subject),
                requirements=read.strings(c_node, "requirements", c_subject),
            )
            if not CONTROL_ID.match(control.id) or not control.id.startswith(f"RC-{subject[5:]}-"):
                read.problem(c_subject, f"id {control.id!r} must be RC-<risk number>-<n>")
            if control.type not in CONTROL_TYPES:
                read.problem(control.id, f"type must be one of {list(CONTROL_TYPES)} (ISO 14971 §7.1)")
            if not control.requirements:
                read.problem(control.id, "names no implementing requirement")
            for requirement in control.requirements:
                if requirement not in ids:
                    findings.append(Finding("unknown-id", control.id, f"names unknown requirement {requirement}"))
            controls.append(control)
        benefit = node.get("benefit_risk") if isinstance(node, dict) else None
        risk = Risk(
            id=read.text(node, "id", subject),
            hazard=read.text(node, "hazard", subject),
            cause=read.text(node, "cause", subject),
            hazardous_situation=read.text(node, "hazardous_situation", subject),
            harm=read.text(node, "harm", subject),
            severity=read.get(node, "severity", int, subject, 1),
            probability_before=read.get(node, "probability_before", int, subject, 1),
            probability_after=read.get(node, "probability_after", int, subject, 1),
            controls=tuple(controls),
            benefit_risk=" ".join(str(benefit).split()) if benefit else None,
        )
        if not RISK_ID.match(risk.id):
            read.problem(subject, "id must look like RISK-001")
        if risk.severity not in scale_ok[0]:
            read.problem(subject, f"severity {risk.severity} is not on the scale")
        for name in ("probability_before", "probability_after"):
            if getattr(risk, name) not in scale_ok[1]:
                read.problem(subject, f"{name} {getattr(risk, name)} is not on the scale")
        if risk.probability_after > risk.probability_before:
            read.problem(subject, "probability_after is higher than probability_before")
        risks.append(risk)
    _unique((r.id for r in risks), "risks.yaml", findings)
    _unique((c.id for r in risks for c in r.controls), "risks.yaml", findings)
    if not matrix:  # keep zone() usable so later checks report, not crash
        matrix = {lv.level: tuple("U" for _ in severity) for lv in probability} or {1: ("U",)}
    return RiskModel(severity, probability, zones, matrix, tuple(risks))


def _classification(root: Path, findings: list[Finding]) -> Classification:
    read = _Reader("classification.yaml", findings)
    raw = _load_yaml(root, "classification.yaml", findings)
    declared = read.text(raw, "declared_class", "the file")
    if declared not in SAFETY_CLASSES:
        read.problem("declared_class", f"must be one of {list(SAFETY_CLASSES)}")
    external = tuple(
        (read.text(node, "id", "external_risk_controls"), read.text(node, "measure", "external_risk_controls"))
        for node in read.items(raw, "external_risk_controls", "the file")
    )
    return Classification(
        software_system=read.text(raw, "software_system", "the file"),
        declared_class=declared,
        intended_use=read.text(raw, "intended_use", "the file"),
        external_controls=external,
        rationale=read.text(raw, "rationale", "the file"),
        revisit_when=read.text(raw, "revisit_when", "the file"),
    )


def _soup(root: Path, requirement_ids: set[str], risk_ids: set[str], findings: list[Finding]) -> SoupOverlay:
    read = _Reader("soup.yaml", findings)
    raw = _load_yaml(root, "soup.yaml", findings)
    review = read.get(raw, "review", dict, "the file", {})
    packages: dict[str, SoupEntry] = {}
    for name, node in read.get(raw, "packages", dict, "the file", {}).items():
        subject = str(name)
        reviewed_on = read.get(node, "reviewed_on", dt.date, subject, dt.date(1970, 1, 1))
        entry = SoupEntry(
            name=subject,
            purpose=read.text(node, "purpose", subject),
            requirements=read.strings(node, "requirements", subject),
            risks=read.strings(node, "risks", subject),
            risk_notes=read.text(node, "risk_notes", subject),
            reviewed_version=read.text(node, "reviewed_version", subject),
            reviewed_on=reviewed_on,
            anomalies=read.text(node, "anomalies", subject),
        )
        if not entry.requirements:
            read.problem(subject, "serves no requirement")
        for requirement in entry.requirements:
            if requirement not in requirement_ids:
                findings.append(Finding("unknown-id", f"SOUP {subject}", f"names unknown requirement {requirement}"))
        for risk in entry.risks:
            if risk not in risk_ids:
                findings.append(Finding("unknown-id", f"SOUP {subject}", f"names unknown risk {risk}"))
        packages[canonical_name(subject)] = entry
    return SoupOverlay(
        interval_days=read.get(review, "interval_days", int, "review", 180),
        method=read.text(review, "method", "review"),
        licence_deny=read.strings(review, "licence_deny", "review"),
        packages=packages,
    )


def _boundaries(root: Path, requirement_ids: set[str], findings: list[Finding]) -> tuple[Boundary, ...]:
    read = _Reader("threats.yaml", findings)
    raw = _load_yaml(root, "threats.yaml", findings)
    boundaries = []
    for node in read.items(raw, "boundaries", "the file"):
        b_subject = str(node.get("id", "a boundary")) if isinstance(node, dict) else "a boundary"
        threats = []
        for t_node in read.items(node, "threats", b_subject):
            subject = str(t_node.get("id", b_subject)) if isinstance(t_node, dict) else b_subject
            mitigations = []
            for m_node in read.items(t_node, "mitigations", subject):
                mitigation = Mitigation(
                    measure=read.text(m_node, "measure", subject),
                    requirements=read.strings(m_node, "requirements", subject),
                    tests=read.strings(m_node, "tests", subject),
                )
                for requirement in mitigation.requirements:
                    if requirement not in requirement_ids:
                        findings.append(Finding("unknown-id", subject, f"names unknown requirement {requirement}"))
                for test in mitigation.tests:
                    if not TEST_REF.match(test):
                        read.problem(subject, f"test {test!r} must be tests/<path>.py::<function>")
                if not mitigation.tests:
                    read.problem(subject, "a mitigation names no test")
                mitigations.append(mitigation)
            threat = Threat(read.text(t_node, "id", subject), read.text(t_node, "stride", subject),
                            read.text(t_node, "threat", subject), tuple(mitigations))  # fmt: skip
            if threat.stride not in STRIDE:
                read.problem(subject, f"stride must be one of {list(STRIDE)}")
            if not mitigations:
                read.problem(subject, "has no mitigation")
            threats.append(threat)
        missing = [s for s in STRIDE if s not in {t.stride for t in threats}]
        if missing:
            read.problem(b_subject, f"does not consider {', '.join(missing)}")
        residual = node.get("residual") if isinstance(node, dict) else None
        boundaries.append(Boundary(read.text(node, "id", b_subject), read.text(node, "name", b_subject),
                                   read.text(node, "description", b_subject), tuple(threats),
                                   " ".join(str(residual).split()) if residual else None))  # fmt: skip
    _unique((b.id for b in boundaries), "threats.yaml", findings)
    _unique((t.id for b in boundaries for t in b.threats), "threats.yaml", findings)
    return tuple(boundaries)


def _clauses(root: Path, findings: list[Finding]) -> tuple[Clause, ...]:
    read = _Reader("iec62304.yaml", findings)
    raw = _load_yaml(root, "iec62304.yaml", findings)
    clauses = []
    for node in read.items(raw, "clauses", "the file"):
        subject = str(node.get("clause", "a clause")) if isinstance(node, dict) else "a clause"
        clause = Clause(read.text(node, "clause", subject), read.text(node, "title", subject),
                        read.strings(node, "classes", subject), read.text(node, "kind", subject),
                        read.text(node, "evidence", subject))  # fmt: skip
        if not set(clause.classes) <= set(SAFETY_CLASSES) or not clause.classes:
            read.problem(subject, f"classes must be a non-empty subset of {list(SAFETY_CLASSES)}")
        if clause.kind not in ("repository", "process", "outside"):
            read.problem(subject, "kind must be repository, process or outside")
        clauses.append(clause)
    return tuple(clauses)


def _design_elements(root: Path, findings: list[Finding]) -> tuple[DesignElement, ...]:
    read = _Reader("design_controls.yaml", findings)
    raw = _load_yaml(root, "design_controls.yaml", findings)
    return tuple(
        DesignElement(read.text(node, "cfr", "an element"), read.text(node, "iso", "an element"),
                      read.text(node, "element", "an element"), read.text(node, "record", "an element"),
                      read.strings(node, "figures", "an element"))  # fmt: skip
        for node in read.items(raw, "elements", "the file")
    )


def canonical_name(name: str) -> str:
    """A package name normalised as PEP 503 does (``Typing_Extensions`` -> ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_data(root: Path) -> tuple[ComplianceData, list[Finding]]:
    """Read and validate every file of ``compliance/data`` under ``root``.

    Args:
        root: The repository root.

    Returns:
        The data (with defaults where a value was unusable) and every problem found.
    """
    findings: list[Finding] = []
    requirements = _requirements(root, findings)
    ids = {r.id for r in requirements}
    risk_model = _risk_model(root, ids, findings)
    data = ComplianceData(
        requirements=requirements,
        risk_model=risk_model,
        classification=_classification(root, findings),
        soup=_soup(root, ids, {r.id for r in risk_model.risks}, findings),
        boundaries=_boundaries(root, ids, findings),
        clauses=_clauses(root, findings),
        design_elements=_design_elements(root, findings),
    )
    return data, findings
