"""One-configuration estimates (``servopt cli estimate``): results, JSON, and bad input.

Bad input must give one clear ServoptError line and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
import typer
from fake_db import FakeDatabase
from typer.testing import CliRunner

from servopt.cli.estimate_cmd import estimate
from servopt.errors import InvalidLayoutError, OutOfMemoryError, ServoptError, UnknownNameError
from servopt.evaluate.candidates import ModelSetup, Workload
from servopt.evaluate.single import estimate_config, quant_modes, resolve_moe_split
from servopt.hardware import load_system
from servopt.models.moe import MOE_DISTRIBUTION
from servopt.models.ops import QuantModes
from servopt.models.parallel import Layout
from servopt.models.registry import resolve_model
from servopt.perf_db import locate, sources

SYSTEM = load_system("h200_sxm")
FP8B = QuantModes("fp8_block", "fp8_block", "fp8", "float16")


def _estimate(model="QWEN3_32B", layout=Layout(2, 1, 1, 1, 1), quant=FP8B, mode="static", batch=8, **kw):
    setup = ModelSetup(resolve_model(model), "trtllm", quant, SYSTEM, "test", kw.pop("nextn", 0))
    return estimate_config(FakeDatabase(), setup, layout, kw.pop("work", Workload(1000, 100)), mode=mode,
                           batch_size=batch, **kw)  # fmt: skip


def test_estimate_reports_metrics_and_ops_for_each_mode():
    for mode in ("static", "static_ctx", "static_gen", "agg"):
        est = _estimate(mode=mode)
        doc = est.to_json()
        for key in ("ttft_ms", "tpot_ms", "tokens_per_s_per_gpu", "tokens_per_s_per_user", "request_latency_ms",
                    "memory_gib", "ops"):  # fmt: skip
            assert key in doc, (mode, key)
        assert doc["ops"] and all(op["latency_ms"] >= 0 for op in doc["ops"])
        json.dumps(doc)
    assert _estimate(mode="static_ctx").tpot_ms == 0.0
    assert _estimate(mode="static_gen").ttft_ms == 0.0
    assert {op.phase for op in _estimate(mode="agg").ops} == {"mix_step", "decode_step"}


@pytest.mark.parametrize(
    ("kwargs", "error", "field"),
    [
        ({"layout": Layout(3, 1, 1, 1, 1)}, InvalidLayoutError, "tp"),  # 64 heads, tp 3
        (
            {"model": "MIXTRAL_8X7B", "layout": Layout(8, 1, 2, 1, 16)},
            InvalidLayoutError,
            "moe_ep",
        ),  # 8 experts
        ({"model": "QWEN3_30B_A3B", "layout": Layout(2, 1, 1, 1, 4)}, InvalidLayoutError, "moe_tp*moe_ep"),
        ({"model": "QWEN3_32B", "layout": Layout(2, 1, 2, 1, 4)}, InvalidLayoutError, "dp/moe_tp/moe_ep"),
        ({"quant": QuantModes("fp9", "float16", "fp8", "float16")}, UnknownNameError, "gemm_quant_mode"),
        ({"quant": QuantModes("fp8", "float16", "fp4", "float16")}, UnknownNameError, "kvcache_quant_mode"),
        ({"mode": "turbo"}, UnknownNameError, "mode"),
        ({"batch": 0}, ServoptError, "batch_size"),
        ({"batch": 512, "work": Workload(8000, 1000)}, OutOfMemoryError, "batch_size"),
        ({"model": "DEEPSEEK_V3", "layout": Layout(1, 1, 1, 1, 1)}, OutOfMemoryError, "batch_size"),
        ({"mode": "agg", "batch": 2, "ctx_tokens": 4000}, ServoptError, "ctx_tokens"),
        ({"work": Workload(100, 10, 100)}, ServoptError, "prefix"),
        ({"nextn": 1, "accept_rates": [1.5]}, ServoptError, "nextn_accept_rates[0]"),
    ],
)
def test_bad_input_is_one_named_error(kwargs, error, field):
    with pytest.raises(error) as info:
        _estimate(**kwargs)
    assert info.value.field == field
    assert "\n" not in str(info.value)


def test_missing_data_is_named():
    class NoMoe(FakeDatabase):
        def moe_ms(self, *a, **kw):
            return super().moe_ms(*a, **kw) * float("nan")

    setup = ModelSetup(resolve_model("QWEN3_30B_A3B"), "trtllm", FP8B, SYSTEM, "test")
    with pytest.raises(ServoptError, match="cannot price context_moe"):
        estimate_config(
            NoMoe(), setup, Layout(2, 1, 1, 1, 2), Workload(1000, 100), mode="static", batch_size=4
        )


def test_moe_split_defaults_to_expert_parallel():
    assert resolve_moe_split(True, 2, 4, None, None) == (1, 8)
    assert resolve_moe_split(True, 8, 1, 2, None) == (2, 4)
    assert resolve_moe_split(True, 8, 1, None, 4) == (2, 4)
    assert resolve_moe_split(False, 8, 1, None, None) == (1, 1)
    assert resolve_moe_split(True, 1, 1, None, None, cp=4) == (1, 4)  # experts over tp*dp*cp GPUs
    with pytest.raises(ServoptError, match="must divide tp\\*dp\\*cp = 4"):
        resolve_moe_split(True, 1, 1, None, 3, cp=4)
    with pytest.raises(ServoptError):
        resolve_moe_split(True, 4, 1, None, 3)


def test_quant_defaults_follow_the_checkpoint_with_vllm_fmha_fallback():
    arch = resolve_model("DEEPSEEK_V3")
    assert quant_modes(arch, None, None, None, None) == QuantModes("fp8_block", "fp8_block", "fp8", "fp8")
    assert quant_modes(arch, None, None, None, None, backend="vllm").fmha == "float16"
    assert quant_modes(arch, None, None, None, "fp8", backend="vllm").fmha == "fp8"  # explicit wins
    assert quant_modes(arch, "float16", None, None, None).gemm == "float16"


def _cli(args: list[str]) -> tuple[int, str, str]:
    """Run ``estimate`` the way ``servopt`` runs commands: ServoptError -> one line, exit code."""
    app = typer.Typer()
    app.command()(estimate)
    app.command("noop")(lambda: None)
    runner = CliRunner()
    result = runner.invoke(app, ["estimate", *args])
    if isinstance(result.exception, ServoptError):
        return result.exception.exit_code, "", f"error: {result.exception}"
    return result.exit_code, result.stdout, ""


@pytest.mark.parametrize(
    "args",
    [
        ["--model", "QWEN3_33B"],
        ["--model", "QWEN3_32B", "--tp", "3"],
        ["--model", "QWEN3_32B", "--gemm_quant_mode", "fp9"],
        ["--model", "QWEN3_30B_A3B", "--tp", "2", "--moe_tp", "1", "--moe_ep", "4"],
        ["--model", "MIXTRAL_8X7B", "--tp", "2", "--dp", "8", "--moe_ep", "16"],
        ["--model", "QWEN3_32B", "--batch-size", "512", "--isl", "8000"],
        ["--model", "QWEN3_32B", "--nextn_accept_rates", "a,b"],
        ["--model", "QWEN3_32B", "--backend", "tensorrt"],
        ["--model", "QWEN3_32B", "--backend", "vllm", "--cp", "2"],
        ["--model", "QWEN3_32B", "--backend", "sglang", "--cp", "2", "--tp", "2"],
        ["--model", "QWEN3_30B_A3B", "--backend", "sglang", "--cp", "4", "--moe_ep", "3"],
    ],
)
def test_cli_bad_input_exits_nonzero_with_one_line(args):
    code, _, err = _cli(args)
    assert code != 0
    assert err.startswith("error: ") and "\n" not in err.strip()


def test_cli_json_and_table(tmp_path, monkeypatch):
    monkeypatch.setattr("servopt.perf_db.database.open_database", lambda *a, **k: _FakeOpened())
    code, out, _ = _cli(["--model", "QWEN3_32B", "--tp", "2", "--batch_size", "4", "--json"])
    assert code == 0
    doc = json.loads(out)
    assert doc["config"]["parallel"] == "tp2pp1dp1etp1ep1" and doc["ttft_ms"] > 0
    code, out, _ = _cli(
        ["--model", "QWEN3_32B", "--tp", "2", "--mode", "agg", "--ctx-tokens", "4000", "--batch-size", "8"]
    )
    assert code == 0 and "mix_step ops" in out and "tokens/s/gpu" in out
    code, out, _ = _cli(["--model", "QWEN3_30B_A3B", "--backend", "sglang", "--cp", "4", "--json"])
    config = json.loads(out)["config"]
    assert code == 0 and config["parallel"] == "tp1pp1dp1etp1ep4cp4" and config["cp"] == 4
    assert json.loads(out)["gpus"] == 4


class _FakeOpened(FakeDatabase):
    version = "fake"
    sol = False


# ---------------------------------------------------------------- --calibration on estimates


def _calibrated(est, ro=0.0, io=0.0, ps=1.0, ds=1.0):
    from servopt.evaluate.single import calibrated
    from servopt.simulate.adjust import Adjustments

    return calibrated(est, Adjustments(ro, io, ps, ds))


@pytest.mark.parametrize("mode", ["static", "static_ctx", "static_gen"])
def test_equal_scales_match_the_latency_correction_that_scales_every_op(mode):
    # Oracle: run_static's own latency_correction multiplies every op, so prefill_scale =
    # decode_scale = s with no overheads must reproduce it, rates included.
    raw, scaled = _estimate(mode=mode), _estimate(mode=mode, latency_correction=1.1)
    cal = _calibrated(raw, ps=1.1, ds=1.1)
    for key in ("ttft_ms", "tpot_ms", "request_latency_ms", "tokens_per_s", "tokens_per_s_per_gpu",
                "tokens_per_s_per_user", "seq_per_s"):  # fmt: skip
        assert getattr(cal, key) == pytest.approx(getattr(scaled, key), rel=1e-12), key
    neutral = _calibrated(raw)
    assert (neutral.ttft_ms, neutral.tpot_ms, neutral.seq_per_s) == pytest.approx(
        (raw.ttft_ms, raw.tpot_ms, raw.seq_per_s), rel=1e-15
    )


def test_overheads_add_to_ttft_and_each_step_and_rates_follow_the_latency():
    raw = _estimate(mode="static", work=Workload(1000, 100))
    cal = _calibrated(raw, ro=40.0, io=2.0)
    assert cal.ttft_ms == pytest.approx(raw.ttft_ms + 40.0 + 2.0)
    assert cal.tpot_ms == pytest.approx(raw.tpot_ms + 2.0)
    latency = cal.ttft_ms + 99 * cal.tpot_ms
    assert cal.request_latency_ms == pytest.approx(latency)
    # Throughput: the same requests in flight over a longer request.
    assert cal.tokens_per_s == pytest.approx(raw.tokens_per_s * raw.request_latency_ms / latency)
    assert cal.tokens_per_s_per_user == pytest.approx(1000.0 / cal.tpot_ms)


def test_agg_ttft_pays_both_overheads_and_tpot_each_step():
    # The agg equivalent of the static formula (servopt.evaluate.calibration).
    raw = _estimate(mode="agg", work=Workload(1000, 100))
    cal = _calibrated(raw, ro=40.0, io=2.0, ps=1.2, ds=0.9)
    assert cal.ttft_ms == pytest.approx(raw.ttft_ms * 1.2 + 2.0 + 40.0)
    assert cal.tpot_ms == pytest.approx(raw.tpot_ms * 0.9 + 2.0)
    latency = cal.ttft_ms + 99 * cal.tpot_ms
    assert cal.request_latency_ms == pytest.approx(latency)
    ratio = raw.request_latency_ms / latency
    assert cal.tokens_per_s_per_gpu == pytest.approx(raw.tokens_per_s_per_gpu * ratio)
    assert cal.seq_per_s == pytest.approx(raw.seq_per_s * ratio)
    assert _calibrated(raw) is raw  # neutral: the raw model itself


def test_cli_calibration_default_is_the_profile_and_none_the_raw_model(tmp_path, monkeypatch):
    monkeypatch.setattr("servopt.perf_db.database.open_database", lambda *a, **k: _FakeOpened())
    args = [
        "--model",
        "QWEN3_32B",
        "--tp",
        "2",
        "--batch_size",
        "4",
        "--isl",
        "1000",
        "--osl",
        "100",
        "--json",
    ]
    _, out, _ = _cli(args)
    _, out_default, _ = _cli([*args, "--calibration", "default"])
    assert out_default == out and json.loads(out)["config"]["calibration"]["profile"] == "default profile"
    _, out_none, _ = _cli([*args, "--calibration", "none"])
    assert "calibration" not in json.loads(out_none)["config"]
    raw = json.loads(out_none)
    prof = tmp_path / "p.yaml"
    prof.write_text(
        "schema: 1\nkind: servopt-calibration\nscopes:\n"
        "- {scope: {backend: trtllm}, request_overhead_ms: 50, iteration_overhead_ms: 1.5, decode_scale: 0.9}\n"
    )
    code, out, err = _cli([*args, "--calibration", str(prof)])
    assert code == 0, err
    cal = json.loads(out)
    c = cal["config"]["calibration"]
    assert (c["scope"], c["request_overhead_ms"], c["decode_scale"]) == ("trtllm", 50.0, 0.9)
    assert cal["ttft_ms"] == pytest.approx(raw["ttft_ms"] + 1.5 + 50.0)
    assert cal["tpot_ms"] == pytest.approx(raw["tpot_ms"] * 0.9 + 1.5)
    code, out, _ = _cli([*args[:-1], "--calibration", str(prof)])
    assert code == 0 and "calibrated: " in out and "scope trtllm" in out
    code, out, _ = _cli([*args[:-1], "--calibration", "none"])
    assert code == 0 and "calibration: none (the raw model, comparable with aiconfigurator 0.12.0)" in out
    code, out, _ = _cli([*args, "--calibration", "default"])
    assert code == 0 and json.loads(out)["config"]["calibration"]["measurements"] > 0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--calibration", "/nonexistent/p.yaml"], "no such file"),
        (["--calibration", "pyproject.toml"], "pyproject.toml:"),
    ],
)
def test_cli_calibration_bad_input_is_one_line(monkeypatch, extra, message):
    monkeypatch.setattr("servopt.perf_db.database.open_database", lambda *a, **k: _FakeOpened())
    code, _, err = _cli(["--model", "QWEN3_32B", "--tp", "2", "--batch_size", "4", *extra])
    assert code == 2 and message in err and "\n" not in err.strip()


# ---------------------------------------------------------------- MXFP4 x MXFP8 experts (gpt-oss)


def _measured_moe_ms(system: str, backend: str, version: str, quant: str, experts: int, tokens: int) -> float:
    """A naive read of the perf data's MoE parquet at one measured point (gpt-oss shape, one GPU)."""
    path = sources._op_file_path(locate.system_data_dir(system), backend, version, "moe_perf.parquet")
    t = pq.read_table(path).to_pydict()
    hits = [
        t["latency"][i]
        for i in range(len(t["latency"]))
        if (t["moe_dtype"][i], t["distribution"][i], t["num_tokens"][i], t["num_experts"][i])
        == (quant, MOE_DISTRIBUTION, tokens, experts)
        and (t["hidden_size"][i], t["inter_size"][i], t["topk"][i], t["moe_tp_size"][i], t["moe_ep_size"][i])
        == (2880, 2880, 4, 1, 1)
    ]
    assert len(hits) == 1, hits
    return hits[0]


def test_cli_prices_gpt_oss_experts_from_the_w4a8_mxfp8_table():
    arch = resolve_model("GPT_OSS_20B")
    args = ["--model", "GPT_OSS_20B", "--system", "b200_sxm", "--isl", "1024", "--osl", "2"]
    args += ["--calibration", "none", "--json"]
    code, out, err = _cli([*args, "--moe_quant_mode", "w4a8_mxfp4_mxfp8"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["config"]["moe_quant_mode"] == "w4a8_mxfp4_mxfp8"
    version = doc["config"]["backend_version"]
    ops = {o["name"]: o["latency_ms"] for o in doc["ops"]}
    # 1024 context tokens and one decode token are measured points: no interpolation.
    for op, tokens in (("context_moe", 1024), ("generation_moe", 1)):
        table_ms = _measured_moe_ms(
            "b200_sxm", "trtllm", version, "w4a8_mxfp4_mxfp8", arch.num_experts, tokens
        )
        assert ops[op] == pytest.approx(arch.num_layers * table_ms, rel=1e-9)
    # The default stays the checkpoint's w4a16_mxfp4 (aiconfigurator 0.12.0's choice), a slower table.
    code, out, err = _cli(args)
    assert code == 0, err
    default = json.loads(out)
    assert default["config"]["moe_quant_mode"] == "w4a16_mxfp4"
    context_moe = {o["name"]: o["latency_ms"] for o in default["ops"]}["context_moe"]
    assert context_moe == pytest.approx(
        arch.num_layers
        * _measured_moe_ms("b200_sxm", "trtllm", version, "w4a16_mxfp4", arch.num_experts, 1024)
    )
    assert context_moe > 2 * ops["context_moe"]


def test_cli_w4a8_mxfp8_without_a_table_is_one_line():
    # Hopper has no MXFP8-activation MoE table (TRT-LLM runs gpt-oss there with bf16 activations).
    code, _, err = _cli(
        ["--model", "GPT_OSS_20B", "--system", "h100_sxm", "--moe_quant_mode", "w4a8_mxfp4_mxfp8"]
    )
    assert code == 2 and "\n" not in err.strip()
    assert err.startswith(
        "error: moe_quant_mode: 'w4a8_mxfp4_mxfp8': has no measured MoE table on h100_sxm/trtllm"
    )
    assert "(allowed: " in err and "w4a16_mxfp4" in err and "nan" not in err.lower()
