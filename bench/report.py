"""The report: machine information, the targets of issue 8, the printed table and the JSON schema."""

from __future__ import annotations

import os
import platform
# bandit: only fixed, local commands (servers, wrk, node, git)
import subprocess  # nosec B404  # runs git and wrk with fixed arguments, never a shell
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

from .models import ROOT
from .stats import ratio

SCHEMA = "medai-flow/bench-report/v1"
REQUIRED_KEYS = ("schema", "created", "quick", "machine", "config", "models", "raw", "http", "targets")
TARGET_KEYS = ("id", "description", "model", "value", "op", "threshold", "met")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str | None:
    try:
        done = subprocess.run(  # nosec B603 B607  # git from PATH, fixed arguments, no shell
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def _wrk_version() -> str | None:
    try:
        done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)  # nosec B603 B607  # no shell
    except (OSError, subprocess.SubprocessError):
        return None
    text = (done.stdout + done.stderr).strip().splitlines()
    return text[0] if text else None


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, memory, load average, Python and library versions, git commit."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    mem_kb = None
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            mem_kb = int(handle.readline().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "memory_total_mb": round(mem_kb / 1024) if mem_kb else None,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "onnxruntime": _version("onnxruntime"),
        "numpy": _version("numpy"),
        "pillow": _version("pillow"),
        "pydicom": _version("pydicom"),
        "fastapi": _version("fastapi"),
        "uvicorn": _version("uvicorn"),
        "wrk": _wrk_version(),
        "git_commit": _git_commit(),
    }


def cpu_snapshot() -> dict[str, float]:
    """Machine-wide CPU ticks from /proc/stat and this process tree's CPU seconds, for :func:`cpu_usage`."""
    import resource

    ticks = [0.0] * 8
    try:
        with open("/proc/stat", encoding="ascii") as handle:
            ticks = [float(v) for v in handle.readline().split()[1:9]]
    except (OSError, ValueError):
        pass
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # children already waited for
    return {
        "wall": __import__("time").monotonic(),
        "user": ticks[0] + ticks[1], "system": ticks[2] + ticks[5] + ticks[6], "idle": ticks[3] + ticks[4],
        "steal": ticks[7],
        "own_cpu_s": own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime + _live_descendants_cpu_s(),
    }  # fmt: skip


def _live_descendants_cpu_s() -> float:
    """CPU seconds used so far by this process's running descendants (servers, Azurite, wrk), from /proc."""
    hz = float(os.sysconf("SC_CLK_TCK"))
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rpartition(")")[2].split()
        except OSError:
            continue
        parents[int(entry)] = int(fields[1])
        cpu[int(entry)] = (float(fields[11]) + float(fields[12])) / hz  # utime, stime
    me = os.getpid()
    total = 0.0
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != me:
            ancestor = parents.get(ancestor)
        if ancestor == me:
            total += cpu[pid]
    return total


def cpu_usage(start: dict[str, float], end: dict[str, float]) -> dict[str, Any]:
    """How busy the machine was between two snapshots, and how much of it was not this benchmark.

    ``foreign_cores`` estimates the cores used by other tenants (busy CPU seconds of the whole
    machine minus this process tree's, over the wall time): the noise the figures carry.
    """
    hz = float(os.sysconf("SC_CLK_TCK")) if hasattr(os, "sysconf") else 100.0
    wall = max(1e-9, end["wall"] - start["wall"])
    busy_s = ((end["user"] - start["user"]) + (end["system"] - start["system"])) / hz
    steal_s = (end["steal"] - start["steal"]) / hz
    own_s = end["own_cpu_s"] - start["own_cpu_s"]
    return {
        "wall_s": round(wall, 1),
        "busy_cores": round(busy_s / wall, 2),
        "own_cores": round(own_s / wall, 2),
        "foreign_cores": round(max(0.0, busy_s - own_s) / wall, 2),
        "steal_cores": round(steal_s / wall, 2),
    }


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _target(tid: str, description: str, model: str | None, value: float | None, op: str, threshold: float,
            detail: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    met = None
    if value is not None:
        met = value >= threshold if op == ">=" else value <= threshold if op == "<=" else value < threshold
    return {
        "id": tid,
        "description": description,
        "model": model,
        "value": value,
        "op": op,
        "threshold": threshold,
        "met": met,
        "detail": detail,
    }


def compute_targets(
    report: dict[str, Any], primary: str, *, cold_start_models: Sequence[str] = (), memory_model: str | None = None
) -> list[dict[str, Any]]:
    """The targets of issue 8 as ratios from this run: its six, the cold start judged for each
    model measured (``met`` is None when not measured, and for every target of a quick run).

    ``primary`` is the model the HTTP, batch and cold-start targets are judged on (the issue's
    reference workload, the ResNet-18-sized classifier). ``cold_start_models`` and ``memory_model``
    name what the cold-start and memory sections measure when they run, so a run that skipped them
    still lists their targets, as not measured.
    """
    targets = []
    service = report.get("http", {}).get("service", {}).get(primary, {})
    peer = report.get("http", {}).get("peer", {}).get(primary, {})
    raw = report.get("raw", {}).get(primary, {})
    # The c1 and batch targets compare with raw figures taken in the same time window when available.
    raw_c1 = report.get("raw_interleaved", {}).get(primary) or raw
    s16, p16, s1 = service.get("c16", {}), peer.get("c16", {}), service.get("c1", {})
    targets.append(_target(
        "throughput_c16_vs_peer", "throughput at concurrency 16 >= 1.2x the FastAPI peer", primary,
        ratio(s16.get("throughput_rps"), p16.get("throughput_rps")), ">=", 1.2,
        {"service_rps": s16.get("throughput_rps"), "peer_rps": p16.get("throughput_rps")},
    ))  # fmt: skip
    targets.append(_target(
        "p99_over_p50_c16", "service p99 <= 1.5x its p50 at concurrency 16", primary,
        ratio(s16.get("p99_ms"), s16.get("p50_ms")), "<=", 1.5,
        {"p50_ms": s16.get("p50_ms"), "p99_ms": s16.get("p99_ms"), "non_2xx": s16.get("non_2xx")},
    ))  # fmt: skip
    targets.append(_target(
        "c1_p50_vs_raw", "service p50 at concurrency 1 <= 1.05x the raw in-process latency", primary,
        ratio(s1.get("p50_ms"), raw_c1.get("p50_ms")), "<=", 1.05,
        {"service_c1_p50_ms": s1.get("p50_ms"), "raw_p50_ms": raw_c1.get("p50_ms"),
         "raw_reference": "interleaved" if raw_c1 is not raw else "sequential section"},
    ))  # fmt: skip
    batch = report.get("batch", {}).get(primary, {})
    default_workers = batch.get(f"workers_{batch.get('default_workers', 2)}", {})
    raw_batch = batch.get("raw_reference") or raw
    # The target is the default policy's figure: a run that recorded another policy, or left what a move
    # does not leave (inputs in place, fewer archived than processed), is no measurement of it.
    left = default_workers.get("aftermath")
    on_default = default_workers.get("policy") == "move" and (
        left is None or (left["left_in_input"] == 0 and left["archived"] == default_workers.get("inputs"))
    )
    targets.append(_target(
        "batch_vs_raw", "blob batch path (backfill, default workers, policy move) >= 0.9x the raw pipeline's images/s",
        primary,
        ratio(default_workers.get("images_per_s"), raw_batch.get("images_per_s")) if on_default else None, ">=", 0.9,
        {"batch_images_per_s": default_workers.get("images_per_s"), "policy": default_workers.get("policy"),
         "raw_images_per_s": raw_batch.get("images_per_s"),
         "raw_reference": "interleaved" if raw_batch is not raw else "sequential section"},
    ))  # fmt: skip
    measured_cold = report.get("cold_start", {})
    for model in [*measured_cold, *(m for m in cold_start_models if m not in measured_cold)]:
        cold = measured_cold.get(model, {})
        targets.append(_target(
            f"cold_start_{model}", "cold start (spawn to first 200) <= 2x the bare minimum", model,
            ratio(cold.get("service_median_s"), cold.get("bare_median_s")), "<=", 2.0,
            {"service_s": cold.get("service_median_s"), "bare_s": cold.get("bare_median_s")},
        ))  # fmt: skip
    memory = report.get("memory", {}).get("service") or {}
    if memory or memory_model:  # measured, or a section that would have measured it was skipped
        requests = memory.get("requests", report.get("config", {}).get("memory_requests", "N"))
        targets.append(_target(
            "rss_growth", f"service RSS growth after warm-up < 5% over {requests} varying-size requests",
            memory.get("model", memory_model), memory.get("growth_percent"), "<", 5.0,
            {"baseline_kb": memory.get("baseline_rss_kb"), "final_kb": memory.get("final_rss_kb"),
             "max_growth_percent": memory.get("max_growth_percent")},
        ))  # fmt: skip
    if report.get("quick"):  # shorter runs and fewer inputs: the ratios are kept, the verdicts are not
        for target in targets:
            target["met"], target["quick"] = None, True
    return targets


def validate_report(report: dict[str, Any]) -> list[str]:
    """Problems with a report's shape (empty when it is well-formed)."""
    problems = [f"missing key {key!r}" for key in REQUIRED_KEYS if key not in report]
    if report.get("schema") not in (None, SCHEMA) and "schema" in report:
        problems.append(f"schema is {report.get('schema')!r}, expected {SCHEMA!r}")
    machine = report.get("machine", {})
    for key in ("cpu_model", "cpu_count", "python", "onnxruntime"):
        if key not in machine:
            problems.append(f"machine lacks {key!r}")
    for index, target in enumerate(report.get("targets", [])):
        missing = [key for key in TARGET_KEYS if key not in target]
        if missing:
            problems.append(f"target {index} lacks {missing}")
        elif target["met"] not in (True, False, None):
            problems.append(f"target {target['id']} has met={target['met']!r}")
    for server, per_model in report.get("http", {}).items():
        for model, points in per_model.items():
            for point, values in points.items():
                for key in ("throughput_rps", "p50_ms", "p99_ms"):
                    if key not in values:
                        problems.append(f"http.{server}.{model}.{point} lacks {key}")
    return problems


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render(report: dict[str, Any]) -> str:
    """The human-readable table printed at the end of a run."""
    lines: list[str] = []
    machine = report["machine"]
    lines.append(
        f"MedAI Flow benchmark  {report['created']}  {'QUICK' if report['quick'] else 'full'} run  "
        f"commit {str(machine.get('git_commit'))[:12]}"
    )
    lines.append(
        f"machine: {machine['cpu_model']}, {machine['cpu_affinity']} cores usable, "
        f"Python {machine['python']}, onnxruntime {machine['onnxruntime']}, load avg at start "
        f"{machine['load_average']}"
    )
    usage = report.get("cpu_usage")
    if usage:
        lines.append(
            f"CPU during the run: {usage['busy_cores']} cores busy, of which this benchmark {usage['own_cores']}, "
            f"other processes and kernel ~{usage['foreign_cores']} (steal {usage['steal_cores']}): "
            "the noise in these figures"
        )
    if report.get("raw"):
        lines.append("")
        lines.append("Raw in-process pipeline (decode + preprocess + session.run, sequential)")
        lines.append(f"  {'model':<16} {'p50 ms':>8} {'p99 ms':>8} {'img/s':>7}   stages p50 ms (decode/preprocess/run)"
                     "   engine.predict p50 ms")  # fmt: skip
        for model, raw in report["raw"].items():
            st = raw["stages_p50_ms"]
            eng = report.get("engine", {}).get(model, {})
            lines.append(
                f"  {model:<16} {_fmt(raw['p50_ms'], 2):>8} {_fmt(raw['p99_ms'], 2):>8} {_fmt(raw['images_per_s']):>7}"
                f"   {_fmt(st['decode'], 2)} / {_fmt(st['preprocess'], 2)} / {_fmt(st['run'], 2)}"
                f"   {_fmt(eng.get('p50_ms'), 2)}"
            )
    if report.get("raw_interleaved"):
        lines.append("  interleaved with the c1 HTTP rounds (the reference of 'p50/raw'): " + ", ".join(
            f"{model} p50 {_fmt(v['p50_ms'], 2)} ms" for model, v in report["raw_interleaved"].items()))
    http = report.get("http") or {}
    if any(http.values()):
        lines.append("")
        lines.append("HTTP (wrk, closed loop, 1 thread; throughput counts 2xx only; median of the rounds; "
                     "'other' = cores used by other processes meanwhile)")  # fmt: skip
        lines.append(f"  {'model':<16} {'server':<8} {'conc':>4} {'req/s':>8} {'p50 ms':>9} {'p99 ms':>9} "
                     f"{'p99/p50':>7} {'non2xx':>6} {'x peer':>7} {'p50/raw':>7} {'other':>5}")  # fmt: skip
        models = list(report.get("raw") or {}) or list(dict.fromkeys(m for server in http.values() for m in server))
        for model in models:
            for server in ("service", "peer"):
                for point, values in http.get(server, {}).get(model, {}).items():
                    peer_rps = http.get("peer", {}).get(model, {}).get(point, {}).get("throughput_rps")
                    vs_peer = ratio(values["throughput_rps"], peer_rps, digits=None) if server == "service" else None
                    raw_ref = report.get("raw_interleaved", {}).get(model) or (report.get("raw") or {}).get(model)
                    vs_raw = ratio(values["p50_ms"], raw_ref["p50_ms"], digits=None) if raw_ref else None
                    lines.append(
                        f"  {model:<16} {server:<8} {point[1:]:>4} {_fmt(values['throughput_rps']):>8} "
                        f"{_fmt(values['p50_ms']):>9} {_fmt(values['p99_ms']):>9} "
                        f"{_fmt(ratio(values['p99_ms'], values['p50_ms'], digits=None), 2):>7} {values['non_2xx']:>6} "
                        f"{_fmt(vs_peer, 2):>7} {_fmt(vs_raw, 2):>7} {_fmt(values.get('foreign_cores'), 2):>5}"
                    )
    if report.get("sporadic"):
        lines.append("")
        lines.append("Sporadic requests (one at a time, each on a new connection, a pause after every response; "
                     "'x c1' = p50 over the same server's c1 p50)")  # fmt: skip
        for server, values in report["sporadic"].items():
            c1 = http.get(server, {}).get(values["model"], {}).get("c1", {}).get("p50_ms")
            lines.append(
                f"  {values['model']:<16} {server:<8} {values['requests']} requests {_fmt(values['gap_s'])} s apart: "
                f"p50 {_fmt(values.get('p50_ms'))} ms, p90 {_fmt(values.get('p90_ms'))} ms, "
                f"max {_fmt(values.get('max_ms'))} ms   x c1 {_fmt(ratio(values.get('p50_ms'), c1, digits=None), 2)}   "
                f"non-200 {values['non_200']}"
            )
    if report.get("batch"):
        lines.append("")
        lines.append("Blob batch path (Azurite, service.backfill.run -> BatchProcessor; policy move, the default, "
                     "unless a line names another)")  # fmt: skip
        for model, runs in report["batch"].items():
            raw_ref = runs.get("raw_reference") or report["raw"].get(model, {})
            raw_ips = raw_ref.get("images_per_s")
            lines.append(f"  {model:<16} raw pipeline in the same window: {_fmt(raw_ips)} img/s")
            policy_ips = (runs.get("raw_reference_policies") or raw_ref).get("images_per_s")
            for key, values in runs.items():
                if key.startswith("workers_"):
                    # the policy is named only if the run recorded another than the heading's
                    label = f"policy {values['policy']}, " if values.get("policy", "move") != "move" else ""
                    reference = raw_ips
                elif key.startswith("policy_"):
                    if key == "policy_move":
                        lines.append(f"  {model:<16} the policies side by side; raw pipeline in their window: "
                                     f"{_fmt(policy_ips)} img/s")  # fmt: skip
                    label, reference = f"policy {values['policy']}, ", policy_ips
                else:
                    continue
                left = values.get("aftermath")
                after = (f"   left {left['left_in_input']} (tagged {left['tagged']}), archived {left['archived']}"
                         if left else "")  # fmt: skip
                lines.append(
                    f"  {model:<16} {label}{values['workers']} worker(s): {_fmt(values['images_per_s'])} img/s "
                    f"({values['inputs']} inputs, {_fmt(values['elapsed_s'], 2)} s)   x raw "
                    f"{_fmt(ratio(values['images_per_s'], reference, digits=None), 2)}   Azurite used "
                    f"{_fmt(values.get('azurite_cores'), 2)} cores{after}"
                )
    if report.get("cold_start"):
        lines.append("")
        lines.append("Cold start (median; spawn to first 200 vs bare interpreter+numpy+onnxruntime+session+run)")
        for model, cold in report["cold_start"].items():
            lines.append(
                f"  {model:<16} service {_fmt(cold['service_median_s'], 3)} s   bare {_fmt(cold['bare_median_s'], 3)} s"
                f"   ratio {_fmt(ratio(cold['service_median_s'], cold['bare_median_s'], digits=None), 2)}"
            )
    if report.get("memory"):
        lines.append("")
        lines.append("Memory (VmRSS at rest after a warm-up pass and after N varying-size requests; max under load)")
        for server, mem in report["memory"].items():
            lines.append(
                f"  {server:<8} {mem['model']}: {mem['requests']} req, baseline {mem['baseline_rss_kb'] / 1024:.1f} MiB"
                f" -> final {mem['final_rss_kb'] / 1024:.1f} MiB ({mem['growth_percent']:+.2f}%), max sampled "
                f"{mem['max_sampled_rss_kb'] / 1024:.1f} MiB ({mem['max_growth_percent']:+.2f}%), "
                f"threads {mem['threads']}, non-200 {mem['non_200']}"
            )
    lines.append("")
    if report.get("quick"):
        lines.append("Targets (issue 8), ratios from this QUICK run: a smoke test of the suite (shorter runs, "
                     "fewer inputs), not a verdict")  # fmt: skip
    else:
        lines.append("Targets (issue 8), ratios from this run")
    for target in report["targets"]:
        if target["value"] is None:
            verdict = "not measured"
        elif target.get("quick"):
            verdict = "quick run"
        else:
            verdict = "MET" if target["met"] else "NOT MET"
        lines.append(
            f"  [{verdict:^12}] {target['id']:<28} {_fmt(target['value'], 3):>8} {target['op']} "
            f"{target['threshold']:<5} ({target['model']}): {target['description']}"
        )
    return "\n".join(lines)
