"""Fail when detect-secrets found anything not audited as a false positive.

``make secrets-scan`` copies the committed ``.secrets.baseline`` to
``reports/``, lets ``detect-secrets scan --all-files --baseline`` refresh that
copy (it keeps the audit labels of findings it already knew) and runs this
gate on it. Every finding must carry ``"is_secret": false``, set by a person
with ``detect-secrets audit .secrets.baseline`` and committed: a new finding has
no label and fails, a finding labelled real fails. detect-secrets 1.5.0 has no
``--fail-on-unaudited`` option, hence this module.

Usage::

    python -m pipeline.secrets_gate reports/secrets.baseline
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def unaudited_findings(baseline: Mapping[str, Any]) -> list[str]:
    """Return ``file:line type`` for every finding not labelled a false positive (no secret values)."""
    problems: list[str] = []
    for filename, findings in sorted(baseline.get("results", {}).items()):
        for finding in findings:
            if finding.get("is_secret") is not False:
                label = "labelled a real secret" if finding.get("is_secret") else "not audited"
                problems.append(f"{filename}:{finding.get('line_number')} {finding.get('type')} ({label})")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Check the baseline named on the command line."""
    args = sys.argv[1:] if argv is None else list(argv)
    if len(args) != 1:
        print("usage: python -m pipeline.secrets_gate BASELINE", file=sys.stderr)
        return 2
    baseline = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    problems = unaudited_findings(baseline)
    for problem in problems:
        print(f"::error::detect-secrets: {problem}", file=sys.stderr)
    total = sum(len(findings) for findings in baseline.get("results", {}).values())
    if not problems:
        print(f"detect-secrets: {total} finding(s), all audited as false positives")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
