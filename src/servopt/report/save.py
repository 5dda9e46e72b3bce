"""``--save_dir``: everything a user takes away from a run, one folder per run.

<save_dir>/<model>_<system>_<backend>_isl<i>_osl<o>_ttft<t>_tpot<p>_<n>/
    result.json                 the whole run (schema: docs/result_schema.json)
    pareto_frontier.png         all experiments on one chart, chosen points marked
    pareto_frontier.html        the same chart, interactive (hover shows layouts), offline
    <experiment>/pareto.csv     the frontier of one experiment
    <experiment>/best_configs.csv   the top N configurations, every deployment column
    config.yaml                 every experiment, resolved and pinned: ``cli exp --yaml_path`` reruns it
    <experiment>/config.yaml    the resolved experiment (defaults, profiles, backend version used)
    <experiment>/top<k>/        deployment configs of the k-th configuration
    <experiment>/packed/        when the verdict says packed: one g<i>/ per replica shape and one
                                k8s_deploy.yaml for all of them
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

from servopt.errors import ServoptError
from servopt.limits import MAX_NAME_CHARS, folder_name_problem
from servopt.report.files import deployment_files, packed_deployment_files
from servopt.report.html_plot import SERIES_COLORS, pareto_html, series_label
from servopt.run_result import ExperimentRun, RunResult

# The run folder's name is built from the model (possibly a config.json path), system and backend:
# anything but these characters becomes "-", so it is always one plain folder name.
_UNSAFE_FOLDER_CHARS = re.compile(r"[^A-Za-z0-9._+=-]")


def new_run_dir(save_dir: Path, name: str) -> Path:
    """A new folder ``<save_dir>/<safe name>_<n>`` (the first free n), created with its parents."""
    stem = _UNSAFE_FOLDER_CHARS.sub("-", name)[: 2 * MAX_NAME_CHARS]
    n = 0
    while (save_dir / f"{stem}_{n}").exists():
        n += 1
    path = save_dir / f"{stem}_{n}"
    path.mkdir(parents=True)
    return path


def _run_dir(doc: dict, save_dir: Path) -> Path:
    e = doc["experiments"][0]
    return new_run_dir(
        save_dir,
        f"{e['model']}_{e['system']}_{e['backend']}_isl{e['isl']}_osl{e['osl']}_"
        f"ttft{e['ttft_ms']:g}_tpot{e['tpot_ms']:g}",
    )


def _write_csv(path: Path, rows: list[dict]) -> None:
    flat = [{k: v for k, v in r.items() if not isinstance(v, list | dict)} for r in rows]
    keys: list[str] = []
    for r in flat:
        keys += [k for k in r if k not in keys]
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(flat)


def pareto_png(doc: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    for i, e in enumerate(x for x in doc["experiments"] if x.get("pareto")):
        pts = sorted(e["pareto"], key=lambda p: p["tokens_per_s_per_user"])
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        xs = [p["tokens_per_s_per_user"] for p in pts]
        ys = [p["tokens_per_s_per_gpu"] for p in pts]
        ax.plot(xs, ys, "-o", color=color, markersize=4, label=series_label(e["name"], e["serving_mode"]))
        for p in pts:
            if p["chosen"]:
                ax.plot([p["tokens_per_s_per_user"]], [p["tokens_per_s_per_gpu"]], "*", color=color, markersize=16,
                        markeredgecolor="black", zorder=5)  # fmt: skip
    e0 = doc["experiments"][0]
    ax.axvline(
        1000.0 / e0["tpot_ms"],
        color="grey",
        linestyle=":",
        linewidth=1,
        label=f"TPOT target {e0['tpot_ms']:g} ms",
    )
    ax.set_xlabel("tokens/s/user")
    ax.set_ylabel("tokens/s/gpu (whole GPU budget)")
    ax.set_title(
        f"Pareto frontier: {e0['model']} on {e0['total_gpus']} x {e0['system']} ({e0['backend']}); * = chosen"
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def pinned_experiment(run: ExperimentRun):
    """The experiment as it ran: the backend version the perf database resolved is written in, so
    that a later run (with a newer database installed) searches the same data."""
    versions = set(run.versions.values())
    if run.experiment.backend_version is None and len(versions) == 1:
        return run.experiment.model_copy(update={"backend_version": versions.pop()})
    return run.experiment


def _rerun_header(*, top_n: int, max_replica_types: int = 2, composition: str = "menu") -> str:
    # The search options that are not part of an experiment; YAML comments, so the file still loads.
    return (
        "# Every value resolved (defaults, profiles, the backend version used). The same answer again:\n"
        f"#   servopt cli exp --yaml_path config.yaml --top_n {top_n} "
        f"--max_replica_types {max_replica_types} --composition {composition}\n"
    )


def _experiment_dir(root: Path, name: str) -> Path:
    """``root/<name>``, refused unless ``name`` is one plain folder name (the loader already refuses
    such names; this guards experiments built in code)."""
    why = folder_name_problem(name)
    if why is not None:
        raise ServoptError("experiment name", name, why)
    return root / name


def save_run(
    result: RunResult, doc: dict, save_dir: Path, *, top_n: int, run_options: dict | None = None
) -> Path:
    """Write the run's files inside ``save_dir`` (never elsewhere); returns the run folder.
    ``run_options``: max_replica_types and composition, recorded beside the experiments."""
    for run in result.runs:
        _experiment_dir(save_dir, run.name)  # checked before anything is written
    try:
        return _write_run(result, doc, save_dir, top_n=top_n, run_options=run_options)
    except OSError as err:
        raise ServoptError(
            "--save_dir", str(save_dir), f"cannot write the results: {err.strerror or err}"
        ) from None


def _write_run(result: RunResult, doc: dict, save_dir: Path, *, top_n: int, run_options: dict | None) -> Path:

    root = _run_dir(doc, save_dir)
    (root / "result.json").write_text(json.dumps(doc, indent=2, default=str))
    pareto_png(doc, root / "pareto_frontier.png")
    (root / "pareto_frontier.html").write_text(pareto_html(doc))
    header = _rerun_header(top_n=top_n, **(run_options or {}))
    pinned = [pinned_experiment(run) for run in result.runs]
    (root / "config.yaml").write_text(header + "".join(exp.to_yaml() for exp in pinned))
    for run, exp, edoc in zip(result.runs, pinned, doc["experiments"], strict=True):
        folder = _experiment_dir(root, run.name)
        folder.mkdir()
        (folder / "config.yaml").write_text(header + exp.to_yaml())
        if run.mode is None:
            (folder / "infeasible.txt").write_text(str(run.infeasible) + "\n")
            continue
        _write_csv(folder / "pareto.csv", edoc["pareto"])
        _write_csv(folder / "best_configs.csv", edoc["top"])
        for rank in range(1, min(top_n, len(run.top)) + 1):
            _write_files(folder / f"top{rank}", deployment_files(result, run.name, rank))
        if doc["verdict"]["deploy"] == "packed" and doc["verdict"]["experiment"] == run.name:
            _write_files(folder / "packed", packed_deployment_files(result, run.name))
    return root


def _write_files(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        if path.name == "run.sh":
            path.chmod(0o755)
