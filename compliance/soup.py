"""The SOUP list (IEC 62304 §8.1.2): pinned runtime packages, their licences and the overlay.

Versions come from ``requirements.txt`` (the exact pins the Function App and the image install),
licences from the installed distributions' metadata (``importlib.metadata``, offline), and purpose,
requirements, risks and the known-anomaly review from ``compliance/data/soup.yaml``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from .findings import Finding
from .model import SoupEntry, SoupOverlay
from .repo import RUNTIME_PINS, Pin, read_pins

_LICENCE_CLASSIFIER = "License :: OSI Approved :: "


@dataclass(frozen=True)
class SoupItem:
    """One SOUP package as listed: the pin, what is installed, and the overlay entry."""

    pin: Pin
    installed_version: str | None
    licence: str
    licence_source: str
    overlay: SoupEntry | None


def licence_of(name: str) -> tuple[str, str, str | None]:
    """The licence an installed distribution declares.

    Preference: the ``License-Expression`` field (PEP 639); the ``License ::`` trove classifiers when
    they name more than one licence (a dual licence, which a one-line ``License`` field often shortens
    to one of them); a one-line ``License`` field; then a single classifier. A multi-line ``License``
    field holds a whole licence text and is not a name.

    Returns:
        (licence, where it was read, installed version); ``("not installed", "-", None)`` when absent.
    """
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return "not installed", "-", None
    meta = dist.metadata
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression, "License-Expression", dist.version
    classifiers = sorted(c[len(_LICENCE_CLASSIFIER):] for c in meta.get_all("Classifier") or []
                         if c.startswith(_LICENCE_CLASSIFIER))  # fmt: skip
    if len(classifiers) > 1:
        return " / ".join(classifiers), "classifier", dist.version
    text = (meta.get("License") or "").strip()
    if text and "\n" not in text and len(text) <= 80 and text.upper() != "UNKNOWN":
        return text, "License", dist.version
    if classifiers:
        return " / ".join(classifiers), "classifier", dist.version
    return "not declared", "-", dist.version


def soup_items(root: Path, overlay: SoupOverlay) -> list[SoupItem]:
    """Every pinned runtime package with its licence and overlay entry, by name."""
    items = []
    for pin in read_pins(root / RUNTIME_PINS):
        licence, source, installed = licence_of(pin.name)
        items.append(SoupItem(pin, installed, licence, source, overlay.packages.get(pin.name)))
    return items


def check_soup(items: list[SoupItem], overlay: SoupOverlay, today: dt.date) -> list[Finding]:
    """The gate's SOUP checks.

    Fails when a pinned package has no overlay entry or the overlay names a package that is not pinned;
    when the installed version is not the pinned one (licences would be read from the wrong version);
    when the overlay's review was for another version or is older than the review interval; and when a
    licence matches the deny list.
    """
    findings = []
    pinned = {item.pin.name for item in items}
    for item in items:
        name, version = item.pin.name, item.pin.version
        if item.overlay is None:
            findings.append(Finding("soup-overlay-missing", name,
                                    f"{name}=={version} is pinned in {RUNTIME_PINS} but has no entry in "
                                    "compliance/data/soup.yaml (purpose, requirements, risks, review)"))
        else:
            if item.overlay.reviewed_version != version:
                findings.append(Finding("soup-review", name,
                                        f"pinned {version} but the known-anomaly review was for "
                                        f"{item.overlay.reviewed_version}: review the new version and update "
                                        "reviewed_version and reviewed_on"))
            age = (today - item.overlay.reviewed_on).days
            if age > overlay.interval_days:
                findings.append(Finding("soup-review", name,
                                        f"known-anomaly review of {item.overlay.reviewed_on.isoformat()} is {age} "
                                        f"days old (interval {overlay.interval_days} days)"))
        if item.installed_version is None:
            findings.append(Finding("soup-installed", name, "is pinned but not installed; its licence cannot be read"))
        elif canonical_version(item.installed_version) != canonical_version(version):
            findings.append(Finding("soup-installed", name,
                                    f"installed {item.installed_version}, pinned {version}: install requirements.txt"))
        for denied in overlay.licence_deny:
            if re.search(rf"(?<![A-Za-z]){re.escape(denied)}(?![A-Za-z])", item.licence):
                findings.append(Finding("soup-licence", name, f"licence {item.licence!r} matches {denied!r}"))
    for name in sorted(set(overlay.packages) - pinned):
        findings.append(Finding("soup-overlay-stale", name,
                                f"has an overlay entry but is not pinned in {RUNTIME_PINS}: remove the entry"))
    return findings


def canonical_version(version: str) -> str:
    """A version string compared loosely (case and a leading ``v`` ignored)."""
    return version.strip().lower().lstrip("v")
