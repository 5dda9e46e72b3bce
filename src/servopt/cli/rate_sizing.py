"""``cli default --request_rate R`` (or ``--concurrency C``): the fewest GPUs (or, ``--objective
min_cost``, the least USD/hour) serving that load within percentile targets.

Kept apart from the budget search (``search_cmd``): it answers a different question, with the
simulator in the loop (``servopt.sizing``).
"""

from __future__ import annotations

import json

import typer

from servopt.sizing.question import sizing_doc


def size_and_report(*, as_json: bool, calibration: str = "default", **question) -> None:
    """Size one load (``cli default --request_rate`` / ``--concurrency``) and print it."""
    from servopt.calibrate.model import calibrated_question

    doc = sizing_doc(**calibrated_question(question, calibration))
    if as_json:
        typer.echo(json.dumps(doc, allow_nan=False))
        return
    _render(doc)


def size_experiments(experiments, *, save_dir: str | None, as_json: bool, perf_db: str | None) -> None:
    """``cli exp`` on experiments with a ``workload:`` section: each sized for its load, in its
    own serving mode, with its model, system, backend, lengths and targets. The ``config:``
    block's search lists are not used (rate sizing searches its default layouts)."""
    from pathlib import Path

    from servopt.calibrate import model
    from servopt.errors import ServoptError

    if any(e.workload is None for e in experiments):
        plain = next(e.name for e in experiments if e.workload is None)
        raise ServoptError(
            "workload", plain, "give every experiment of the file a workload: section, or none of them"
        )
    docs = {}
    for e in experiments:
        w = e.workload
        question = dict(
            model=e.model_name, total_gpus=e.total_gpus, system=e.system_name, backend=e.backend_name,
            backend_version=e.backend_version, isl=e.isl, osl=e.osl, ttft=e.ttft, tpot=e.tpot,
            request_rate=w.request_rate, concurrency=w.concurrency, arrival=w.arrival,
            arrival_cv=w.arrival_cv, ttft_percentile=w.ttft_percentile, tpot_percentile=w.tpot_percentile,
            objective=w.objective, num_requests=w.num_requests, seed=w.seed, perf_db=perf_db,
            modes=(e.serving_mode,), gpu_hour_price=_price_text(w.gpu_hour_price),
            decode_system=e.decode_system_name if e.serving_mode == "disagg" else None,
        )  # fmt: skip
        docs[e.name] = sizing_doc(**model.calibrated_question(question, e.calibration))
    out = {"experiments": docs}
    if save_dir is not None:
        root = Path(save_dir)
        root.mkdir(parents=True, exist_ok=True)
        header = (
            "# Resolved experiments with their workloads; rerun: servopt cli exp --yaml_path config.yaml\n"
        )
        (root / "config.yaml").write_text(header + "".join(e.to_yaml() for e in experiments))
        (root / "result.json").write_text(json.dumps(out, allow_nan=False, indent=1))
    if as_json:
        typer.echo(json.dumps(out, allow_nan=False))
        return
    for name, doc in docs.items():
        typer.echo(f"== {name}")
        _render(doc)


def _price_text(prices: dict[str, float] | None) -> str | None:
    """A workload's ``gpu_hour_price`` mapping as the flag's text (one parser checks both)."""
    return None if prices is None else ",".join(f"{name}={usd!r}" for name, usd in prices.items())


def _deployment_text(d: dict, system: str) -> str:
    by_system = d.get("gpus_by_system") or {system: d["total_gpus_used"]}
    if len(by_system) == 1:
        parts = [f"{w['workers']} x {w['option']}" for w in d["workers"]]
        return f"{' + '.join(parts)} = {d['total_gpus_used']} {next(iter(by_system))}"
    # Two systems (decode on --decode_system): say where each pool runs.
    parts = [f"{w['workers']} x {w['option']} on {w['system']}" for w in d["workers"]]
    split = " + ".join(f"{n} {s}" for s, n in by_system.items())
    return f"{' + '.join(parts)} = {d['total_gpus_used']} GPUs ({split})"


def _cost_text(c: dict) -> str:
    prices = ", ".join(f"{s} {usd:g}" for s, usd in c["usd_per_gpu_hour"].items())
    per_m = c["usd_per_million_output_tokens"]
    tokens = f", {per_m:.3f} USD per million output tokens" if per_m is not None else ""
    return f"{c['usd_per_hour']:.2f} USD/hour{tokens} (at your USD per GPU-hour: {prices})"


def _percentile_table(doc: dict):
    """Each mode's answer (the best first, starred): simulated and analytic percentiles side by
    side."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    heads = ("", "GPUs", "", "TTFT", "p50", "p90", "p99", "TPOT", "p50", "p90", "p99")
    for col in heads:
        table.add_column(col, justify="left" if not col else "right", no_wrap=True)
    best = doc["best"]
    rows = [best] + [doc[m] for m in ("agg", "disagg") if doc.get(m) and doc[m]["mode"] != best["mode"]]
    for i, row in enumerate(rows):
        for kind in ("simulated", "analytic"):
            cells = []
            none = "-" if kind == "simulated" else "sat"  # analytic null: the model saturates
            for metric in ("ttft_ms", "tpot_ms"):
                figures = row[kind][metric]
                digits = 0 if metric == "ttft_ms" else 1
                keys = ("mean", "p50", "p90", "p99")
                cells += [f"{figures[k]:.{digits}f}" if figures else none for k in keys]
            label = (row["mode"] + (" *" if i == 0 else "")) if kind == "simulated" else ""
            gpus = str(row["total_gpus_used"]) if kind == "simulated" else ""
            table.add_row(label, gpus, "sim" if kind == "simulated" else "model", *cells)
    return table


def _render(doc: dict) -> None:
    from rich.console import Console

    from servopt.report.robustness import NO_BANDS
    from servopt.report.tables import scope_calibration_line

    console = Console()
    t = doc["targets"]
    load = doc["load"]
    best = doc["best"]
    pt, pp = f"p{t['ttft_percentile']:g}", f"p{t['tpot_percentile']:g}"
    what = (
        f"{load['concurrency']} closed-loop clients ("
        if load["kind"] == "closed_loop"
        else f"{load['request_rate']:g} req/s ({load['arrival']}, "
    )
    goodput = doc["objective"] == "max_goodput_per_gpu"
    cheapest = doc["objective"] == "min_cost"
    if goodput:
        console.print(
            f"most goodput per GPU at {what}isl {load['isl']}, osl {load['osl']}), counting requests with "
            f"TTFT <= {t['ttft_ms']:g} ms and TPOT <= {t['tpot_ms']:g} ms:",
            soft_wrap=True,
        )
    else:
        console.print(
            f"serve {what}isl {load['isl']}, osl {load['osl']}) at "
            f"{pt} TTFT <= {t['ttft_ms']:g} ms, {pp} TPOT <= {t['tpot_ms']:g} ms"
            + (" at the least cost:" if cheapest else ":"),
            soft_wrap=True,
        )
    console.print(
        "  " + scope_calibration_line(doc.get("calibration")),
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    per_hour = f", {best['cost']['usd_per_hour']:.2f} USD/hour" if cheapest else ""
    console.print(
        f"  [bold]{_deployment_text(best, doc['system'])}{per_hour}[/] ({best['mode']})", soft_wrap=True
    )
    g = best["goodput"]
    console.print(
        f"  goodput {g['requests_per_s']:.2f} req/s ({100 * g['attainment']:.1f}% of requests meet both), "
        f"{g['per_gpu']:.3f} req/s per GPU",
        soft_wrap=True,
    )
    if best.get("cost"):
        console.print(f"  cost: {_cost_text(best['cost'])}", soft_wrap=True)
    sim = best["simulated"]
    console.print(
        f"  simulated {pt} TTFT {best['at_targets'][f'ttft_{pt}_ms']:.0f} ms, "
        f"{pp} TPOT {best['at_targets'][f'tpot_{pp}_ms']:.1f} ms "
        f"(mean TTFT {sim['ttft_ms']['mean']:.0f} ms, mean TPOT {sim['tpot_ms']['mean']:.1f} ms)",
        soft_wrap=True,
    )
    rob = doc.get("robustness")
    if rob is not None:
        pess = ", ".join(
            f"{k.split('_')[1]} {k.split('_')[0].upper()} {v:.1f} ms" for k, v in rob["pessimistic"].items()
        )
        console.print(
            f"  at the 80% band's pessimistic end (x{rob['factors']['ttft_ms']:.2f} TTFT, "
            f"x{rob['factors']['tpot_ms']:.2f} TPOT): {pess}: targets "
            + ("hold" if rob["holds"] else f"fail ({rob['binding'].upper()})"),
            soft_wrap=True,
        )
    else:
        console.print(f"  {NO_BANDS}", soft_wrap=True)
    bind = best["binding"]
    at = pt if bind == "ttft" else pp
    console.print(
        f"  binding target: {at} {bind.upper()} ({best['at_targets'][f'{bind}_{at}_ms']:.1f} of "
        f"{t[f'{bind}_ms']:g} ms)",
        soft_wrap=True,
    )
    console.print(
        "  latency ms, mean then percentiles; sim: simulated, model: queueing formulas (docs/sizing.md)",
        soft_wrap=True,
    )
    console.print(_percentile_table(doc))
    other = doc["disagg"] if best["mode"] == "agg" else doc["agg"]
    other_mode = "disagg" if best["mode"] == "agg" else "agg"
    if other_mode not in doc["modes"]:
        pass
    elif other is None:
        console.print(f"  {other_mode}: nothing within the GPU budget meets the targets", soft_wrap=True)
    elif goodput:
        console.print(
            f"  {other_mode} best: {_deployment_text(other, doc['system'])}, "
            f"{other['goodput']['per_gpu']:.3f} req/s per GPU",
            soft_wrap=True,
        )
    elif cheapest:
        console.print(
            f"  {other_mode} costs {other['cost']['usd_per_hour']:.2f} USD/hour: "
            f"{_deployment_text(other, doc['system'])}",
            soft_wrap=True,
        )
    else:
        console.print(
            f"  {other_mode} needs {other['total_gpus_used']}: {_deployment_text(other, doc['system'])}",
            soft_wrap=True,
        )
    if other is not None and other_mode in doc["modes"] and other.get("cost") and not cheapest:
        console.print(f"  {other_mode} cost: {_cost_text(other['cost'])}", soft_wrap=True)
    s = doc["search"]
    console.print(
        f"  search: {s['simulations']} simulations, {s['verification_failures']} candidates rejected by "
        f"simulation, {s['options_pruned']} options pruned by bounds",
        style="dim",
        soft_wrap=True,
    )
