"""The benchmark suite of issue 8: one command, one run, side by side on the same machine and inputs.

    python -m bench run              # full run (about 11 minutes on two cores), writes reports/bench.json
    python -m bench run --quick      # smoke run (about 4 minutes)
    python -m bench models           # only generate the benchmark models (cached in .bench/models)

It measures the raw in-process pipeline, the service (``python -m service``) and the obvious
FastAPI peer (``bench/peer_server.py``) under ``wrk`` at concurrency 1, 4 and 16 and with requests
one second apart (sporadic traffic), the blob batch path against Azurite, cold start against the
bare minimum and RSS over varying-size requests, then prints a table with ratios against the targets
of issue 8 and writes a JSON report.
It is a benchmark, not a test: nothing here fails on a time; the exit status is 0 whether or not
targets are met (2 only when a measurement could not run).

``--service-env KEY=VALUE`` (repeatable) passes settings to the served service, e.g.
``--service-env MEDAI_ORT_INTRA_OP_THREADS=1 --service-env MEDAI_MAX_IN_FLIGHT=2``, so a tuning
change can be measured against the same peer and raw figures in one run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .load import median_point
from .models import CACHE, DEFAULT_NAME, RESNET_NAME, ROOT, UNET_NAME, ensure_models, parameter_count

PRIMARY = RESNET_NAME
ALL_MODELS = (DEFAULT_NAME, RESNET_NAME, UNET_NAME)
SECTIONS = ("raw", "http", "sporadic", "batch", "coldstart", "memory")


def _profile(quick: bool) -> dict[str, Any]:
    if quick:
        return {"raw_iterations": 20, "raw_warmup": 3, "http_duration_s": 4, "http_rounds": 1, "http_warmup_s": 2,
                "concurrency": [1, 4, 16], "batch_inputs": 12, "cold_repeats": 2, "memory_requests": 200,
                "sporadic_requests": 6, "sporadic_gap_s": 1.0}  # fmt: skip
    return {"raw_iterations": 100, "raw_warmup": 5, "http_duration_s": 6, "http_rounds": 3, "http_warmup_s": 3,
            "concurrency": [1, 4, 16], "batch_inputs": 200, "cold_repeats": 5, "memory_requests": 1000,
            "sporadic_requests": 30, "sporadic_gap_s": 1.0}  # fmt: skip


def _settle_s(service_env: dict[str, str]) -> float:
    """Seconds to wait for "at rest": one more than the served service's idle time before it returns
    memory, read from the environment it is started with (this shell's, then ``--service-env``)."""
    import os

    from inference.settings import Settings

    from .servers import LOCAL_ENV

    return Settings.from_env({**os.environ, **LOCAL_ENV, **service_env}).runtime.memory_trim_idle_s + 1.0


def _fresh_servers(
    models_dir: Path, model: str, log_dir: Path, service_env: dict[str, str]
) -> Iterator[tuple[str, Any]]:
    """The service, then the peer, each started afresh with ``model`` alone, ready; stopped after its turn."""
    from .servers import Server

    for kind in ("service", "peer"):
        env = service_env if kind == "service" else None
        with Server(kind, models_dir, models=[model], log_dir=log_dir, extra_env=env) as server:
            server.wait_ready()
            yield kind, server


def _log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _model_info(models_dir: Path) -> dict[str, Any]:
    import hashlib

    import onnx

    from .models import resnet18, unet

    info: dict[str, Any] = {}
    for name in ALL_MODELS:
        path = models_dir / name / "model.onnx"
        data = path.read_bytes()
        entry: dict[str, Any] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        entry["parameters"] = parameter_count(onnx.load_from_string(data))
        info[name] = entry
    info[RESNET_NAME]["gmacs_224"] = round(resnet18()[1] / 1e9, 3)
    info[UNET_NAME]["gmacs_512"] = round(unet()[1] / 1e9, 3)
    return info


def run(args: argparse.Namespace) -> int:
    from . import report as rep
    from .inputs import ensure_inputs, varying_size_inputs

    profile = _profile(args.quick)
    if args.duration:
        profile["http_duration_s"] = args.duration
    if args.rounds:
        profile["http_rounds"] = max(1, args.rounds)
    sections = [s for s in SECTIONS if s not in set(args.skip)]
    models = [m for m in (args.models.split(",") if args.models else ALL_MODELS) if m]
    service_env = dict(item.split("=", 1) for item in args.service_env)
    log_dir = CACHE / "logs"
    started = time.perf_counter()
    cpu_start = rep.cpu_snapshot()

    result: dict[str, Any] = {
        "schema": rep.SCHEMA,
        "created": rep.now(),
        "quick": args.quick,
        "machine": rep.machine_info(),
        "config": {**profile, "models": models, "primary_model": PRIMARY, "service_env": service_env,
                   "sections": sections, "command": " ".join(sys.argv)},  # fmt: skip
        "raw": {},
        "engine": {},
        "http": {"service": {}, "peer": {}},
        "raw_interleaved": {},
        "targets": [],
    }
    _log("generating models (cached) and inputs")
    models_dir = ensure_models()
    workloads = ensure_inputs()
    result["models"] = _model_info(models_dir)
    result["inputs"] = {m: {"file": str(w.input_path.relative_to(ROOT)), "bytes": len(w.body),
                            "media_type": w.media_type} for m, w in workloads.items()}  # fmt: skip
    failures: list[str] = []

    if "raw" in sections or "http" in sections or "batch" in sections:
        from .raw import measure_engine, measure_raw

        for model in models:
            _log(f"raw pipeline: {model}")
            body = workloads[model].body
            n, w = profile["raw_iterations"], profile["raw_warmup"]
            result["raw"][model] = measure_raw(models_dir, model, body, iterations=n, warmup=w)
            result["engine"][model] = measure_engine(models_dir, model, body, iterations=n, warmup=w)

    if "http" in sections:
        from .load import run_wrk, write_script
        from .raw import RawPipeline, median_raw
        from .servers import INFER_PATH, Server, wait_quiet

        service = Server("service", models_dir, models=models, log_dir=log_dir, extra_env=service_env)
        peer = Server("peer", models_dir, models=models, log_dir=log_dir)
        try:
            servers = {"service": service, "peer": peer}
            for name, server in servers.items():
                _log(f"{name} ready after {server.wait_ready():.2f} s (pid {server.pid})")
            threads = {}
            for model in models:
                wl = workloads[model]
                script = write_script(CACHE / "lua", wl.input_path, wl.media_type)
                for name, server in servers.items():
                    url = server.url(INFER_PATH.format(model=model))
                    run_wrk(url, script, connections=4, duration_s=profile["http_warmup_s"])  # warm-up, discarded
                    wait_quiet(server.pid)
                    result["http"][name][model] = {}
                raw_pipeline = RawPipeline(models_dir, model, wl.body)
                for concurrency in profile["concurrency"]:
                    rounds: dict[str, list[dict[str, Any]]] = {name: [] for name in servers}
                    raw_rounds: list[dict[str, Any]] = []
                    _log(f"wrk {model} c{concurrency}: {profile['http_rounds']} rounds of "
                         f"{profile['http_duration_s']} s per server, alternating")  # fmt: skip
                    for _ in range(profile["http_rounds"]):
                        for name, server in servers.items():  # alternating: drift hits both servers alike
                            url = server.url(INFER_PATH.format(model=model))
                            before = rep.cpu_snapshot()
                            point = run_wrk(url, script, connections=concurrency, duration_s=profile["http_duration_s"])
                            point["cpu"] = rep.cpu_usage(before, rep.cpu_snapshot())
                            # requests queued when wrk stopped would otherwise run into the next round
                            point["drain_s"] = round(wait_quiet(server.pid), 2)
                            rounds[name].append(point)
                        if concurrency == 1:  # the raw reference of the c1 target, in the same time window
                            raw_rounds.append(raw_pipeline.measure(duration_s=profile["http_duration_s"]))
                    for name in servers:
                        result["http"][name][model][f"c{concurrency}"] = median_point(rounds[name])
                    if raw_rounds:
                        result["raw_interleaved"][model] = median_raw(raw_rounds)
            from .servers import proc_status

            for name, server in servers.items():
                status = proc_status(server.pid)
                threads[name] = {"threads": status["Threads"], "rss_kb": status["VmRSS"], "hwm_kb": status["VmHWM"]}
            result["http_processes"] = threads
        finally:
            service.stop()
            peer.stop()

    if "sporadic" in sections:
        from inference.engine import InferenceEngine

        from .sporadic import measure_sporadic

        result["sporadic"] = {}
        model = PRIMARY if PRIMARY in models else models[0]
        wl = workloads[model]
        for kind, server in _fresh_servers(models_dir, model, log_dir, service_env):
            _log(f"sporadic: {kind}, {profile['sporadic_requests']} requests {profile['sporadic_gap_s']} s apart")
            result["sporadic"][kind] = measure_sporadic(
                server, model, wl.body, wl.media_type,
                requests=profile["sporadic_requests"], gap_s=profile["sporadic_gap_s"],
                settle_s=InferenceEngine.DICOM_WARMUP_DELAY_S + 2.0,  # past the start-up warm-up
            )  # fmt: skip

    if "batch" in sections:
        from .batch import measure_batch

        result["batch"] = {}
        for model in [m for m in (PRIMARY, DEFAULT_NAME) if m in models]:
            _log(f"batch path on Azurite: {model}, {profile['batch_inputs']} inputs")
            try:
                result["batch"][model] = measure_batch(
                    models_dir, model, workloads[model].body, count=profile["batch_inputs"], raw_duration_s=4.0
                )
            except (RuntimeError, TimeoutError) as err:
                failures.append(f"batch {model}: {err}")

    cold_models = [m for m in (DEFAULT_NAME, PRIMARY) if m in models]  # what the cold-start section measures
    if "coldstart" in sections:
        from .coldstart import measure_cold_start

        result["cold_start"] = {}
        for model in cold_models:
            _log(f"cold start: {model}, {profile['cold_repeats']} repeats (+1 discarded)")
            wl = workloads[model]
            result["cold_start"][model] = measure_cold_start(
                models_dir, model, wl.body, wl.media_type, repeats=profile["cold_repeats"], log_dir=log_dir
            )

    if "memory" in sections and UNET_NAME in models:
        from .memory import measure_memory

        result["memory"] = {}
        settle_s = _settle_s(service_env)
        for kind, server in _fresh_servers(models_dir, UNET_NAME, log_dir, service_env):
            _log(f"memory: {kind}, {profile['memory_requests']} varying-size requests to {UNET_NAME}")
            result["memory"][kind] = measure_memory(
                server, UNET_NAME, varying_size_inputs(), requests=profile["memory_requests"], settle_s=settle_s
            )

    result["machine"]["load_average_end"] = [round(v, 2) for v in __import__("os").getloadavg()]
    result["cpu_usage"] = rep.cpu_usage(cpu_start, rep.cpu_snapshot())
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    result["failures"] = failures
    result["targets"] = rep.compute_targets(
        result, PRIMARY, cold_start_models=cold_models, memory_model=UNET_NAME if UNET_NAME in models else None
    )
    problems = rep.validate_report(result)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(rep.render(result))
    print(f"\nJSON report: {out}  ({result['elapsed_s']} s)")
    for problem in problems + failures:
        print(f"problem: {problem}", file=sys.stderr)
    return 2 if (problems or failures) else 0


PUBLISHED = ROOT / "bench" / "results" / "latest.json"


def publish(report_path: Path) -> int:
    """Copy a complete, full run's report to bench/results/latest.json (the README renders it)."""
    from .report import validate_report

    report = json.loads(report_path.read_text(encoding="utf-8"))
    problems = validate_report(report)
    if report.get("quick"):
        problems.append("a --quick run is a smoke test, not figures to publish")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    PUBLISHED.parent.mkdir(parents=True, exist_ok=True)
    PUBLISHED.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")  # the run's own order
    print(f"published {report_path} as {PUBLISHED.relative_to(ROOT)}; run python tools/make_docs.py")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="run the suite and write the JSON report")
    run_parser.add_argument("--quick", action="store_true", help="fewer requests and shorter runs (smoke test)")
    run_parser.add_argument("--out", default=str(ROOT / "reports" / "bench.json"), help="JSON report path")
    run_parser.add_argument("--models", default="", help=f"comma-separated subset of {','.join(ALL_MODELS)}")
    run_parser.add_argument(
        "--skip", action="append", default=[], choices=SECTIONS,
        help="skip a section (raw is measured anyway when http or batch runs: their targets compare with it)",
    )  # fmt: skip
    run_parser.add_argument("--duration", type=float, help="seconds per wrk round (overrides the profile)")
    run_parser.add_argument("--rounds", type=int, help="wrk rounds per point and server (overrides the profile)")
    run_parser.add_argument("--service-env", action="append", default=[], metavar="KEY=VALUE",
                            help="setting passed to the served service (repeatable)")  # fmt: skip
    models_parser = sub.add_parser("models", help="generate the benchmark models (cached) and print their directory")
    models_parser.add_argument("--force", action="store_true", help="regenerate even when the cache is current")
    publish_parser = sub.add_parser("publish", help="make a full run's report the README's performance figures")
    publish_parser.add_argument("report", help="the JSON report of a full (not --quick) run")
    args = parser.parse_args(argv)
    if args.command == "publish":
        return publish(Path(args.report))
    if args.command == "models":
        print(ensure_models(force=args.force))
        return 0
    for item in args.service_env:
        if "=" not in item:
            parser.error(f"--service-env expects KEY=VALUE, got {item!r}")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
