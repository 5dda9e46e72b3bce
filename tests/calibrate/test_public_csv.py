"""Reading measurement files: both layouts, the round trip, and malformed files (file:line errors).

``data/public_sample.csv`` is 16 rows copied verbatim from the reference collection's public.csv
(its lines 4, 720, 796, 797, 835, 857, 1094, 1112, 1133, 1163, 1180, 1274, 1289, 1290, 1300, 877): one
of each kind of source, load and note the reader has to understand.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from servopt.calibrate.public_csv import COLUMNS, read_measurements, structured_row, write_measurements
from servopt.calibrate.public_notes import PUBLIC_COLUMNS
from servopt.errors import DataFileError

SAMPLE = Path(__file__).parent / "data" / "public_sample.csv"


@pytest.fixture(scope="module")
def sample():
    return {r.row: r for r in read_measurements(SAMPLE)}


def test_rows_are_numbered_by_file_line(sample):
    assert sorted(sample) == list(range(2, 18))


def test_dep8_row_is_attention_dp_with_ep8(sample):
    r = sample[2]  # TRT-LLM perf overview, H200 'DEP8'
    assert (r.system, r.backend, r.tp, r.ep, r.attention_dp) == ("h200_sxm", "trtllm", 8, 8, True)
    assert r.load == "max_throughput" and r.concurrency is None
    assert r.basis == "output" and r.output_tok_s_per_gpu == 1627.0
    assert r.backend_version is None  # "unstated (main-branch doc)"


def test_open_loop_rate_and_output_basis(sample):
    r = sample[3]  # TRT-LLM v0.14 online serving at QPS=2
    assert r.load == "open_loop" and r.request_rate == 2.0
    assert r.output_tok_s == 498.0 and r.output_tok_s_per_gpu == pytest.approx(498.0 / 4)


def test_inferencex_uses_the_stated_output_figure_and_percentiles(sample):
    r = sample[5]  # InferenceX SGLang, basis input+output, output tok/s per GPU in the notes
    assert r.basis == "input+output" and r.tok_s_per_gpu == 406.11
    assert r.output_tok_s_per_gpu == 201.98
    assert (r.ttft_p50_ms, r.ttft_p99_ms, r.tpot_p50_ms, r.tpot_p99_ms) == (386.1, 658.5, 9.23, None)
    assert r.latency_stat == "mean" and r.spec == "mtp"


def test_inferencex_aggregated_gpu_count_is_one_worker(sample):
    r = sample[6]  # stated num_gpus 64 = tp8 x ep8; the per-GPU figures are over 8 GPUs
    assert r.num_gpus == 8 and r.attention_dp and r.concurrency == 128


def test_disagg_worker_groups(sample):
    r = sample[7]
    assert r.disagg is not None
    assert (r.disagg.prefill.count, r.disagg.prefill.gpus, r.disagg.prefill.attention_dp) == (1, 4, True)
    assert (r.disagg.decode.count, r.disagg.decode.tp, r.disagg.decode.gpus) == (6, 8, 48)
    assert r.num_gpus == 52  # disaggregated rows keep the stated count (prefill + decode)
    # Output over all 52 GPUs from the per-decode-GPU figure: 526.99 x 48 / 52.
    assert r.output_tok_s_per_gpu == pytest.approx(526.99 * 48 / 52)


def test_dynamo_image_version_is_not_the_engine_version(sample):
    trt = sample[17]  # Dynamo + TensorRT-LLM, image ai-dynamo/tensorrtllm-runtime:0.8.1.post1
    assert trt.framework_version == "0.8.1.post1" and trt.backend_version is None
    sgl = sample[7]  # Dynamo + SGLang runs the lmsysorg/sglang image: its tag is SGLang's
    assert sgl.backend_version == "v0.5.12.post1"


def test_random_lengths_mean(sample):
    r = sample[9]  # SGLang bench_serving random, range_ratio 0: uniform in [0, isl]
    assert r.lengths == "random" and r.range_ratio == 0.0
    assert r.mean_isl == pytest.approx(r.isl / 2) and r.mean_osl == pytest.approx(r.osl / 2)


def test_fixed_length_input_plus_output_is_converted_exactly(sample):
    r = sample[10]  # dstack offline, 3200/1600, stated 0.974142003 req/s
    assert r.basis == "input+output" and r.load == "burst"
    assert r.output_tok_s == pytest.approx(r.total_tok_s * 1600 / 4800)
    assert r.output_tok_s == pytest.approx(0.974142003 * 1600, rel=1e-3)


def test_dataset_lengths_from_token_totals(sample):
    r = sample[13]  # GPUStack vllm bench serve ShareGPT, max-concurrency 4
    assert r.lengths == "dataset" and r.load == "closed_loop" and r.concurrency == 4
    assert r.mean_isl == pytest.approx(232.6) and r.mean_osl == pytest.approx(220.61)
    assert r.output_tok_s == 496.88  # "output tput", not the input+output total_tok_s
    assert r.source_name == "GPUStack performance lab"


def test_eagle_and_phase_only(sample):
    assert sample[14].spec == "eagle"
    r = sample[16]
    assert r.load == "phase_only" and r.basis == "none" and r.output_tok_s_per_gpu is None
    assert r.input_tok_s_per_prefill_gpu == pytest.approx(57674 / 8)


def test_structured_round_trip(sample, tmp_path):
    path = tmp_path / "structured.csv"
    assert write_measurements(sample.values(), path) == len(sample)
    again = {r.row: r for r in read_measurements(path)}
    assert again == sample


def test_input_plus_output_without_an_exact_conversion_stays_none(tmp_path):
    row = dict.fromkeys(PUBLIC_COLUMNS, "")
    row.update(
        source="test", model="Qwen3-8B", gpu="H100 SXM", num_gpus="1", framework="vLLM",
        precision="BF16", tp="1", concurrency="8", total_tok_s="2000",
        notes="basis=input+output tokens; vllm bench serve, ShareGPT; max-concurrency 8, 100 requests",
    )  # fmt: skip
    path = _write(tmp_path, ",".join(PUBLIC_COLUMNS), ",".join(_quote(row[c]) for c in PUBLIC_COLUMNS))
    (r,) = read_measurements(path)
    assert r.basis == "input+output" and r.total_tok_s == 2000.0
    assert r.output_tok_s is None and r.output_tok_s_per_gpu is None


def _quote(text: str) -> str:
    return f'"{text}"' if "," in text else text


def _write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _sample_lines() -> list[str]:
    return SAMPLE.read_text(encoding="utf-8").splitlines()


@pytest.mark.parametrize(
    ("edit", "where", "message"),
    [
        (lambda ls: ["a,b,c", *ls[1:]], ":1: header:", "missing source, model"),
        (lambda ls: [ls[0], ls[1].replace(",8,,8,,1000,1000,", ",eight,,8,,1000,1000,", 1)], ":2: tp:", "whole number"),
        (lambda ls: [ls[0], "x,y"], ":2: row:", "has 2 cells"),
        (lambda ls: [ls[0], ls[1].replace(",1627,", ",nan,", 1)], ":2: tok_s_per_gpu:", "positive finite"),
        (lambda ls: [ls[0], ls[1].replace('"basis=output tokens; ', '"')], ":2: notes:", "basis="),
        (lambda ls: [ls[0], ls[1].replace("TensorRT-LLM,", "MyEngine,", 1)], ":2: framework:", "names no engine"),
        (lambda ls: [ls[0], ls[1].replace("max throughput", "something")], ":2: notes:", "states no load"),
        (lambda ls: [], ":1: header:", "empty"),
    ],
)  # fmt: skip
def test_malformed_public_rows(tmp_path, edit, where, message):
    path = _write(tmp_path, *edit(_sample_lines()[:2]))
    with pytest.raises(DataFileError) as err:
        read_measurements(path)
    text = str(err.value)
    assert text.startswith(f"{path}{where}") and message in text
    assert err.value.exit_code == 2


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("load", "poisson", "must be one of closed_loop, max_throughput, burst"),
        ("backend", "tgi", "must be one of trtllm, vllm, sglang"),
        ("attention_dp", "maybe", "must be true or false"),
        ("range_ratio", "1.5", "in [0, 1)"),
        ("source", "", "is required"),
        ("concurrency", "0", "must be >= 1"),
        ("ttft_ms", "-3", "positive finite"),
    ],
)
def test_malformed_structured_rows(tmp_path, sample, column, value, message):
    cells = structured_row(sample[13])
    cells[COLUMNS.index(column)] = value
    path = _write(tmp_path, ",".join(COLUMNS), ",".join(_quote(c) for c in cells))
    with pytest.raises(DataFileError) as err:
        read_measurements(path)
    assert str(err.value).startswith(f"{path}:2: {column}: ") and message in str(err.value)


def test_missing_file_is_a_data_file_error(tmp_path):
    with pytest.raises(DataFileError, match="cannot be read"):
        read_measurements(tmp_path / "absent.csv")


def test_no_nan_floats_are_written(sample, tmp_path):
    path = tmp_path / "s.csv"
    write_measurements(sample.values(), path)
    text = path.read_text()
    assert "nan" not in text.lower().replace("\n", ",").split(",")
    assert all(
        not (isinstance(v, float) and math.isnan(v)) for r in sample.values() for v in vars(r).values()
    )


def test_structured_files_written_before_the_p90_columns_still_read(sample, tmp_path):
    import csv
    import dataclasses

    path = tmp_path / "structured.csv"
    write_measurements(sample.values(), path)
    rows = list(csv.reader(path.read_text().splitlines()))
    keep = [i for i, c in enumerate(rows[0]) if c not in ("ttft_p90_ms", "tpot_p90_ms")]
    assert len(keep) == len(COLUMNS) - 2
    older = tmp_path / "older.csv"
    with open(older, "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh, lineterminator="\n").writerows([r[i] for i in keep] for r in rows)
    again = {r.row: r for r in read_measurements(older)}
    # The same records, with the two columns the older layout lacks left empty.
    want = {k: dataclasses.replace(r, ttft_p90_ms=None, tpot_p90_ms=None) for k, r in sample.items()}
    assert again == want
