"""``cli simulate --save_dir``: the run's JSON, per-request CSV, latency CDFs and a timeline plot.

<save_dir>/simulation_<model>_<system>_<backend>_<n>/
    result.json         the document ``--json`` prints
    requests.csv        one row per request (times in ms; ``measured`` = inside the window)
    latency_cdf.png     TTFT, TPOT and E2E distributions of the measured requests
    timeline.png        queue length, running requests and KV-cache use over time
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from servopt.errors import ServoptError
from servopt.report.save import new_run_dir


def _run_dir(doc: dict, save_dir: str | Path) -> Path:
    c = doc["config"]
    return new_run_dir(Path(save_dir), f"simulation_{c['model']}_{c['system']}_{c['backend']}")


def save_simulation(doc: dict, result, save_dir: str | Path) -> Path:
    """Write the run's files in a new folder inside ``save_dir``; returns it."""
    try:
        return _write(doc, result, save_dir)
    except OSError as err:
        raise ServoptError(
            "--save_dir", str(save_dir), f"cannot write the results: {err.strerror or err}"
        ) from None


def _write(doc: dict, result, save_dir: str | Path) -> Path:
    path = _run_dir(doc, save_dir)
    (path / "result.json").write_text(json.dumps(doc, indent=2, allow_nan=False))
    per = result.per_request
    keys = list(per)
    with (path / "requests.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request", *keys])
        columns = [np.asarray(per[k]) for k in keys]
        for i in range(len(columns[0])):
            row = []
            for col in columns:
                v = col[i]
                if col.dtype == bool:
                    row.append(int(v))
                elif np.issubdtype(col.dtype, np.floating):
                    row.append("" if not np.isfinite(v) else f"{v:.4f}")
                else:
                    row.append(int(v))
            writer.writerow([i, *row])
    _plots(result, path)
    return path


def _plots(result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    per = result.per_request
    m = per["measured"] & (per["done_ms"] >= 0)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), dpi=100)
    panels = (("ttft_ms", "TTFT (ms)", 1.0), ("tpot_ms", "TPOT (ms)", 1.0), ("e2e_ms", "E2E (s)", 1e-3))
    for ax, (key, label, scale) in zip(axes, panels, strict=True):
        v = np.sort(per[key][m][np.isfinite(per[key][m])]) * scale
        if v.size:
            ax.plot(v, np.arange(1, v.size + 1) / v.size, color="#1f77b4")
            for p, style in ((0.5, ":"), (0.9, "--"), (0.99, "-.")):
                ax.axhline(p, color="grey", linestyle=style, linewidth=0.8)
        ax.set_xlabel(label)
        ax.xaxis.set_major_locator(plt.MaxNLocator(5))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.4g}"))
        ax.set_ylabel("fraction of requests")
        ax.grid(alpha=0.3)
    fig.suptitle("latency CDFs (measured requests)")
    fig.tight_layout()
    fig.savefig(path / "latency_cdf.png")
    plt.close(fig)

    tl = result.timeline
    fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
    if len(tl):
        t_s = tl[:, 0] / 1000.0
        ax.plot(t_s, tl[:, 1], label="queued requests", color="#d62728")
        ax.plot(t_s, tl[:, 2], label="running requests", color="#1f77b4")
        ax.set_ylabel("requests")
        ax2 = ax.twinx()
        ax2.plot(t_s, tl[:, 3], label="KV tokens in use", color="#2ca02c", alpha=0.6)
        ax2.set_ylabel("KV tokens in use")
        lines = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
        labels = ax.get_legend_handles_labels()[1] + ax2.get_legend_handles_labels()[1]
        ax.legend(lines, labels, loc="upper right", fontsize=8)
    ax.set_xlabel("time (s)")
    ax.grid(alpha=0.3)
    fig.suptitle("timeline (sampled at forward-pass starts)")
    fig.tight_layout()
    fig.savefig(path / "timeline.png")
    plt.close(fig)
