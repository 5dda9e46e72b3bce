import json
import math

import pytest
import yaml

from servopt.errors import InfeasibleError
from servopt.hardware import load_system
from servopt.pipeline import deployment_files, run_experiments
from servopt.report.document import result_document
from servopt.report.rows import top_rows
from servopt.report.schema import ResultDoc


def test_result_document_validates_and_names_the_winner(qwen8_result):
    _, result = qwen8_result
    doc = result_document(result)
    ResultDoc.model_validate(doc)
    best = doc["best"]
    assert best["experiment"] in ("agg", "disagg")
    winner = max(result.feasible, key=lambda r: r.mode.identical.tokens_per_s_per_gpu)
    assert best["tokens_per_s_per_gpu"] == pytest.approx(winner.mode.identical.tokens_per_s_per_gpu)
    assert best["tpot_ms"] <= 40.0 and best["ttft_ms"] <= 1000.0
    assert best["total_gpus_used"] <= 8


def test_top_rows_are_ranked_and_rank_one_is_the_optimum(qwen8_result):
    _, result = qwen8_result
    for run in result.feasible:
        rows = top_rows(run)
        values = [r["tokens_per_s_per_gpu"] for r in rows]
        assert values == sorted(values, reverse=True)
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert values[0] == pytest.approx(run.mode.identical.tokens_per_s_per_gpu)
        key = "parallel" if run.experiment.serving_mode == "agg" else "decode_parallel"
        assert len({r[key] for r in rows}) == len(rows)  # one row per layout group


def test_every_recommended_configuration_fits_in_memory(qwen8_result):
    _, result = qwen8_result
    capacity_gib = load_system("h200_sxm").gpu.mem_capacity_bytes / 2**30
    for row in result_document(result)["agg"] + result_document(result)["disagg"]:
        for key in ("memory_gib", "prefill_memory_gib", "decode_memory_gib"):
            if key in row:
                assert 0 < row[key] < capacity_gib


def test_frontier_is_non_dominated_and_marks_the_choice(qwen8_result):
    _, result = qwen8_result
    doc = result_document(result)
    for exp in doc["experiments"]:
        pts = exp["pareto"]
        assert sum(p["chosen"] for p in pts) <= 1
        for a in pts:
            for b in pts:
                dominated = (
                    b["tokens_per_s_per_user"] >= a["tokens_per_s_per_user"]
                    and b["tokens_per_s_per_gpu"] >= a["tokens_per_s_per_gpu"]
                    and (b["tokens_per_s_per_user"], b["tokens_per_s_per_gpu"])
                    != (a["tokens_per_s_per_user"], a["tokens_per_s_per_gpu"])
                )
                assert not dominated


def test_same_input_same_output(qwen8_result):
    experiments, result = qwen8_result
    again = run_experiments(experiments)
    assert json.dumps(result_document(again), default=str) == json.dumps(result_document(result), default=str)


def test_deployment_files_carry_the_chosen_layout(qwen8_result):
    _, result = qwen8_result
    for run in result.feasible:
        row = top_rows(run)[0]
        files = deployment_files(result, run.name, 1)
        *_, manifest = yaml.safe_load_all(files["k8s_deploy.yaml"])
        services = {c["name"]: c for c in manifest["spec"]["components"]}
        if row["mode"] == "agg":
            cfg = yaml.safe_load(files["agg_config.yaml"])
            assert cfg["tensor_parallel_size"] == row["tp"] * row["dp"]
            assert cfg["max_batch_size"] == row["batch_size"]
            assert services["TRTLLMWorker"]["replicas"] == row["replicas"]
        else:
            p, d = yaml.safe_load(files["prefill_config.yaml"]), yaml.safe_load(files["decode_config.yaml"])
            assert p["tensor_parallel_size"] == row["prefill_tp"] * row["prefill_dp"]
            assert d["max_batch_size"] == row["decode_batch_size"]
            assert services["TRTLLMPrefillWorker"]["replicas"] == row["prefill_workers"] * row["replicas"]
            assert services["TRTLLMDecodeWorker"]["replicas"] == row["decode_workers"] * row["replicas"]


def test_infeasible_sla_names_the_binding_target_and_closest_values():
    from servopt.config import default_experiments

    with pytest.raises(InfeasibleError) as err:
        run_experiments(default_experiments("QWEN3_32B", 8, "h200_sxm", tpot=1.0))
    text = str(err.value)
    assert err.value.exit_code == 1
    assert "tpot" in text and "closest achievable TPOT" in text


def test_model_that_does_not_fit_says_so():
    from servopt.config import default_experiments

    with pytest.raises(InfeasibleError) as err:
        run_experiments(default_experiments("DEEPSEEK_V3", 4, "h200_sxm"))
    assert "does not fit in memory" in str(err.value)
    assert "GiB" in str(err.value)


def test_packed_deployment_never_worse_than_identical(qwen8_result):
    _, result = qwen8_result
    for run in result.feasible:
        assert run.mode.packed.tokens_per_s >= run.mode.identical.tokens_per_s * (1 - 1e-12)
        assert run.mode.packed.gpus_used <= 8
        assert math.isfinite(run.mode.packed_gain)


def test_only_tables_a_model_can_use_count_as_borrowed_for_it():
    from servopt.models.registry import resolve_model
    from servopt.pipeline import table_serves

    dense, moe, mla = (resolve_model(m) for m in ("QWEN3_32B", "QWEN3_30B_A3B", "DEEPSEEK_V3"))
    assert table_serves(dense, "gemm_perf") and not table_serves(dense, "moe_perf")
    assert table_serves(moe, "moe_perf") and table_serves(moe, "sglang_deepep_ll_perf")
    assert not table_serves(moe, "wideep_context_mla_perf") and not table_serves(
        dense, "mla_context_module_perf"
    )
    assert table_serves(mla, "wideep_context_mla_perf") and table_serves(mla, "moe_a2a_perf")


def test_the_pipeline_module_serves_the_web_workers_search_api(qwen8_result):
    # The web worker takes one module for the whole search (webapp/settings.py): the real one must
    # offer what it calls, and its documents must be what the worker reads.
    import servopt.pipeline as pipeline
    from servopt.webapp.worker import _deployments, _jsonable

    _, result = qwen8_result
    data = _jsonable(pipeline.result_document(result))
    assert data == json.loads(json.dumps(result_document(result), default=str))
    files = _deployments(pipeline, result, data)
    assert set(files) == {r.name for r in result.runs}
    for run in result.feasible:
        ranks = {str(rank) for rank in range(1, len(run.top) + 1)}
        assert ranks <= set(files[run.name])
        assert all("run.sh" in files[run.name][rank]["files"] for rank in ranks)
    if data["verdict"]["deploy"] == "packed":
        assert "k8s_deploy.yaml" in files[data["verdict"]["experiment"]]["packed"]["files"]


def test_context_parallel_prefill_wins_where_only_it_meets_ttft():
    """Qwen3-32B, SGLang, 32000-token prompts on 16 H200s with TTFT <= 1300 ms: no tp/pp layout
    meets it (closest 1503 ms agg, 1567 ms disagg), a cp8 prefill worker does (its static prefill
    is 633 ms x 1.1 correction x 1.8). The search picks it, accounts its 8 GPUs, and the
    deployment files run it with SGLang's context-parallel flags. (The raw model's figures: the
    calibration profile's request overhead would move them.)"""
    from servopt.config import default_experiments

    experiments = default_experiments(
        "QWEN3_32B", 16, "h200_sxm", backend="sglang", isl=32000, osl=500, ttft=1300.0, tpot=40.0,
        calibration="none",
    )  # fmt: skip
    result = run_experiments(experiments)
    best = result_document(result)["best"]
    assert best["mode"] == "disagg" and best["prefill_cp"] == 8 and best["prefill_gpus_per_worker"] == 8
    assert best["prefill_parallel"] == "tp1pp1dp1etp1ep1cp8" and "decode_cp" not in best
    assert best["ttft_ms"] <= 1300.0
    used = best["prefill_workers"] * 8 + best["decode_workers"] * best["decode_gpus_per_worker"]
    assert used * best["replicas"] == best["total_gpus_used"]
    run = next(r for r in result.feasible if r.experiment.serving_mode == "disagg")
    files = deployment_files(result, run.name, 1)
    prefill, decode = files["prefill_args.txt"].split(), files["decode_args.txt"].split()
    assert (
        prefill[prefill.index("--attn-cp-size") + 1] == "8" and prefill[prefill.index("--tp-size") + 1] == "8"
    )
    assert "--attn-cp-size" not in decode
