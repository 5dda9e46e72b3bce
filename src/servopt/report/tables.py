"""The terminal report of a run: the verdict, the deployment it names, top-N tables, Pareto plot.

Everything fits the console's width (80 columns and up): a table drops its least important
columns first (memory, request latency, req/s, concurrency, GPUs, the experiment name), then
stacks a disaggregated layout onto two lines, then drops the replica shape and the layout; rank,
tokens/s/gpu, tokens/s/user, TTFT and TPOT always stay. What was dropped is named under the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich import box
from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from servopt.report.robustness import robustness_lines
from servopt.report.rows import workers_text
from servopt.report.terminal_plot import Series, render
from servopt.report.verdict import chosen_row, gpu_use, plural, shape

_MARKERS = "*o+x#@%&"


def fmt_number(v) -> str:
    """Integers (and whole-number counts stored as floats) without decimals; others with two."""
    if isinstance(v, bool) or v is None:
        return "" if v is None else str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.2f}"
    return str(v)


def layout_text(row: dict, stacked: bool = False) -> str:
    """One replica's workers: ``tp2 bs80`` (agg) or ``1P tp1 bs1 + 1D tp1 bs52`` (disagg)."""
    return workers_text(row, "\n" if stacked else " + ")


@dataclass(frozen=True)
class Column:
    head: str
    cell: Callable[[dict], str]
    drop_rank: int  # 0: never dropped; higher: dropped earlier when the table is too wide


def _key(key: str, integer: bool = False) -> Callable[[dict], str]:
    if integer:
        return lambda row: str(round(row[key]))
    return lambda row: fmt_number(row.get(key, ""))


def _columns(mode: str, show_experiment: bool, stacked: bool) -> list[Column]:
    cols = [Column("rank", _key("rank"), 0)]
    if show_experiment:
        cols.append(Column("experiment", _key("experiment"), 3))
    cols += [
        Column("tokens/s/gpu", _key("tokens_per_s_per_gpu"), 0),
        Column("tokens/s/user", _key("tokens_per_s_per_user"), 0),
        Column("TTFT ms", _key("ttft_ms"), 0),
        Column("TPOT ms", _key("tpot_ms"), 0),
        Column("layout", lambda row: layout_text(row, stacked), 1),
        Column("replicas", lambda row: f"{row['replicas']}x{row['gpus_per_replica']}", 2),
        Column("GPUs", lambda row: f"{row['total_gpus_used']}/{row['total_gpus']}", 4),
        Column("concurrency", _key("concurrency", integer=True), 5),
        Column("req/s", _key("requests_per_s"), 6),
        Column("latency ms", _key("request_latency_ms"), 7),
    ]
    if mode == "agg":
        cols += [Column("ctx", _key("ctx_tokens"), 8), Column("mem GiB", _key("memory_gib"), 9)]
    else:
        cols.append(Column("mem GiB P/D", _mem_pd, 9))
    return cols


def _mem_pd(row: dict) -> str:
    return f"{row['prefill_memory_gib']:.1f}/{row['decode_memory_gib']:.1f}"


def _table(rows: list[dict], cols: list[Column], title: str) -> Table:
    table = Table(title=title, header_style="bold", box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for col in cols:
        table.add_column(col.head, justify="left" if col.head == "layout" else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(col.cell(row) for col in cols))
    return table


def top_table(rows: list[dict], mode: str, width: int = 240) -> Table:
    """The top configurations of one mode, narrowed to ``width`` columns."""
    title = f"{mode} top configurations (ranked by tokens/s/gpu)"
    show_experiment = any(r["experiment"] != mode for r in rows)
    all_heads = [c.head for c in _columns(mode, show_experiment, False)]
    kept, stacked = set(all_heads), False
    # Measured on a console wider than any table: rich reports a table's natural width there
    # (on a narrow console it reports the width it would shrink the columns to).
    console = Console(width=10_000)
    while True:
        cols = [c for c in _columns(mode, show_experiment, stacked) if c.head in kept]
        table = _table(rows, cols, title)
        if console.measure(table).maximum <= width:
            break
        # Secondary figures go first; then a disagg layout stacks its prefill and decode workers
        # on two lines; then the replica shape goes, and last the layout.
        optional = [c for c in cols if c.drop_rank > 2]
        shape_cols = [c for c in cols if 0 < c.drop_rank <= 2]
        if optional:
            kept.discard(max(optional, key=lambda c: c.drop_rank).head)
        elif mode == "disagg" and not stacked:
            stacked = True
        elif shape_cols:
            kept.discard(max(shape_cols, key=lambda c: c.drop_rank).head)
        else:
            break  # only the five columns that always stay: the console is narrower than they are
    hidden = [h for h in all_heads if h not in kept]
    if hidden:
        table.caption = f"not shown at {width} columns: {', '.join(hidden)} (all columns: --json, --save_dir)"
        table.caption_justify = "left"
    return table


def _layout_lines(row: dict) -> list[str]:
    groups = row.get("groups")
    if not groups:
        return [f"{shape(row)}, each: {layout_text(row)}"]
    return [
        f"{plural(g['replicas'], 'replica')} x {plural(g['gpus_per_replica'], 'GPU')}: "
        f"{layout_text({**g, 'mode': row['mode']})}"
        for g in groups
    ]


# The figures are the raw model's (--calibration none).
RAW_MODEL_LINE = "calibration: none (the raw model, comparable with aiconfigurator 0.12.0)"


def calibration_line(cal: dict | None) -> str:
    """Which calibration the figures include (the result document's ``calibration``)."""
    if cal is None:
        return RAW_MODEL_LINE
    scopes = ", ".join(dict.fromkeys(f"{role} {w['scope']}" for role, w in cal["workers"].items()))
    return f"calibrated: {cal['profile']}, {cal['measurements']} measurements ({scopes})"


def scope_calibration_line(cal: dict | None, *, values: bool = False) -> str:
    """Which calibration one deployment's figures include (``cli estimate``, ``cli simulate``, rate
    sizing: ``servopt.calibrate.model.scope_adjustments``'s document); ``values`` adds the four."""
    if cal is None:
        return RAW_MODEL_LINE
    scope = f"scope {cal['scope']}"
    if cal.get("decode"):
        scope += f"; decode pools {cal['decode']['scope']}"
    if values:
        scope += (
            f": request overhead {cal['request_overhead_ms']:g} ms, iteration overhead "
            f"{cal['iteration_overhead_ms']:g} ms, decode x{cal['decode_scale']:g}, prefill "
            f"x{cal['prefill_scale']:g}"
        )
    return f"calibrated: {cal['profile']}, {cal['measurements']} measurements ({scope})"


def best_panel(doc: dict) -> Panel:
    """The verdict (what to deploy, why, the other option) and the figures of that deployment."""
    v = doc["verdict"]
    row = chosen_row(doc)
    lines = [f"- {why}" for why in v["why"]]
    if v["alternative"]:
        lines.append(f"Other option: {v['alternative']}")
    lines += [
        "",
        f"TTFT {row['ttft_ms']:,.2f} ms   TPOT {row['tpot_ms']:,.2f} ms   "
        f"tokens/s/user {row['tokens_per_s_per_user']:,.2f}",
        f"tokens/s {row['tokens_per_s']:,.2f}   requests/s {row['requests_per_s']:,.2f}   "
        f"concurrency {round(row['concurrency'])}",
        f"request latency {row['request_latency_ms']:,.2f} ms   GPUs {gpu_use(row)}",
        *_layout_lines(row),
        calibration_line(doc.get("calibration")),
        *robustness_lines(doc),
    ]
    body = Text(v["headline"], style="bold")
    body.append("\n" + "\n".join(lines), style="")
    return Panel(body, title="Verdict", title_align="left", expand=False)


def count_notes(doc: dict, top_n: int | None) -> list[str]:
    """Why a table shows fewer rows than ``--top_n`` asked for: a table lists the best deployment
    of each parallel layout (agg) or decode-worker layout (disagg), and fewer meet the targets."""
    if top_n is None:
        return []
    notes = []
    for e in doc["experiments"]:
        n = len(e.get("top") or [])
        if e.get("infeasible") is None and n < top_n:
            what = "parallel layout" if e["serving_mode"] == "agg" else "decode-worker layout"
            notes.append(
                f"{e['name']}: {'only ' if n else ''}{plural(n, what)} "
                f"{'meets' if n == 1 else 'meet'} the targets (one row per layout; --top_n {top_n})"
            )
    return notes


def pareto_plot(doc: dict, width: int = 64) -> str:
    groups: dict[str, list] = {}
    for p in doc["pareto"]:
        groups.setdefault(p["experiment"], []).append((p["tokens_per_s_per_user"], p["tokens_per_s_per_gpu"]))
    series = [Series(name, _MARKERS[i % len(_MARKERS)], pts) for i, (name, pts) in enumerate(groups.items())]
    chosen = [(p["tokens_per_s_per_user"], p["tokens_per_s_per_gpu"]) for p in doc["pareto"] if p["chosen"]]
    series.append(Series("chosen at the SLA", "X", chosen))
    return render(series, width=width)


def print_report(doc: dict, console: Console, top_n: int | None = None) -> None:
    width = console.width
    parts = [best_panel(doc)]
    for mode in ("agg", "disagg"):
        if doc[mode]:
            parts.append(top_table(doc[mode], mode, width))
    for note in count_notes(doc, top_n):
        parts.append(Text(note, style="dim"))
    for e in doc["experiments"]:
        if e.get("infeasible"):
            parts.append(
                Text(f"{e['name']}: no deployment meets the targets: {e['infeasible']}", style="yellow")
            )
    console.print(Group(*parts))
    console.print("Pareto frontier: tokens/s/gpu (whole budget) vs tokens/s/user", style="bold")
    # The plot's frame is 64 columns plus the y-axis labels (about 8); narrower consoles get a
    # narrower frame so that no line wraps.
    console.print(Text(pareto_plot(doc, width=max(24, min(64, width - 14)))), soft_wrap=True)
