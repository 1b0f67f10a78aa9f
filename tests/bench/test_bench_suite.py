"""Fast checks of the benchmark suite's own logic (no timing, no servers): bench/ is a benchmark,
these only prove its arithmetic, its report format and its model generator are right."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from bench import models as bench_models
from bench.load import median_point, parse_wrk
from bench.report import SCHEMA, compute_targets, render, validate_report
from bench.stats import growth_percent, percentile, ratio, summarize_ms

pytestmark = pytest.mark.requirement("REQ-PERF-006")


@pytest.mark.parametrize("q", [0, 1, 25, 50, 90, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(q: float) -> None:
    rng = np.random.default_rng(7)
    for size in (1, 2, 3, 10, 101):
        values = rng.exponential(50.0, size).tolist()
        assert percentile(values, q) == pytest.approx(float(np.percentile(values, q)), rel=1e-12)


def test_percentile_known_values_and_errors() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5  # between the two middle ranks
    assert percentile([10, 20, 30, 40, 50], 99) == pytest.approx(49.6)  # rank 3.96
    assert percentile([5], 99) == 5.0
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_ratio_growth() -> None:
    summary = summarize_ms([4.0, 1.0, 3.0, 2.0])
    assert (summary["n"], summary["min_ms"], summary["p50_ms"], summary["max_ms"]) == (4, 1.0, 2.5, 4.0)
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0) is None and ratio(None, 2.0) is None
    assert growth_percent(200.0, 210.0) == 5.0
    with pytest.raises(ValueError):
        growth_percent(0.0, 1.0)


def test_parse_wrk_counts_only_2xx() -> None:
    line = (
        'BENCH_JSON {"requests":120,"duration_us":10000000,"bytes":1,"errors":{"connect":0,"read":0,"write":0,'
        '"status":20,"timeout":1},"latency_us":{"min":1000,"mean":2500.5,"stdev":10.0,"max":9000,'
        '"p50":2000,"p75":2500,"p90":3000,"p99":8000,"p999":9000}}'
    )
    result = parse_wrk("Running 10s test\n" + line + "\n")
    assert result["ok"] == 100 and result["non_2xx"] == 20
    assert result["throughput_rps"] == 10.0
    assert result["p50_ms"] == 2.0 and result["p99_ms"] == 8.0
    assert result["socket_errors"]["timeout"] == 1
    with pytest.raises(ValueError):
        parse_wrk("wrk: connection refused")


def test_median_point_takes_the_median_round() -> None:
    keys = ("p75_ms", "p90_ms", "p999_ms", "mean_ms")
    rounds = [
        {"throughput_rps": rps, "p50_ms": p50, "p99_ms": p99, "max_ms": p99, "requests": 10, "ok": 9, "non_2xx": 1,
         **{k: p50 for k in keys}}
        for rps, p50, p99 in ((10.0, 100.0, 300.0), (4.0, 400.0, 900.0), (11.0, 90.0, 200.0))
    ]  # fmt: skip
    point = median_point(rounds)
    assert (point["throughput_rps"], point["p50_ms"], point["p99_ms"]) == (10.0, 100.0, 300.0)
    assert (point["requests"], point["ok"], point["non_2xx"], point["max_ms"]) == (30, 27, 3, 900.0)
    assert len(point["rounds"]) == 3


def _point(rps: float, p50: float, p99: float) -> dict[str, float]:
    return {"throughput_rps": rps, "p50_ms": p50, "p99_ms": p99, "non_2xx": 0}


def _synthetic_report() -> dict:
    model = "bench-resnet18"
    return {
        "schema": SCHEMA,
        "created": "2026-12-03T00:00:00Z",
        "quick": False,
        "machine": {"cpu_model": "x", "cpu_count": 2, "cpu_affinity": 2, "python": "3.11", "onnxruntime": "1",
                    "load_average": [0.0, 0.0, 0.0], "git_commit": "abc"},  # fmt: skip
        "config": {},
        "models": {},
        "raw": {model: {"p50_ms": 40.0, "p99_ms": 45.0, "images_per_s": 25.0,
                        "stages_p50_ms": {"decode": 7.0, "preprocess": 6.0, "run": 27.0}}},  # fmt: skip
        "http": {
            "service": {model: {"c1": _point(24.0, 41.0, 50.0), "c16": _point(30.0, 500.0, 700.0)}},
            "peer": {model: {"c1": _point(24.0, 40.0, 45.0), "c16": _point(24.0, 600.0, 3000.0)}},
        },
        "batch": {model: {"workers_2": {"workers": 2, "policy": "move", "inputs": 10, "elapsed_s": 1.0,
                                        "images_per_s": 20.0}}},  # fmt: skip
        "cold_start": {model: {"service_median_s": 1.0, "bare_median_s": 0.6}},
        "memory": {"service": {"model": "bench-unet", "requests": 1000, "baseline_rss_kb": 1000,
                               "final_rss_kb": 1060, "growth_percent": 6.0, "max_growth_percent": 7.0,
                               "max_sampled_rss_kb": 1070, "threads": 8, "non_200": 0}},  # fmt: skip
        "targets": [],
    }


def test_targets_are_ratios_with_verdicts() -> None:
    report = _synthetic_report()
    targets = {t["id"]: t for t in compute_targets(report, "bench-resnet18")}
    assert targets["throughput_c16_vs_peer"]["value"] == 1.25 and targets["throughput_c16_vs_peer"]["met"] is True
    assert targets["p99_over_p50_c16"]["value"] == 1.4 and targets["p99_over_p50_c16"]["met"] is True
    assert targets["c1_p50_vs_raw"]["value"] == 1.025 and targets["c1_p50_vs_raw"]["met"] is True
    assert targets["batch_vs_raw"]["value"] == 0.8 and targets["batch_vs_raw"]["met"] is False
    assert targets["cold_start_bench-resnet18"]["value"] == 1.667 and targets["cold_start_bench-resnet18"]["met"]
    assert targets["rss_growth"]["met"] is False  # 6% is not below 5%
    report["targets"] = list(targets.values())
    assert validate_report(report) == []
    assert "NOT MET" in render(report) and "batch_vs_raw" in render(report)
    assert "baseline 1.0 MiB -> final 1.0 MiB (+6.00%)" in render(report)  # kB / 1024: MiB, not MB
    json.dumps(report)  # the report is plain JSON


def test_interleaved_raw_references_are_preferred() -> None:
    report = _synthetic_report()
    report["raw_interleaved"] = {"bench-resnet18": {"p50_ms": 20.5, "p99_ms": 30.0, "images_per_s": 48.8}}
    report["batch"]["bench-resnet18"]["raw_reference"] = {"p50_ms": 50.0, "p99_ms": 60.0, "images_per_s": 20.0}
    targets = {t["id"]: t for t in compute_targets(report, "bench-resnet18")}
    assert targets["c1_p50_vs_raw"]["value"] == 2.0 and targets["c1_p50_vs_raw"]["met"] is False
    assert targets["batch_vs_raw"]["value"] == 1.0 and targets["batch_vs_raw"]["met"] is True
    report["targets"] = list(targets.values())
    assert "same window" in render(report)


def test_missing_measurement_is_not_a_verdict_and_bad_reports_are_named() -> None:
    report = _synthetic_report()
    del report["http"]["peer"]
    targets = {t["id"]: t for t in compute_targets(report, "bench-resnet18")}
    assert targets["throughput_c16_vs_peer"]["met"] is None
    broken = {"schema": SCHEMA, "machine": {}, "http": {"service": {"m": {"c1": {"p50_ms": 1}}}}, "targets": [{}]}
    problems = validate_report(broken)
    assert any("missing key 'raw'" in p for p in problems)
    assert any("cpu_model" in p for p in problems)
    assert any("throughput_rps" in p for p in problems)
    assert any("target 0" in p for p in problems)


def test_resnet18_generator_has_resnet18_size_and_cost() -> None:
    model, macs = bench_models.resnet18()
    assert bench_models.parameter_count(model) == bench_models.RESNET18_PARAMS  # torchvision resnet18: 11,689,512
    assert 1.75e9 < macs < 1.9e9  # ResNet-18: about 1.8 GMAC at 224 x 224
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "BatchNormalization", "Relu", "Add", "MaxPool", "GlobalAveragePool", "Gemm"} <= ops
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 224, 224]
    # Same seed, same bytes.
    again, _ = bench_models.resnet18()
    assert again.graph.initializer[0].raw_data == model.graph.initializer[0].raw_data


def test_unet_generator_runs_at_any_size_and_manifests_match_the_graphs(tmp_path) -> None:
    import onnxruntime as ort

    from inference.manifest import parse_manifest
    from inference.models import check_signature

    unet, macs = bench_models.unet()
    onnx.checker.check_model(unet, full_check=True)
    assert 0.3e9 < macs < 1e9
    sessions = {
        bench_models.UNET_NAME: ort.InferenceSession(unet.SerializeToString(), providers=["CPUExecutionProvider"]),
        bench_models.RESNET_NAME: ort.InferenceSession(
            bench_models.resnet18()[0].SerializeToString(), providers=["CPUExecutionProvider"]
        ),
    }
    for height, width in ((64, 64), (37, 101)):
        (scores,) = sessions[bench_models.UNET_NAME].run(None, {"image": np.zeros((1, 1, height, width), np.float32)})
        assert scores.shape == (1, 2, height, width)
    for name, raw in bench_models.manifests("0" * 64, "1" * 64).items():
        manifest = parse_manifest(raw, base_dir=tmp_path)
        fixed_hw, constants = check_signature(manifest, sessions[name])  # raises on any mismatch
        assert fixed_hw == ((224, 224) if name == bench_models.RESNET_NAME else (None, None))
        assert constants == {}


def test_publish_refuses_a_quick_or_broken_report_and_keeps_a_full_one(tmp_path, monkeypatch):
    import bench.__main__ as cli

    target = tmp_path / "results" / "latest.json"
    monkeypatch.setattr(cli, "PUBLISHED", target)
    monkeypatch.setattr(cli, "ROOT", tmp_path)
    report = _synthetic_report()
    report["targets"] = compute_targets(report, "bench-resnet18")
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps({**report, "quick": True}))
    assert cli.publish(quick) == 2 and not target.exists()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**report, "quick": False, "machine": {}}))
    assert cli.publish(broken) == 2 and not target.exists()
    full = tmp_path / "full.json"
    full.write_text(json.dumps({**report, "quick": False}))
    assert cli.publish(full) == 0
    assert json.loads(target.read_text()) == {**report, "quick": False}


def test_sporadic_requests_are_sent_one_at_a_time_and_the_first_is_discarded() -> None:
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from types import SimpleNamespace

    from bench.sporadic import measure_sporadic

    seen: list[tuple[str, bytes]] = []
    in_flight = [0, 0]  # now, most at once

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            in_flight[0] += 1
            in_flight[1] = max(in_flight[1], in_flight[0])
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((self.path, body))
            status = 503 if len(seen) == 3 else 200  # the third request fails
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()
            in_flight[0] -= 1

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        target = SimpleNamespace(host="127.0.0.1", port=server.server_address[1])
        result = measure_sporadic(target, "m", b"png-bytes", "image/png", requests=4, gap_s=0.01,
                                  settle_s=0.01)  # type: ignore  # fmt: skip
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [("/api/v1/models/m/infer", b"png-bytes")] * 5  # one discarded, then the four measured
    assert in_flight[1] == 1  # never two at once
    assert (result["non_200"], result["n"], result["requests"], result["gap_s"], result["settle_s"]) == (
        1, 3, 4, 0.01, 0.01)  # fmt: skip


def test_memory_settles_past_the_idle_delay_the_served_service_gets(monkeypatch) -> None:
    from bench.__main__ import _settle_s

    from inference.settings import RuntimeSettings

    monkeypatch.delenv("MEDAI_MEMORY_TRIM_IDLE_S", raising=False)
    assert _settle_s({}) == RuntimeSettings().memory_trim_idle_s + 1.0
    monkeypatch.setenv("MEDAI_MEMORY_TRIM_IDLE_S", "20")  # the servers inherit this shell's environment
    assert _settle_s({}) == 21.0
    assert _settle_s({"MEDAI_MEMORY_TRIM_IDLE_S": "2.5"}) == 3.5  # --service-env wins over the shell


def test_sporadic_figures_are_rendered_against_the_same_servers_c1() -> None:
    report = _synthetic_report()
    report["http"]["service"]["bench-resnet18"]["c1"]["p50_ms"] = 32.304  # 33.113 / 32.304 = 1.02504
    report["sporadic"] = {
        "service": {"model": "bench-resnet18", "requests": 30, "gap_s": 1.0, "non_200": 0,
                    "p50_ms": 33.113, "p90_ms": 60.0, "max_ms": 70.0},
        "peer": {"model": "bench-resnet18", "requests": 30, "gap_s": 1.0, "non_200": 0,
                 "p50_ms": 44.0, "p90_ms": 50.0, "max_ms": 55.0},
    }  # fmt: skip
    report["targets"] = compute_targets(report, "bench-resnet18")
    lines = [line for line in render(report).splitlines() if "s apart" in line]
    assert len(lines) == 2
    assert "service" in lines[0] and "x c1 1.03" in lines[0]  # rounded once, not 1.025 then 1.02
    assert "peer" in lines[1] and "x c1 1.10" in lines[1]  # 44.0 / 40.0


@pytest.mark.requirement("REQ-PERF-006")
@pytest.mark.parametrize("setting,expected", [(None, "1"), ("3", "3")])
def test_the_bare_minimum_gets_the_library_defaults_the_service_sets(tmp_path, monkeypatch, setting, expected):
    """The bare start and the service run with the same OpenBLAS thread count (or the operator's)."""
    import bench.coldstart as coldstart

    probe = tmp_path / "bare_probe.py"  # stands in for bare_start.py: records what it was given
    probe.write_text(
        "import os, sys\n"
        "open(sys.argv[1], 'w').write(str(os.environ.get('OPENBLAS_NUM_THREADS')))\n"
        "print('ready', flush=True)\n"
    )
    monkeypatch.setattr(coldstart, "BARE", probe)
    if setting is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", setting)
    seen = tmp_path / "seen.txt"
    assert coldstart.time_bare(seen) > 0
    assert seen.read_text() == expected


def test_targets_of_skipped_sections_are_listed_as_not_measured() -> None:
    """``--skip coldstart --skip memory``: their targets stay in the table, each saying 'not measured'."""
    report = _synthetic_report()
    measured = {t["id"] for t in compute_targets(report, "bench-resnet18")}
    del report["cold_start"], report["memory"]
    targets = compute_targets(report, "bench-resnet18", cold_start_models=["ct-tissue-seg", "bench-resnet18"],
                              memory_model="bench-unet")  # fmt: skip
    by_id = {t["id"]: t for t in targets}
    assert measured <= set(by_id) and {"cold_start_ct-tissue-seg", "rss_growth"} <= set(by_id)
    for tid in ("cold_start_ct-tissue-seg", "cold_start_bench-resnet18", "rss_growth"):
        assert by_id[tid]["value"] is None and by_id[tid]["met"] is None
    report["targets"] = targets
    text = render(report)
    for tid in ("cold_start_ct-tissue-seg", "cold_start_bench-resnet18", "rss_growth"):
        assert f"[not measured] {tid}" in text
    assert validate_report(report) == []


def test_skipped_sections_print_no_headings() -> None:
    """``--skip raw --skip http`` (what checking the cold starts alone runs): those headings go too."""
    report = _synthetic_report()
    whole = render(report)
    assert "Raw in-process pipeline" in whole and "HTTP (wrk" in whole
    report["raw"], report["http"] = {}, {"service": {}, "peer": {}}
    report["targets"] = compute_targets(report, "bench-resnet18")
    text = render(report)
    assert "Raw in-process pipeline" not in text and "HTTP (wrk" not in text
    assert "Cold start (median" in text and "ratio 1.67" in text
    only_http = _synthetic_report()
    only_http["raw"] = {}
    assert "HTTP (wrk" in render(only_http) and "bench-resnet18   service     1" in render(only_http)


def test_batch_policy_lines_are_rendered_and_the_target_stays_on_the_default_policy() -> None:
    report = _synthetic_report()
    runs = report["batch"]["bench-resnet18"]
    runs["default_workers"] = 2
    runs["workers_2"].update(policy="move", aftermath={"left_in_input": 0, "tagged": 0, "archived": 10})
    runs["raw_reference"] = {"p50_ms": 40.0, "p99_ms": 45.0, "images_per_s": 25.0}
    runs["raw_reference_policies"] = {"p50_ms": 50.0, "p99_ms": 55.0, "images_per_s": 20.0}
    runs["policy_move"] = {"workers": 2, "policy": "move", "inputs": 10, "elapsed_s": 0.45, "images_per_s": 22.0,
                           "aftermath": {"left_in_input": 0, "tagged": 0, "archived": 10}}  # fmt: skip
    runs["policy_keep"] = {"workers": 2, "policy": "keep", "inputs": 10, "elapsed_s": 0.4, "images_per_s": 25.0,
                           "aftermath": {"left_in_input": 10, "tagged": 0, "archived": 0}}  # fmt: skip
    targets = {t["id"]: t for t in compute_targets(report, "bench-resnet18")}
    # the first block's move run (20 img/s) over that block's raw reference (25), not the repeat (22)
    # or keep (25), and not over the policies' raw reference (20)
    assert targets["batch_vs_raw"]["value"] == 0.8 and targets["batch_vs_raw"]["met"] is False
    report["targets"] = list(targets.values())
    text = render(report)
    assert "bench-resnet18   2 worker(s): 20.0 img/s (10 inputs, 1.00 s)   x raw 0.80   Azurite used - cores   " \
           "left 0 (tagged 0), archived 10" in text
    assert "the policies side by side; raw pipeline in their window: 20.0 img/s" in text
    assert "policy move, 2 worker(s): 22.0 img/s (10 inputs, 0.45 s)   x raw 1.10" in text
    assert "policy keep, 2 worker(s): 25.0 img/s (10 inputs, 0.40 s)   x raw 1.25   Azurite used - cores   " \
           "left 10 (tagged 0), archived 0" in text
    # a default-worker run that recorded another policy, none, or left what a move does not leave is
    # no measurement of the target
    for change in ({"policy": "keep"}, {"policy": None},
                   {"aftermath": {"left_in_input": 10, "tagged": 0, "archived": 0}},
                   {"aftermath": {"left_in_input": 0, "tagged": 0, "archived": 9}}):  # fmt: skip
        changed = json.loads(json.dumps(report))
        changed["batch"]["bench-resnet18"]["workers_2"].update(change)
        target = {t["id"]: t for t in compute_targets(changed, "bench-resnet18")}["batch_vs_raw"]
        assert target["value"] is None and target["met"] is None, change
    runs["workers_2"]["policy"] = "keep"
    report["targets"] = compute_targets(report, "bench-resnet18")
    text = render(report)
    assert "bench-resnet18   policy keep, 2 worker(s): 20.0 img/s" in text
    assert "[not measured] batch_vs_raw" in text


def test_a_quick_run_keeps_its_ratios_and_gives_no_verdict() -> None:
    report = {**_synthetic_report(), "quick": True}
    targets = compute_targets(report, "bench-resnet18")
    by_id = {t["id"]: t for t in targets}
    assert by_id["throughput_c16_vs_peer"]["value"] == 1.25  # the same ratios as a full run's
    assert all(t["met"] is None and t["quick"] for t in targets)
    report["targets"] = targets
    text = render(report)
    assert "Targets (issue 8), ratios from this QUICK run" in text
    assert "[ quick run  ] throughput_c16_vs_peer" in text and "MET" not in text.split("QUICK run")[1]
    assert validate_report(report) == []
    del report["http"]["peer"]  # a section a quick run skipped: not measured, not "quick run"
    report["targets"] = compute_targets(report, "bench-resnet18")
    assert "[not measured] throughput_c16_vs_peer" in render(report)


@pytest.mark.integration
@pytest.mark.azurite
def test_the_batch_benchmark_runs_each_policy_it_names() -> None:
    """measure_batch itself, on the bundled model and its own Azurite: what each run left in the input
    and archive containers is the policy its report entry names."""
    from bench.batch import measure_batch
    from tests.conftest import DEFAULT_MODELS, read_input

    from service.backfill import DEFAULT_WORKERS

    results = measure_batch(DEFAULT_MODELS, "ct-tissue-seg", read_input("real_CT_small.dcm"), count=2,
                            raw_duration_s=0.1)  # fmt: skip
    moved = {"left_in_input": 0, "tagged": 0, "archived": 2}
    workers = [f"workers_{n}" for n in (DEFAULT_WORKERS, 1, 2 * DEFAULT_WORKERS)]
    assert results["default_workers"] == DEFAULT_WORKERS
    for key in workers:  # the target's block, the default worker count among it: the default policy
        assert results[key]["policy"] == "move" and results[key]["aftermath"] == moved
    assert results["policy_move"]["aftermath"] == moved
    # a raw round before each run and one after each block, each block's reference from its own rounds
    policies = ["policy_move", "policy_tag", "policy_keep"]
    assert [r["around"] for r in results["raw_reference"]["rounds"]] == [
        *(f"before {key}" for key in workers), f"after {workers[-1]}"]
    assert [r["around"] for r in results["raw_reference_policies"]["rounds"]] == [
        *(f"before {key}" for key in policies), f"after {policies[-1]}"]
    assert results["policy_tag"]["policy"] == "tag"
    assert results["policy_tag"]["aftermath"] == {"left_in_input": 2, "tagged": 2, "archived": 0}
    assert results["policy_keep"]["aftermath"] == {"left_in_input": 2, "tagged": 0, "archived": 0}
    assert all(results[key]["summary"]["processed"] == 2 for key in (*workers, "policy_tag", "policy_keep"))
