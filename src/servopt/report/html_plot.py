"""A self-contained interactive Pareto chart (inline SVG + a few lines of JS): opens offline in any
browser, hover shows each point's layout and figures, chosen points are marked."""

from __future__ import annotations

import html
import json

# One colour per experiment, shared by the PNG (report.save) and this HTML chart.
SERIES_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2"]
_W, _H, _PAD = 860, 480, 60


def _nice(v: float) -> float:
    import math

    if v <= 0:
        return 1.0
    e = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * e:
            return m * e
    return 10 * e


def pareto_html(doc: dict) -> str:
    exps = [e for e in doc["experiments"] if e.get("pareto")]
    pts = [p for e in exps for p in e["pareto"]]
    x_max = _nice(max((p["tokens_per_s_per_user"] for p in pts), default=1.0) * 1.05)
    y_max = _nice(max((p["tokens_per_s_per_gpu"] for p in pts), default=1.0) * 1.05)

    def sx(x: float) -> float:
        return _PAD + x / x_max * (_W - 2 * _PAD)

    def sy(y: float) -> float:
        return _H - _PAD - y / y_max * (_H - 2 * _PAD)

    svg = [f'<svg id="chart" width="{_W}" height="{_H}" xmlns="http://www.w3.org/2000/svg">']
    for i in range(6):
        x, y = x_max * i / 5, y_max * i / 5
        svg.append(
            f'<line x1="{sx(x):.1f}" y1="{sy(0):.1f}" x2="{sx(x):.1f}" y2="{sy(y_max):.1f}" class="grid"/>'
        )
        svg.append(
            f'<line x1="{sx(0):.1f}" y1="{sy(y):.1f}" x2="{sx(x_max):.1f}" y2="{sy(y):.1f}" class="grid"/>'
        )
        svg.append(f'<text x="{sx(x):.1f}" y="{_H - _PAD + 18}" text-anchor="middle">{x:g}</text>')
        svg.append(f'<text x="{_PAD - 8}" y="{sy(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
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
            f'<text x="{_W - 232}" y="{30 + 18 * i}">{html.escape(e["name"])} ({e["serving_mode"]})</text>'
        )
    svg.append("</svg>")
    first = doc["experiments"][0]
    title = html.escape(f"{first['model']} on {first['total_gpus']} x {first['system']} ({first['backend']})")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>servopt Pareto frontier: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; }}
svg text {{ font-size: 12px; fill: #333; }}
.grid {{ stroke: #ddd; stroke-width: 1; }}
circle {{ cursor: pointer; }}
#tip {{ position: absolute; display: none; background: #fff; border: 1px solid #999; padding: 6px 8px;
       font-size: 12px; white-space: pre; box-shadow: 2px 2px 6px rgba(0,0,0,.2); }}
</style></head><body>
<h2>Pareto frontier: {title}</h2>
<p>Large outlined points are the configurations chosen at the SLA. Hover a point for its layout.</p>
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
