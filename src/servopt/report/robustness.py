"""The chosen deployment inside the calibration's 80% error band: its interval, whether its targets
still hold at the band's pessimistic end, and whether the plan flips there.

The pessimistic end multiplies TTFT and TPOT by e^high and throughput by e^low of the profile's
cross-validated log(measured / predicted) band, one factor per figure for every candidate of a
backend (servopt.evaluate.calibration). The pipeline redoes the selection on the same evaluated
candidates at the other end of the band (``ExperimentRun.other``); this module compares the two
plans: the agg/disagg verdict, and the layout (each replica shape's parallel layouts and worker
counts; batch sizes are not part of it, the choice's own line shows them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servopt.error_bands import bands_80
from servopt.report.rows import deployment_row, parallel_text, workers_text
from servopt.report.verdict import PACKED_MIN_GAIN, chosen_row
from servopt.run_result import ExperimentRun, RunResult

if TYPE_CHECKING:
    from servopt.search.result import ModeResult

BAND = "80%"
# The row figure -> the profile's metric name.
_METRICS = {"ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms", "tokens_per_s_per_gpu": "output_tok_s_per_gpu"}
# Relative slack on "holds": the robust plan's figures are the targets' own floats.
_EPS = 1e-9
WIDTH = 80  # the verdict's lines fit a terminal


def nominal_figures(run: ExperimentRun, row: dict) -> dict[str, float]:
    """A row's predicted TTFT, TPOT and tokens/s/GPU (a robust run's rows are at the pessimistic
    end: divided back by the factors, exact since one factor scales every candidate)."""
    values = {k: float(row[k]) for k in _METRICS}
    if run.planned_at == "pessimistic":
        f = run.factors.to_dict()
        values = {k: v / f[k] for k, v in values.items()}
    return values


def pessimistic_figures(run: ExperimentRun, row: dict) -> dict[str, float]:
    if run.planned_at == "pessimistic":
        return {k: float(row[k]) for k in _METRICS}
    f = run.factors.to_dict()
    return {k: float(row[k]) * f[k] for k in _METRICS}


def band_80(run: ExperimentRun, row: dict) -> dict[str, list[float]] | None:
    """The row's 80% band: ``{ttft_ms, tpot_ms, tokens_per_s_per_gpu: [low, high]}``; None for
    the raw model."""
    if run.bands is None:
        return None
    nominal = nominal_figures(run, row)
    out = bands_80(run.bands, run.experiment.backend_name, {_METRICS[k]: v for k, v in nominal.items()})
    return {k: out[m] for k, m in _METRICS.items() if m in out}


def _layout_key(row: dict) -> tuple:
    groups = row.get("groups") or [row]
    if row["mode"] == "agg":
        return ("agg", *sorted((g["gpus_per_replica"], g["parallel"]) for g in groups))
    return (
        "disagg",
        *sorted(
            (g["prefill_workers"], g["prefill_parallel"], g["decode_workers"], g["decode_parallel"])
            for g in groups
        ),
    )


def short_layout(row: dict) -> str:
    """The parallel layout of a choice, without batch sizes: ``tp4`` or ``8P tp1 + 1D tp8``."""
    parts = []
    for g in row.get("groups") or [row]:
        shape = {**row, **g}
        if row["mode"] == "agg":
            parts.append(parallel_text(shape))
        else:
            parts.append(
                f"{g['prefill_workers']}P {parallel_text(shape, 'prefill_')} + "
                f"{g['decode_workers']}D {parallel_text(shape, 'decode_')}"
            )
    return " | ".join(dict.fromkeys(parts))


def _layout_text(row: dict) -> str:
    """Replicas x the workers with their batch sizes, per replica shape."""
    groups = row.get("groups") or [row]
    return " + ".join(f"{g['replicas']} x ({workers_text({**row, **g})})" for g in groups)


def _choice(pairs: list[tuple[ExperimentRun, ModeResult]]) -> tuple[dict, tuple] | None:
    """The verdict's rule on one end's answers: the experiment with the most identical-replica
    tokens/s/GPU, packed when it gains at least PACKED_MIN_GAIN."""
    if not pairs:
        return None
    run, mode = max(pairs, key=lambda p: p[1].identical.tokens_per_s_per_gpu)
    packed = mode.packed_gain >= PACKED_MIN_GAIN
    row = deployment_row(run, mode.packed if packed else mode.identical)
    choice = {
        "experiment": run.name,
        "mode": row["mode"],
        "deploy": "packed" if packed else "identical",
        "parallel": short_layout(row),
        "layout": _layout_text(row),
        "tokens_per_s_per_gpu": row["tokens_per_s_per_gpu"],
        "ttft_ms": row["ttft_ms"],
        "tpot_ms": row["tpot_ms"],
    }
    return choice, _layout_key(row)


def _answers_at(result: RunResult, end: str) -> list[tuple[ExperimentRun, ModeResult]]:
    """Each experiment's answer at one end of the band (an experiment may plan at either)."""
    pairs = [(r, r.mode if r.planned_at == end else r.other) for r in result.runs]
    return [(r, mode) for r, mode in pairs if mode is not None]


def robustness(result: RunResult, doc: dict) -> dict | None:
    """The ``robustness`` object of the result document (None for the raw model)."""
    win = result.winner
    if win.factors is None:
        return None
    exp = win.experiment
    row = chosen_row(doc)
    pess = pessimistic_figures(win, row)
    targets = {"ttft_ms": exp.ttft, "tpot_ms": exp.tpot}
    use = {k: pess[k] / t for k, t in targets.items()}
    binding = max(use, key=use.get)
    at_other = "nominal" if win.planned_at == "pessimistic" else "pessimistic"
    planned, other = (_choice(_answers_at(result, end)) for end in (win.planned_at, at_other))
    flips = {"verdict": True, "layout": True}  # nothing meets the targets at the other end
    if other is not None:
        flips = {"verdict": other[0]["mode"] != planned[0]["mode"], "layout": other[1] != planned[1]}
    rob = {
        "band": BAND,
        "planned_at": win.planned_at,
        "factors": win.factors.to_dict(),
        "pessimistic": pess,
        "targets": targets,
        "holds": all(u <= 1.0 + _EPS for u in use.values()),
        "binding": binding,
        f"{win.planned_at}_choice": planned[0],
        f"{at_other}_choice": None if other is None else other[0],
        "flips": flips,
    }
    rob["text"] = _lines(rob, row.get("band_80") or {})
    return rob


NO_BANDS = "error bands: none (the raw model carries no calibration residuals)"


def robustness_lines(doc: dict) -> list[str]:
    """The verdict's lines on the band (the terminal; the web page shows the same ``text``)."""
    rob = doc.get("robustness")
    return [NO_BANDS] if rob is None else rob["text"]


def _lines(rob: dict, band: dict) -> list[str]:
    """The band of the chosen deployment, and what happens at its pessimistic end (each line at
    most WIDTH columns)."""
    cells = [
        f"{name}{_num(band[k][0])}-{_num(band[k][1])}{unit}"
        for k, name, unit in (
            ("ttft_ms", "TTFT ", " ms"),
            ("tpot_ms", "TPOT ", " ms"),
            ("tokens_per_s_per_gpu", "", " tokens/s/gpu"),
        )
        if k in band
    ]
    lines = [f"80% band: {', '.join(cells)}"]
    name = "TTFT" if rob["binding"] == "ttft_ms" else "TPOT"
    value, target = rob["pessimistic"][rob["binding"]], rob["targets"][rob["binding"]]
    if rob["planned_at"] == "pessimistic":
        nominal = rob["nominal_choice"]
        head = "robust: planned at the pessimistic end; nominal:"
        line = f"{head} {_plan(nominal, rob['flips'])}" if nominal else f"{head} none"
        if nominal and len(line) > WIDTH:
            line = f"{head} {_plan(nominal, rob['flips'], tps=False)}"
    else:
        pess = rob["pessimistic_choice"]
        held = f"{name} {_num(value)} {'<=' if rob['holds'] else '>'} {_num(target)} ms"
        head = f"pessimistic end: {held}; there:"
        line = f"{head} {_plan(pess, rob['flips'])}" if pess else f"{head} nothing meets the targets"
        if pess and len(line) > WIDTH:
            line = f"{head} {_plan(pess, rob['flips'], tps=False)}"
    return [*lines, line]


def _plan(choice: dict, flips: dict, tps: bool = True) -> str:
    """``agg tp8, 498 tok/s/gpu (layout flips)``: a choice in a few words (batch sizes and worker
    counts are in the JSON)."""
    rate = f", {_num(choice['tokens_per_s_per_gpu'])} tok/s/gpu" if tps else ""
    if not flips["verdict"] and not flips["layout"]:
        return f"same plan{rate}"
    what = "verdict flips" if flips["verdict"] else "layout flips"
    return f"{choice['mode']} {_compact(choice['parallel'])}{rate} ({what})"


def _compact(parallel: str) -> str:
    """``8P tp1 + 1D tp8`` -> ``tp1/tp8`` (first replica shape only; the JSON has them all)."""
    first = parallel.split(" | ")[0]
    if " + " not in first:
        return first
    pre, dec = first.split(" + ")
    return f"{pre.split(' ', 1)[1]}/{dec.split(' ', 1)[1]}"


def _num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"
