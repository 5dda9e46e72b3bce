"""The terminal report of a run: verdict, best configuration, top-N tables, Pareto plot."""

from __future__ import annotations

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from servopt.report.terminal_plot import Series, render

_MARKERS = "*o+x#@%&"


def _fmt(v, digits=2) -> str:
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def verdict(doc: dict) -> str:
    best = doc["best"]
    who = (
        best["experiment"] if best["experiment"] == best["mode"] else f"{best['experiment']} ({best['mode']})"
    )
    text = f"{who} wins at {best['tokens_per_s_per_gpu']:,.2f} tokens/s/gpu"
    if "runner_up" in best:
        text += f", {best['ratio_vs_runner_up']:.2f}x {best['runner_up']}"
    return text


def best_panel(doc: dict) -> Panel:
    b = doc["best"]
    lines = [
        f"tokens/s            {b['tokens_per_s']:,.2f}",
        f"tokens/s/gpu        {b['tokens_per_s_per_gpu']:,.2f}",
        f"tokens/s/user       {b['tokens_per_s_per_user']:,.2f}",
        f"requests/s          {b['requests_per_s']:,.2f}",
        f"TTFT                {b['ttft_ms']:,.2f} ms",
        f"TPOT                {b['tpot_ms']:,.2f} ms",
        f"request latency     {b['request_latency_ms']:,.2f} ms",
        f"concurrency         {b['concurrency']:,.0f}",
        f"GPUs used           {b['total_gpus_used']} of {b['total_gpus']} "
        f"({b['replicas']} replicas x {b['gpus_per_replica']} GPUs)",
        f"layout              {_layout(b)}",
    ]
    p = b["packed"]
    if p["gain_vs_identical"] > 1e-9:
        lines.append(
            f"packed budget       {p['tokens_per_s_per_gpu']:,.2f} tokens/s/gpu using {p['total_gpus_used']} GPUs "
            f"(+{100 * p['gain_vs_identical']:.2f}%): "
            + "; ".join(
                f"{g['replicas']}x{g['gpus_per_replica']} GPUs [{_layout(g, p['mode'])}]" for g in p["groups"]
            )
        )
    else:
        lines.append("packed budget       no gain: identical replicas already use the budget best")
    return Panel("\n".join(lines), title=f"Best: {verdict(doc)}", expand=False)


def _layout(row: dict, mode: str | None = None) -> str:
    if (mode or row["mode"]) == "agg":
        return f"{row['parallel']} bs{row['batch_size']} ctx{row['ctx_tokens']}"
    return (
        f"{row['prefill_workers']}P x {row['prefill_parallel']} bs{row['prefill_batch_size']} + "
        f"{row['decode_workers']}D x {row['decode_parallel']} bs{row['decode_batch_size']}"
    )


def top_table(rows: list[dict], mode: str) -> Table:
    table = Table(
        title=f"{mode} top configurations (ranked by tokens/s/gpu)", header_style="bold", box=box.SIMPLE_HEAD
    )
    cols = [
        ("rank", "rank"),
        ("experiment", "experiment"),
        ("tokens/s/gpu", "tokens_per_s_per_gpu"),
        ("tokens/s/user", "tokens_per_s_per_user"),
        ("req/s", "requests_per_s"),
        ("TTFT ms", "ttft_ms"),
        ("TPOT ms", "tpot_ms"),
        ("latency ms", "request_latency_ms"),
        ("concurrency", "concurrency"),
        ("GPUs used", "total_gpus_used"),
        ("replicas", "replicas"),
        ("gpus/replica", "gpus_per_replica"),
    ]
    if mode == "agg":
        cols += [
            ("parallel", "parallel"),
            ("bs", "batch_size"),
            ("ctx", "ctx_tokens"),
            ("mem GiB", "memory_gib"),
        ]
    else:
        cols += [
            ("(p)workers", "prefill_workers"),
            ("(p)parallel", "prefill_parallel"),
            ("(p)bs", "prefill_batch_size"),
            ("(d)workers", "decode_workers"),
            ("(d)parallel", "decode_parallel"),
            ("(d)bs", "decode_batch_size"),
        ]
    for head, _ in cols:
        table.add_column(head, justify="right", no_wrap=True)
    for row in rows:
        table.add_row(*(_fmt(row.get(key, "")) for _, key in cols))
    return table


def pareto_plot(doc: dict) -> str:
    groups: dict[str, list] = {}
    for p in doc["pareto"]:
        groups.setdefault(p["experiment"], []).append((p["tokens_per_s_per_user"], p["tokens_per_s_per_gpu"]))
    series = [Series(name, _MARKERS[i % len(_MARKERS)], pts) for i, (name, pts) in enumerate(groups.items())]
    chosen = [(p["tokens_per_s_per_user"], p["tokens_per_s_per_gpu"]) for p in doc["pareto"] if p["chosen"]]
    series.append(Series("chosen at the SLA", "X", chosen))
    return render(series)


def print_report(doc: dict, console: Console) -> None:
    parts = [best_panel(doc)]
    for mode in ("agg", "disagg"):
        if doc[mode]:
            parts.append(top_table(doc[mode], mode))
    infeasible = [e for e in doc["experiments"] if e.get("infeasible")]
    for e in infeasible:
        parts.append(Text(f"{e['name']}: no deployment meets the targets: {e['infeasible']}", style="yellow"))
    console.print(Group(*parts))
    console.print("Pareto frontier: tokens/s/gpu (whole budget) vs tokens/s/user", style="bold")
    console.print(Text(pareto_plot(doc)), soft_wrap=True)
