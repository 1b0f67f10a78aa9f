"""Facts read from the repository: pins, workflows, Makefile targets, models, templates, commit.

Every reader takes the repository root, so the generators and the gate run unchanged on the real
repository and on the small fixture repositories of ``tests/compliance``. A missing optional file
(workflows, Makefile, models) gives an empty result, never an exception.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
# `git` is run with fixed argument lists (no shell) to identify the commit of a release record.
import subprocess  # nosec B404  # runs git with fixed arguments, never a shell
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.function_package import APP_DIRS, APP_FILES

from .model import canonical_name

RUNTIME_PINS = "requirements.txt"
DEV_PINS = "requirements-dev.txt"
SERVE_PINS = "requirements-serve.txt"
"""The local server (uvicorn): development tooling, not installed where the Functions host serves the app."""
CHECKOV_PINS = "requirements-checkov.txt"
WORKFLOWS_DIR = Path(".github") / "workflows"
TEMPLATE_GLOBS = ("infra/bicep/**/*.bicep", "infra/bicep/**/*.json", "infra/k8s/*.yaml", "compliance/templates/*.md",
                  "compliance/generated/*.md")  # fmt: skip


@dataclass(frozen=True)
class Pin:
    """One ``name==version`` line of a pip-compile output and what it was pulled in by."""

    name: str
    version: str
    required_by: tuple[str, ...]

    @property
    def direct(self) -> bool:
        """True when the package is named in the ``.in`` file itself."""
        return any(source.startswith("-r ") for source in self.required_by)


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;#]+)")


def read_pins(path: Path) -> list[Pin]:
    """Parse a pip-compile ``requirements*.txt`` (names canonicalised, ``# via`` kept).

    Args:
        path: The file; a missing file gives an empty list.
    """
    if not path.is_file():
        return []
    pins: list[Pin] = []
    current: tuple[str, str] | None = None
    via: list[str] = []

    def flush() -> None:
        if current is not None:
            pins.append(Pin(current[0], current[1], tuple(sorted(via))))

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        match = _PIN.match(line)
        if match:
            flush()
            current, via = (canonical_name(match.group(1)), match.group(2)), []
            inline = line.partition("#")[2].strip()
            if inline.startswith("via "):
                via.append(inline[4:].strip())
        elif current is not None and line.startswith("#"):
            text = line.lstrip("#").strip()
            if text.startswith("via"):
                text = text[3:].strip()
            if text:
                via.append(canonical_name(text) if not text.startswith("-") else text)
    flush()
    return sorted(pins, key=lambda p: p.name)


def direct_names(path: Path) -> list[str]:
    """Package names listed in a ``requirements*.in`` file (canonicalised, in file order)."""
    if not path.is_file():
        return []
    names = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match and not line.startswith("-"):
            names.append(canonical_name(match.group(1)))
    return names


def load_workflows(root: Path) -> dict[str, dict[str, Any]]:
    """The GitHub workflows by file name; YAML 1.1's boolean ``on`` key is mapped back to ``"on"``."""
    workflows = {}
    for path in sorted((root / WORKFLOWS_DIR).glob("*.yml")):
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if True in document:
            document["on"] = document.pop(True)
        workflows[path.name] = document
    return workflows


def job_order(workflow: dict[str, Any]) -> list[str]:
    """The jobs of a workflow in dependency order (``needs``), ties kept in file order."""
    jobs = workflow.get("jobs", {}) or {}
    needs = {job: set([n] if isinstance(n, str) else n or []) for job, n in
             ((job_id, spec.get("needs")) for job_id, spec in jobs.items())}  # fmt: skip
    order: list[str] = []
    while len(order) < len(jobs):
        ready = [job for job in jobs if job not in order and needs[job] <= set(order)]
        if not ready:  # a cycle: keep the rest in file order rather than loop
            order.extend(job for job in jobs if job not in order)
            break
        order.append(ready[0])
    return order


@dataclass(frozen=True)
class MakeTarget:
    """A Makefile rule: its prerequisites and recipe lines (variables unexpanded)."""

    name: str
    prerequisites: tuple[str, ...]
    recipe: tuple[str, ...]


def make_targets(root: Path) -> dict[str, MakeTarget]:
    """The explicit rules of the Makefile (pattern rules and variable assignments ignored)."""
    path = root / "Makefile"
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").replace("\\\n", " ").splitlines()
    targets: dict[str, MakeTarget] = {}
    current: str | None = None
    for line in lines:
        rule = re.match(r"^([A-Za-z0-9_.$()/-]+):(?!=)\s*([^#|]*)", line)
        if rule and not line.startswith("\t"):
            current = rule.group(1)
            targets[current] = MakeTarget(current, tuple(rule.group(2).split()), ())
        elif line.startswith("\t") and current is not None:
            target = targets[current]
            targets[current] = MakeTarget(target.name, target.prerequisites, (*target.recipe, line.strip()))
        elif line.strip() and not line.startswith("#"):
            current = None
    return targets


@dataclass(frozen=True)
class ModelRecord:
    """A bundled model: what its manifest declares and what its file hashes to."""

    directory: str
    name: str
    version: str
    file: str
    declared_sha256: str
    file_sha256: str | None

    @property
    def matches(self) -> bool:
        return self.file_sha256 == self.declared_sha256


def sha256_file(path: Path) -> str:
    """sha256 of a file, hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bundled_models(root: Path) -> list[ModelRecord]:
    """Every ``models/*/manifest.json`` with the sha256 of the file it names."""
    records = []
    for manifest_path in sorted((root / "models").glob("*/manifest.json")):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        model_file = manifest_path.parent / str(manifest.get("file", "model.onnx"))
        records.append(ModelRecord(
            directory=manifest_path.parent.relative_to(root).as_posix(),
            name=str(manifest.get("name")),
            version=str(manifest.get("version")),
            file=model_file.relative_to(root).as_posix(),
            declared_sha256=str(manifest.get("sha256")),
            file_sha256=sha256_file(model_file) if model_file.is_file() else None,
        ))  # fmt: skip
    return records


def template_hashes(root: Path) -> dict[str, str]:
    """sha256 of every infrastructure template, compliance template and generated compliance document."""
    paths: set[Path] = set()
    for pattern in TEMPLATE_GLOBS:
        paths.update(p for p in root.glob(pattern) if p.is_file())
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in sorted(paths)}


def software_items(root: Path) -> list[str]:
    """The deployed Python modules, sorted: the ``.py`` files of the Function App package.

    The package's contents are ``pipeline.function_package``'s (the same code the Dockerfile copies);
    package ``__init__`` files are left out.
    """
    items = [name for name in APP_FILES if name.endswith(".py") and (root / name).is_file()]
    for directory in APP_DIRS:
        items.extend(p.relative_to(root).as_posix() for p in (root / directory).rglob("*.py")
                     if p.name != "__init__.py" and "__pycache__" not in p.parts)  # fmt: skip
    return sorted(items)


def covers(module: str, item: str) -> bool:
    """True when a requirement's module entry (a file or a directory) covers a software item."""
    module = module.rstrip("/")
    return item == module or item.startswith(module + "/")


@dataclass(frozen=True)
class Commit:
    """The commit a run verified, and whether the working tree differed from it."""

    sha: str | None
    dirty: bool | None
    source: str


def current_commit(root: Path, environ: dict[str, str] | None = None) -> Commit:
    """``GITHUB_SHA`` in GitHub Actions, else ``git rev-parse HEAD`` (None when neither is available)."""
    env = dict(os.environ) if environ is None else environ
    git = shutil.which("git")
    dirty = None
    if git:
        status = subprocess.run(  # nosec B603  # git found by shutil.which, fixed arguments, no shell
            [git, "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True,
            check=False,
        )
        dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    if env.get("GITHUB_SHA"):
        return Commit(env["GITHUB_SHA"], dirty, "GITHUB_SHA")
    if git:
        head = subprocess.run(  # nosec B603  # git found by shutil.which, fixed arguments, no shell
            [git, "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=False
        )
        if head.returncode == 0 and re.fullmatch(r"[0-9a-f]{40}", head.stdout.strip()):
            return Commit(head.stdout.strip(), dirty, "git rev-parse HEAD")
    return Commit(None, dirty, "unknown")


def npm_dev_dependencies(root: Path) -> dict[str, str]:
    """The npm test tools and their locked versions (package.json names, package-lock.json versions)."""
    package, lock = root / "package.json", root / "package-lock.json"
    if not package.is_file():
        return {}
    wanted = json.loads(package.read_text(encoding="utf-8")).get("devDependencies", {})
    locked = json.loads(lock.read_text(encoding="utf-8")).get("packages", {}) if lock.is_file() else {}
    return {name: str(locked.get(f"node_modules/{name}", {}).get("version", spec)) for name, spec in
            sorted(wanted.items())}  # fmt: skip


def python_requirement(root: Path) -> str | None:
    """``requires-python`` of pyproject.toml."""
    path = root / "pyproject.toml"
    if not path.is_file():
        return None
    match = re.search(r'^requires-python\s*=\s*"([^"]+)"', path.read_text(encoding="utf-8"), re.M)
    return match.group(1) if match else None
