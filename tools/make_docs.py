"""Regenerate the README's generated sections from the code.

Sections between ``<!-- BEGIN GENERATED: name -->`` and ``<!-- END GENERATED: name -->``:

* ``settings``: every environment variable, its default and meaning (from
  :mod:`inference.settings`);
* ``errors``: every error code, its status and whether a retry helps (from
  :mod:`inference.errors`);
* ``presets``: the performance presets of the Function App and the AKS pods (from
  :mod:`infra.contract`);
* ``performance``: the latest full run of the benchmark suite, rendered from the committed
  report ``bench/results/latest.json`` (``make bench-publish`` replaces it);
* ``include:<path>``: another Markdown file of the repository (``infra/README.md``,
  ``pipeline/README.md``, ...), its title dropped and its headings one level
  deeper, so the README holds the whole documentation and cannot drift from the
  file kept next to the code it describes.

Usage::

    python tools/make_docs.py          # rewrite README.md
    python tools/make_docs.py --check  # exit 1 if README.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from inference.errors import all_error_types  # noqa: E402 - after the path fix above
from inference.settings import describe_settings  # noqa: E402

README = ROOT / "README.md"
_ABSTRACT = {"bad_request", "unprocessable_image", "service_unavailable"}  # bases never raised themselves


def settings_table() -> str:
    lines = ["| Variable | Default | Meaning |", "|---|---|---|"]
    for row in describe_settings():
        lines.append(f"| `{row['env']}` | `{row['default']}` | {row['doc']} |")
    return "\n".join(lines)


def errors_table() -> str:
    lines = ["| Status | Code | Meaning | Retry helps |", "|---|---|---|---|"]
    for cls in all_error_types():
        if cls.code in _ABSTRACT and cls.__subclasses__():
            continue
        lines.append(f"| {cls.status} | `{cls.code}` | {cls.title} | {'yes' if cls.retryable else 'no'} |")
    return "\n".join(lines)


BENCH_REPORT = ROOT / "bench" / "results" / "latest.json"


def performance() -> str:
    import json

    from bench.report import render as render_bench

    report = json.loads(BENCH_REPORT.read_text(encoding="utf-8"))
    return "```text\n" + render_bench(report) + "\n```"


def presets_table() -> str:
    from infra.contract import PERFORMANCE_PRESETS
    from infra.system.params import PYTHON_THREADPOOL

    # What a Flex preset leaves out is either the platform's (its worker process count) or a Bicep
    # parameter of the Function App that every instance size shares.
    bicep_parameters = {
        "PYTHON_THREADPOOL_THREAD_COUNT": f"`{PYTHON_THREADPOOL.default}` (Bicep parameter `{PYTHON_THREADPOOL.name}`)"
    }
    names = list(PERFORMANCE_PRESETS)
    keys = sorted({key for preset in PERFORMANCE_PRESETS.values() for key in preset})
    lines = ["| Setting | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (len(names) + 1) + "|"]
    for key in keys:
        fallback = bicep_parameters.get(key, "(platform)")
        cells = [f"`{PERFORMANCE_PRESETS[n][key]}`" if key in PERFORMANCE_PRESETS[n] else fallback for n in names]
        lines.append(f"| `{key}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


SECTIONS = {
    "settings": settings_table,
    "errors": errors_table,
    "performance": performance,
    "presets": presets_table,
}


def include(path: str) -> str:
    """The Markdown file at ``path``, without its title, headings demoted one level."""
    lines = (ROOT / path).read_text(encoding="utf-8").rstrip("\n").splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    while lines and not lines[0].strip():
        lines = lines[1:]
    fenced = False
    out = []
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
        out.append("#" + line if (line.startswith("#") and not fenced) else line)
    return "\n".join(out)


def render(text: str) -> str:
    for path in re.findall(r"<!-- BEGIN GENERATED: include:(\S+) -->", text):
        marker = f"GENERATED: include:{re.escape(path)} -->"
        pattern = re.compile(rf"(<!-- BEGIN {marker}\n)(?:.*?\n)?(<!-- END {marker})", re.DOTALL)
        text = pattern.sub(lambda m, p=path: m.group(1) + include(p) + "\n" + m.group(2), text)
    for name, build in SECTIONS.items():
        pattern = re.compile(
            rf"(<!-- BEGIN GENERATED: {name} -->\n)(?:.*?\n)?(<!-- END GENERATED: {name} -->)", re.DOTALL
        )
        if not pattern.search(text):
            raise SystemExit(f"README.md has no generated section {name!r}")
        text = pattern.sub(lambda m, b=build: m.group(1) + b() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    current = README.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh != current:
            print("README.md is stale: run python tools/make_docs.py", file=sys.stderr)
            return 1
        return 0
    README.write_text(fresh, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
