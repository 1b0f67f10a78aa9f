"""The workflows as data (PyYAML), shared by the pipeline tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / ".github" / "workflows"

DEPLOY_ORDER = ("ci", "provision", "build-image", "publish-functions", "eventgrid", "rollout-aks", "smoke")
"""The stages of deploy.yml, in the order the issue requires."""


def load_workflow(path: Path) -> dict[str, Any]:
    """Load a workflow; YAML 1.1 reads the key ``on`` as the boolean True, so map it back."""
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{path.name} is not a mapping"
    if True in document:
        document["on"] = document.pop(True)
    return document


def iter_steps(workflow: dict[str, Any]):
    """Yield ``(job id, step)`` for every step of every job."""
    for job_id, job in workflow["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def run_commands(job: dict[str, Any]) -> str:
    """All ``run:`` scripts of a job, joined, with shell line continuations folded."""
    text = "\n".join(step.get("run", "") for step in job.get("steps", []))
    return re.sub(r"\\\n\s*", " ", text)
