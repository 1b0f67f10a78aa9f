"""Risk evaluation and the safety class the register implies.

Zones come only from the acceptability matrix (``risks.yaml``); a risk never states its own
acceptability. The class follows IEC 62304:2006+A1:2015 §4.3 a): a hazardous situation whose risk,
with the software assumed to fail and only external risk controls considered, is not acceptable makes
the system class B when the harm is at most non-serious (severity 1-2) and class C otherwise.
"""

from __future__ import annotations

from .findings import Finding
from .model import SAFETY_CLASSES, ComplianceData, Risk, RiskModel

NON_SERIOUS_MAX = 2
"""Highest severity level that is a non-serious injury (scale of risks.yaml, IEC 62304 §3.23)."""


def initial_zone(model: RiskModel, risk: Risk) -> str:
    """Zone before the software's risk controls."""
    return model.zone(risk.probability_before, risk.severity)


def residual_zone(model: RiskModel, risk: Risk) -> str:
    """Zone after the software's risk controls."""
    return model.zone(risk.probability_after, risk.severity)


def class_of(model: RiskModel, risk: Risk) -> str:
    """The software safety class this one risk calls for."""
    if initial_zone(model, risk) == "A":
        return "A"
    return "B" if risk.severity <= NON_SERIOUS_MAX else "C"


def derived_class(model: RiskModel) -> str:
    """The highest class any risk of the register calls for (A for an empty register)."""
    classes = [class_of(model, risk) for risk in model.risks]
    return max(classes, key=SAFETY_CLASSES.index) if classes else "A"


def check_risks(data: ComplianceData) -> list[Finding]:
    """The gate's risk checks: residual risk acceptable, declared class not below the derived one."""
    model = data.risk_model
    findings = []
    for risk in model.risks:
        zone = residual_zone(model, risk)
        if zone == "U":
            findings.append(Finding("residual-risk", risk.id,
                                    f"residual risk (probability {risk.probability_after}, severity {risk.severity}) "
                                    "is unacceptable per the matrix: add or strengthen risk controls"))
        elif zone == "R" and not risk.benefit_risk:
            findings.append(Finding("residual-risk", risk.id,
                                    "residual risk must be reduced as far as possible and needs a documented "
                                    "benefit_risk justification"))
        if initial_zone(model, risk) != "A" and not risk.controls:
            findings.append(Finding("residual-risk", risk.id, "is not acceptable before control but has no control"))
    declared, derived = data.classification.declared_class, derived_class(model)
    if declared in SAFETY_CLASSES and SAFETY_CLASSES.index(declared) < SAFETY_CLASSES.index(derived):
        worst = [r.id for r in model.risks if class_of(model, r) == derived]
        findings.append(Finding("classification", f"class {declared}",
                                f"the register implies class {derived} ({', '.join(worst)}); raise declared_class "
                                "or revisit the severities and external risk controls"))
    return findings
