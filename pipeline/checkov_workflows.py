"""Run checkov on the workflows without letting it skip one silently.

checkov validates each workflow against a GitHub workflow JSON schema it bundles
before running any check, and *drops a file that does not validate without
reporting it*: the run still says "Passed checks: N, Failed checks: 0". Its
schema (checkov 3.3.30) predates the ``attestations`` and ``artifact-metadata``
permission scopes, which ``deploy.yml`` needs for ``actions/attest-build-provenance``, so a plain
``checkov -d .github/workflows`` scans ``ci.yml`` only and reports success.

So ``make workflow-scan`` runs in three steps:

1. ``prepare``: copy the workflows to a scan directory, removing only the
   permission lines whose scope checkov's schema does not know (and printing
   each removed line), so the rest of every file is scanned as written;
2. checkov on that directory with a JSON report (its exit code is not used:
   the report decides);
3. ``verify``: fail unless every workflow has checks in the report and none
   failed.

Usage::

    python -m pipeline.checkov_workflows prepare .github/workflows reports/checkov/.github/workflows
    checkov -d reports/checkov --framework github_actions -o json --output-file-path reports/checkov-report
    python -m pipeline.checkov_workflows verify reports/checkov-report/results_json.json .github/workflows
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

CHECKOV_PERMISSION_SCOPES: Final = frozenset(
    {
        "actions",
        "checks",
        "contents",
        "deployments",
        "discussions",
        "id-token",
        "issues",
        "packages",
        "pages",
        "pull-requests",
        "repository-projects",
        "security-events",
        "statuses",
    }
)
"""The ``permissions`` scopes in checkov 3.3.30's bundled workflow schema (``permissions-event``)."""

_SCOPE_LINE: Final = re.compile(r"^(?P<indent>\s+)(?P<scope>[a-z][a-z-]*):\s*(?P<level>read|write|none)\s*(#.*)?$")


def strip_unknown_scopes(text: str) -> tuple[str, list[str]]:
    """Remove ``<scope>: read|write|none`` lines inside ``permissions:`` blocks that checkov does not know.

    Returns:
        The new text and the removed lines (stripped), in order.
    """
    kept: list[str] = []
    removed: list[str] = []
    block_indent: int | None = None
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if block_indent is not None and stripped and indent <= block_indent:
            block_indent = None
        if stripped == "permissions:":
            block_indent = indent
        elif block_indent is not None:
            match = _SCOPE_LINE.match(line.rstrip("\n"))
            if match and match["scope"] not in CHECKOV_PERMISSION_SCOPES:
                removed.append(stripped)
                continue
        kept.append(line)
    return "".join(kept), removed


def prepare(source: Path, target: Path) -> dict[str, list[str]]:
    """Copy every ``*.yml``/``*.yaml`` workflow of ``source`` to ``target``, minus unknown scopes."""
    target.mkdir(parents=True, exist_ok=True)
    removed_by_file: dict[str, list[str]] = {}
    for path in sorted(source.glob("*.y*ml")):
        text, removed = strip_unknown_scopes(path.read_text(encoding="utf-8"))
        (target / path.name).write_text(text, encoding="utf-8")
        removed_by_file[path.name] = removed
    return removed_by_file


def _reports(document: Any) -> Iterable[Mapping[str, Any]]:
    """checkov writes one report object, or a list of them when several frameworks ran."""
    if isinstance(document, list):
        yield from (report for report in document if isinstance(report, Mapping))
    elif isinstance(document, Mapping):
        yield document


def count_checks(report: Any) -> dict[str, dict[str, int]]:
    """Return ``{workflow file name: {"passed_checks": n, "failed_checks": n, "skipped_checks": n}}``."""
    counts: dict[str, dict[str, int]] = {}
    for entry in _reports(report):
        results = entry.get("results", {})
        for status in ("passed_checks", "failed_checks", "skipped_checks"):
            for check in results.get(status, []):
                name = Path(str(check.get("file_path", ""))).name
                per_file = counts.setdefault(name, {"passed_checks": 0, "failed_checks": 0, "skipped_checks": 0})
                per_file[status] += 1
    return counts


def verify(report: Any, workflow_names: Iterable[str]) -> list[str]:
    """Return the problems in a checkov JSON ``report``: failed checks, and workflows it did not scan."""
    checked = {name: sum(per_file.values()) for name, per_file in count_checks(report).items()}
    problems: list[str] = []
    for entry in _reports(report):
        results = entry.get("results", {})
        for check in results.get("failed_checks", []):
            problems.append(
                f"{Path(str(check.get('file_path', ''))).name}: {check.get('check_id')} {check.get('check_name')}"
                f" ({check.get('resource')})"
            )
    for name in workflow_names:
        if not checked.get(name):
            problems.append(f"{name}: checkov ran no check on it (schema rejected or file not found)")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """``prepare SOURCE TARGET`` or ``verify REPORT WORKFLOW_DIR``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser("prepare", help="copy the workflows for checkov")
    prepare_parser.add_argument("source", type=Path)
    prepare_parser.add_argument("target", type=Path)
    verify_parser = commands.add_parser("verify", help="check checkov's JSON report")
    verify_parser.add_argument("report", type=Path)
    verify_parser.add_argument("workflows", type=Path, help="the real workflow directory")
    args = parser.parse_args(argv)

    if args.command == "prepare":
        for name, removed in prepare(args.source, args.target).items():
            for line in removed:
                print(f"{name}: not shown to checkov (scope unknown to its schema): {line}")
        return 0

    if not args.report.is_file():
        print(f"::error::checkov wrote no report ({args.report})", file=sys.stderr)
        return 1
    report = json.loads(args.report.read_text(encoding="utf-8"))
    names = sorted(path.name for path in args.workflows.glob("*.y*ml"))
    for name, per_file in sorted(count_checks(report).items()):
        print(
            f"checkov {name}: {per_file['passed_checks']} passed, {per_file['failed_checks']} failed, "
            f"{per_file['skipped_checks']} skipped"
        )
    problems = verify(report, names)
    for problem in problems:
        print(f"::error::{problem}", file=sys.stderr)
    if not problems:
        print(f"checkov scanned every workflow with no failed check: {', '.join(names)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
