"""The workflows as data (PyYAML), shared by the pipeline tests."""

from __future__ import annotations

import re
import shlex
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


NEEDS_OUTPUT = re.compile(r"needs\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_]+)")
"""``needs.<job>.outputs.<name>`` in an expression (names may hold digits: ``k8sNamespace``)."""
STEP_OUTPUT = re.compile(r"^\$\{\{\s*steps\.([A-Za-z0-9_-]+)\.outputs\.([A-Za-z0-9_]+)\s*\}\}$")
ENV_FROM_OUTPUT = re.compile(r"^\$\{\{\s*needs\.provision\.outputs\.([A-Za-z0-9_]+)\s*\}\}$")


def job_scripts(job: dict[str, Any]) -> list[str]:
    """The ``run:`` scripts of a job, each with shell line continuations folded."""
    return [re.sub(r"\\\n\s*", " ", step["run"]) for step in job.get("steps", []) if "run" in step]


def command_args(job: dict[str, Any], command: str) -> list[str]:
    """The arguments after ``command`` on the (folded) script line that runs it, shell-split (quotes removed).

    Exactly one line of the job may run ``command``.
    """
    lines = [line for script in job_scripts(job) for line in script.splitlines() if command in line]
    assert len(lines) == 1, f"expected one line running {command!r}, found {len(lines)}"
    return shlex.split(lines[0].split(command, 1)[1])


def flag_values(args: list[str]) -> dict[str, str]:
    """``{--flag: value}`` from shell-split arguments (``--flag value`` pairs; positional words ignored)."""
    values: dict[str, str] = {}
    for index, word in enumerate(args):
        if word.startswith("--"):
            nxt = args[index + 1] if index + 1 < len(args) else ""
            assert nxt and not nxt.startswith("--"), f"{word} has no value"
            values[word] = nxt
    return values


def output_behind(job: dict[str, Any], word: str) -> str | None:
    """The main.bicep output a script word like ``$WORKLOAD_CLIENT_ID`` carries, if it carries one.

    Either a job ``env`` entry ``${{ needs.provision.outputs.X }}``, or a shell variable the job's
    scripts set from ``python -m pipeline.deployment_outputs --value X``.
    """
    match = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", word)
    if not match:
        return None
    name = match[1]
    env = job.get("env", {})
    if name in env:
        source = ENV_FROM_OUTPUT.match(str(env[name]))
        return source[1] if source else None
    for script in job_scripts(job):
        assigned = re.search(rf"^\s*{name}=\"\$\(.*pipeline\.deployment_outputs --value (\w+)", script, re.M)
        if assigned:
            return assigned[1]
    return None
