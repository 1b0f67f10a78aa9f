"""Command line: ``python -m compliance generate`` and ``python -m compliance check``.

    python -m compliance generate            # write compliance/generated/*.md from the repository
    python -m compliance generate --check    # write nothing; exit 1 when a committed document is stale
    python -m compliance check --junit reports/junit.xml --out reports/compliance
                                             # the CI gate on one test run; writes the per-run reports

``check`` exits 1 when any check fails and prints every finding; it writes the per-run reports
(traceability with results, release record, gate output) whether it passes or not.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

from .documents import GENERATED_DIR, build_documents, check_documents, collect, write_documents
from .gate import run_gate
from .release import write_run_reports

ROOT = Path(__file__).resolve().parent.parent


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m compliance", description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this repository)")
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser("generate", help=f"write {GENERATED_DIR.as_posix()}/*.md")
    generate.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    check = sub.add_parser("check", help="the CI gate on a JUnit run")
    check.add_argument("--junit", type=Path, required=True, help="JUnit XML of the test run (reports/junit.xml)")
    check.add_argument("--out", type=Path, help="directory for the per-run reports (reports/compliance)")
    check.add_argument("--today", type=dt.date.fromisoformat, default=None,
                       help="date the SOUP review ages are measured against (default: today, UTC)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = _parser().parse_args(argv)
    root: Path = args.root.resolve()
    if args.command == "generate":
        ctx, _ = collect(root)
        documents = build_documents(ctx)
        if args.check:
            stale = check_documents(root, documents)
            for finding in stale:
                print(finding, file=sys.stderr)
            if not stale:
                print(f"{GENERATED_DIR.as_posix()}: {len(documents)} documents up to date")
            return 1 if stale else 0
        for path in write_documents(root, documents):
            print(f"wrote {path.relative_to(root).as_posix()}")
        return 0

    now = dt.datetime.now(dt.UTC)
    result = run_gate(root, args.junit, today=args.today or now.date())
    if args.out is not None:
        for path in write_run_reports(args.out, result.context, result.run, list(result.findings), now=now).values():
            print(f"wrote {path}")
    ctx = result.context
    summary = (f"{len(ctx.data.requirements)} requirements, {len(ctx.data.risk_model.risks)} risks, "
               f"{len(ctx.data.controls)} risk controls, {len(ctx.soup)} SOUP packages, "
               f"{len(ctx.trace.linked_tests())}/{len(ctx.trace.tests)} test functions linked, "
               f"{len(result.run.cases)} test cases in {args.junit}")
    if result.passed:
        print(f"compliance gate passed: {summary}")
        return 0
    for finding in result.findings:
        print(finding, file=sys.stderr)
    print(f"compliance gate FAILED with {len(result.findings)} finding(s): {summary}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
