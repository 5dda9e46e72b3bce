"""The run's result document: ``--json``, ``result.json`` and the web API (docs/result_schema.json).

Built from the typed run result (``servopt.run_result``) alone; ``verdict`` then reads the document,
so the terminal, the files and the web page all say the same thing.
"""

from __future__ import annotations

from servopt.report.robustness import band_80, robustness
from servopt.report.rows import deployment_row, frontier_rows, top_rows
from servopt.report.verdict import verdict
from servopt.run_result import ExperimentRun, RunResult


def _counters(c) -> dict:
    return {
        "options_in": dict(c.options_in),
        "options_kept": dict(c.options_kept),
        "tpot_levels": c.tpot_levels,
        "replica_rows": c.replica_rows,
        "solves": c.solves,
        "deterministic_time": c.deterministic_time,
        "frontier_points": c.frontier_points,
        "all_optimal": c.all_optimal,
    }


def _packed_row(run: ExperimentRun) -> dict:
    row = deployment_row(run, run.mode.packed)
    row["gain_vs_identical"] = run.mode.packed_gain
    return row


def _experiment_doc(run: ExperimentRun, top: list[dict]) -> dict:
    exp = run.experiment
    doc = {
        "name": run.name,
        "serving_mode": exp.serving_mode,
        "model": exp.model_name,
        "system": exp.system_name,
        "decode_system": exp.decode_system_name,
        "backend": exp.backend_name,
        "versions": run.versions,
        "total_gpus": exp.total_gpus,
        "isl": exp.isl,
        "osl": exp.osl,
        "ttft_ms": exp.ttft,
        "tpot_ms": exp.tpot,
        "infeasible": run.infeasible,
        "borrowed_tables": run.borrowed,
    }
    if run.calibration is not None:  # absent = the raw model (calibration: none)
        doc["calibration"] = run.calibration
    if run.mode is not None:
        doc.update(
            best=deployment_row(run, run.mode.identical),
            packed=_packed_row(run),
            top=top,
            pareto=frontier_rows(run),
            counters=_counters(run.mode.counters),
        )
    return doc


def result_document(result: RunResult) -> dict:
    """The machine-readable result of a run, with the verdict."""
    win = result.winner
    best = deployment_row(win, win.mode.identical)
    best["experiment"] = win.name
    others = [r for r in result.feasible if r is not win]
    if others:
        runner_up = max(others, key=lambda r: r.mode.identical.tokens_per_s_per_gpu)
        best["runner_up"] = runner_up.name
        best["ratio_vs_runner_up"] = (
            win.mode.identical.tokens_per_s_per_gpu / runner_up.mode.identical.tokens_per_s_per_gpu
        )
    best["packed"] = _packed_row(win)
    if win.bands is not None:  # absent = the raw model (no calibration residuals, no band)
        best["band_80"] = band_80(win, best)
        best["packed"]["band_80"] = band_80(win, best["packed"])
    tops = {r.name: top_rows(r) for r in result.runs}
    experiments = [_experiment_doc(r, tops[r.name]) for r in result.runs]
    by_mode: dict[str, list[dict]] = {"agg": [], "disagg": []}
    for r in result.feasible:
        by_mode[r.experiment.serving_mode].extend(tops[r.name])
    for rows in by_mode.values():
        rows.sort(key=lambda row: -row["tokens_per_s_per_gpu"])
    pareto = [p for r in result.feasible for p in frontier_rows(r)]
    doc = {"best": best, **by_mode, "pareto": pareto, "experiments": experiments}
    if win.calibration is not None:  # the winner's; absent = the raw model (calibration: none)
        doc["calibration"] = win.calibration
    doc["verdict"] = verdict(doc)
    rob = robustness(result, doc)
    if rob is not None:
        doc["robustness"] = rob
    return doc
