"""What the gate reports: one :class:`Finding` per problem, each named by the check that found it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, order=True)
class Finding:
    """One reason the compliance evidence is incomplete.

    Attributes:
        check: The check that found it (see :data:`compliance.gate.CHECKS`).
        subject: What it is about: a requirement, risk control, test, package or file.
        message: What is wrong and, where useful, what to do.
    """

    check: str
    subject: str
    message: str

    def __str__(self) -> str:
        return f"[{self.check}] {self.subject}: {self.message}"


CHECKS: dict[str, str] = {
    "data": "the compliance data is malformed (a missing field, a duplicate or malformed id, a module path that does "
            "not exist, a control implemented by a requirement not marked safety-relevant)",
    "unknown-id": "a test, risk control, SOUP entry or threat names a requirement or risk that does not exist",
    "marker-unreadable": "a requirement marker whose IDs are not string literals",
    "requirement-untested": "a requirement that no test declares it verifies",
    "software-item-untraced": "a deployed module that no requirement names",
    "control-unverified": "a risk control none of whose implementing requirement's tests passed in this run",
    "control-failed": "a risk control one of whose verifying tests failed in this run",
    "threat-unverified": "a threat mitigation naming a test that does not exist or did not pass in this run",
    "residual-risk": "a residual risk in the unacceptable zone, or in the reduce zone without a benefit-risk "
                     "justification",
    "classification": "a declared software safety class lower than the class the risk register implies",
    "soup-overlay-missing": "a pinned runtime package without its SOUP overlay entry",
    "soup-overlay-stale": "an overlay entry for a package that is no longer pinned",
    "soup-review": "a known-anomaly review done for another version than the pinned one, or older than the interval",
    "soup-installed": "a pinned package not installed at its pinned version (its licence would be misread)",
    "soup-licence": "a SOUP licence on the deny list",
    "document-stale": "a committed generated document that differs from a fresh generation (or is missing or extra)",
    "junit": "the JUnit file is missing or unreadable, has cases that are not known tests (collection errors), "
             "lacks tests the sources declare, or records requirements other than the sources declare",
    "release": "a bundled model whose file does not match its manifest's sha256",
}
"""Every check of the gate and what makes it fail (documented in the software development plan)."""
