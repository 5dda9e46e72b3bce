"""A self-contained interactive Pareto chart (inline SVG + a few lines of JS): opens offline in any
browser, hover shows each point's layout and figures, chosen points are marked."""

from __future__ import annotations

import html
import json
import math

# One colour per experiment, shared by the PNG (report.save) and this HTML chart.
SERIES_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
# The drawing's own coordinates; the page scales it to the window's width (viewBox).
_W, _H, _PAD = 860, 480, 60
_TICKS = 5
MODE_NAMES = {"agg": "aggregated", "disagg": "disaggregated"}


def series_label(name: str, serving_mode: str) -> str:
    """``aggregated`` for cli default's experiments, ``<name> (disaggregated)`` for named ones."""
    mode = MODE_NAMES.get(serving_mode, serving_mode)
    return mode if name == serving_mode else f"{name} ({mode})"


def axis_max(v: float, ticks: int = _TICKS) -> tuple[float, float]:
    """(axis maximum, tick step): a round step (1, 2, 2.5 or 5 x 10^k) and the fewest steps that
    hold ``v``, so the axis ends just past the data."""
    if v <= 0:
        return 1.0, 1.0 / ticks
    raw = v / ticks
    e = 10 ** math.floor(math.log10(raw))
    step = next(m * e for m in (1, 2, 2.5, 5, 10) if raw <= m * e)
    return step * math.ceil(v / step), step


def pareto_html(doc: dict) -> str:
    exps = [e for e in doc["experiments"] if e.get("pareto")]
    pts = [p for e in exps for p in e["pareto"]]
    tpot_ms = doc["experiments"][0]["tpot_ms"]
    target_x = 1000.0 / tpot_ms  # tokens/s/user at exactly the TPOT target
    x_max, x_step = axis_max(max([p["tokens_per_s_per_user"] for p in pts] + [target_x]) * 1.02)
    y_max, y_step = axis_max(max((p["tokens_per_s_per_gpu"] for p in pts), default=1.0) * 1.02)

    def sx(x: float) -> float:
        return _PAD + x / x_max * (_W - 2 * _PAD)

    def sy(y: float) -> float:
        return _H - _PAD - y / y_max * (_H - 2 * _PAD)

    svg = [
        f'<svg id="chart" viewBox="0 0 {_W} {_H}" preserveAspectRatio="xMidYMid meet" '
        'role="img" aria-label="Pareto frontier" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(round(x_max / x_step) + 1):
        x = x_step * i
        svg.append(
            f'<line x1="{sx(x):.1f}" y1="{sy(0):.1f}" x2="{sx(x):.1f}" y2="{sy(y_max):.1f}" class="grid"/>'
        )
        svg.append(f'<text x="{sx(x):.1f}" y="{_H - _PAD + 18}" text-anchor="middle">{x:g}</text>')
    for i in range(round(y_max / y_step) + 1):
        y = y_step * i
        svg.append(
            f'<line x1="{sx(0):.1f}" y1="{sy(y):.1f}" x2="{sx(x_max):.1f}" y2="{sy(y):.1f}" class="grid"/>'
        )
        svg.append(f'<text x="{_PAD - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    # The TPOT target: points to its left are slower per user than the target allows.
    svg.append(
        f'<line x1="{sx(target_x):.1f}" y1="{sy(0):.1f}" x2="{sx(target_x):.1f}" y2="{sy(y_max):.1f}" '
        'class="target"/>'
    )
    svg.append(
        f'<text x="{sx(target_x) + 4:.1f}" y="{sy(y_max) + 12:.1f}" class="target-label">'
        f"TPOT target {tpot_ms:g} ms</text>"
    )
    svg.append(f'<text x="{_W / 2}" y="{_H - 15}" text-anchor="middle">tokens/s/user</text>')
    svg.append(
        f'<text x="15" y="{_H / 2}" transform="rotate(-90 15 {_H / 2})" text-anchor="middle">tokens/s/gpu</text>'
    )
    for i, e in enumerate(exps):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        line = sorted(e["pareto"], key=lambda p: p["tokens_per_s_per_user"])
        path = " ".join(
            f"{sx(p['tokens_per_s_per_user']):.1f},{sy(p['tokens_per_s_per_gpu']):.1f}" for p in line
        )
        svg.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for p in line:
            tip = html.escape(
                json.dumps(
                    {
                        "experiment": e["name"],
                        "layout": p["layout"],
                        "tokens/s/gpu": round(p["tokens_per_s_per_gpu"], 2),
                        "tokens/s/user": round(p["tokens_per_s_per_user"], 2),
                        "TTFT ms": round(p["ttft_ms"], 1),
                        "TPOT ms": round(p["tpot_ms"], 2),
                        "GPUs used": p["total_gpus_used"],
                        "chosen": p["chosen"],
                    }
                )
            )
            r = 9 if p["chosen"] else 4.5
            extra = ' stroke="black" stroke-width="2"' if p["chosen"] else ""
            svg.append(
                f'<circle cx="{sx(p["tokens_per_s_per_user"]):.1f}" cy="{sy(p["tokens_per_s_per_gpu"]):.1f}" '
                f'r="{r}" fill="{color}"{extra} data-tip="{tip}"/>'
            )
        svg.append(f'<rect x="{_W - 250}" y="{20 + 18 * i}" width="12" height="12" fill="{color}"/>')
        svg.append(
            f'<text x="{_W - 232}" y="{30 + 18 * i}">{html.escape(series_label(e["name"], e["serving_mode"]))}</text>'
        )
    svg.append("</svg>")
    first = doc["experiments"][0]
    title = html.escape(f"{first['model']} on {first['total_gpus']} x {first['system']} ({first['backend']})")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>servopt Pareto frontier: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 16px; }}
#chart {{ width: 100%; max-width: 1100px; height: auto; display: block; }}
svg text {{ font-size: 12px; fill: #333; }}
.grid {{ stroke: #ddd; stroke-width: 1; }}
.target {{ stroke: #555; stroke-width: 1.5; stroke-dasharray: 6 4; }}
.target-label {{ fill: #555; }}
circle {{ cursor: pointer; }}
#tip {{ position: absolute; display: none; background: #fff; border: 1px solid #999; padding: 6px 8px;
       font-size: 12px; white-space: pre; box-shadow: 2px 2px 6px rgba(0,0,0,.2); }}
</style></head><body>
<h2>Pareto frontier: {title}</h2>
<p>Large outlined points are the configurations chosen at the SLA; the dashed line is the TPOT target
(points to its right meet it). Hover a point for its layout.</p>
{"".join(svg)}
<div id="tip"></div>
<script>
const tip = document.getElementById("tip");
document.querySelectorAll("circle[data-tip]").forEach(c => {{
  c.addEventListener("mousemove", ev => {{
    const d = JSON.parse(c.dataset.tip);
    tip.textContent = Object.entries(d).map(([k, v]) => k + ": " + v).join("\\n");
    tip.style.left = (ev.pageX + 12) + "px"; tip.style.top = (ev.pageY + 12) + "px";
    tip.style.display = "block";
  }});
  c.addEventListener("mouseleave", () => {{ tip.style.display = "none"; }});
}});
</script></body></html>
"""
