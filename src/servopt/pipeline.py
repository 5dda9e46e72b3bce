"""One run: experiments -> perf databases -> worker tables -> exact search -> results.

This is the single implementation behind ``cli default``, ``cli exp`` and the web app. Per
experiment it opens the perf database of each role's system, enumerates the parallel layouts of
the worker config, evaluates every (layout, batch [, ctx tokens]) candidate in batched calls,
and hands the option tables to the CP-SAT search. The winner across experiments is the one whose
identical-replica deployment gives the most tokens/s per GPU of the budget (the peer's rule); the
packed deployment (up to K replica shapes) is reported beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from servopt.errors import InfeasibleError, ServoptError
from servopt.report.files import deployment_files, packed_deployment_files  # noqa: F401  (the web app's pipeline API)
from servopt.report.rows import deployment_row, frontier_rows

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]

# Default number of configurations listed per serving mode (the peer's --top_n default).
DEFAULT_TOP_N = 5


@dataclass
class ExperimentRun:
    """Everything one experiment produced; ``mode`` is None when nothing met the targets."""

    experiment: object  # servopt.config.Experiment
    arch: object  # servopt.models.arch.ModelArch
    versions: dict[str, str]  # role -> resolved backend version
    tables: dict[str, object]  # role -> servopt.evaluate.workers.WorkerTable
    mode: object | None  # servopt.search.result.ModeResult
    infeasible: str | None
    top: list[dict] = field(default_factory=list)
    # role -> measured rows its database borrows from other data versions (perf_db.sources)
    borrowed: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.experiment.name

    @property
    def best_row(self) -> dict | None:
        return self.top[0] if self.top else None

    def row(self, deployment) -> dict:
        return deployment_row(self, deployment)


@dataclass
class RunResult:
    runs: list[ExperimentRun]

    @property
    def feasible(self) -> list[ExperimentRun]:
        return [r for r in self.runs if r.mode is not None]

    @property
    def winner(self) -> ExperimentRun:
        return max(self.feasible, key=lambda r: r.mode.identical.tokens_per_s_per_gpu)

    def run(self, name: str) -> ExperimentRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise ServoptError("experiment", name, "no such experiment in this run", [r.name for r in self.runs])

    def to_json(self) -> dict:
        """The machine-readable result (``--json``, ``result.json``, the web API)."""
        win = self.winner
        best = dict(win.row(win.mode.identical))
        best["experiment"] = win.name
        others = [r for r in self.feasible if r is not win]
        if others:
            runner_up = max(others, key=lambda r: r.mode.identical.tokens_per_s_per_gpu)
            best["runner_up"] = runner_up.name
            best["ratio_vs_runner_up"] = (
                win.mode.identical.tokens_per_s_per_gpu / runner_up.mode.identical.tokens_per_s_per_gpu
            )
        packed = win.row(win.mode.packed)
        packed["gain_vs_identical"] = win.mode.packed_gain
        best["packed"] = packed
        experiments = []
        for r in self.runs:
            doc = {
                "name": r.name,
                "serving_mode": r.experiment.serving_mode,
                "model": r.experiment.model_name,
                "system": r.experiment.system_name,
                "decode_system": r.experiment.decode_system_name,
                "backend": r.experiment.backend_name,
                "versions": r.versions,
                "total_gpus": r.experiment.total_gpus,
                "isl": r.experiment.isl,
                "osl": r.experiment.osl,
                "ttft_ms": r.experiment.ttft,
                "tpot_ms": r.experiment.tpot,
                "infeasible": r.infeasible,
                "borrowed_tables": r.borrowed,
            }
            if r.mode is not None:
                packed = r.row(r.mode.packed)
                packed["gain_vs_identical"] = r.mode.packed_gain
                doc.update(
                    best=r.row(r.mode.identical),
                    packed=packed,
                    top=r.top,
                    pareto=frontier_rows(r),
                    counters=_counters(r.mode.counters),
                )
            experiments.append(doc)
        by_mode = {"agg": [], "disagg": []}
        for r in self.feasible:
            by_mode[r.experiment.serving_mode].extend(r.top)
        for rows in by_mode.values():
            rows.sort(key=lambda row: -row["tokens_per_s_per_gpu"])
        pareto = [p for r in self.feasible for p in frontier_rows(r)]
        from servopt.report.verdict import verdict

        doc = {"best": best, **by_mode, "pareto": pareto, "experiments": experiments}
        doc["verdict"] = verdict(doc)
        return doc


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


class _Databases:
    """Perf databases opened once per run, keyed by (system, backend, version)."""

    def __init__(self, cache_dir: str | None):
        self.cache_dir = cache_dir
        self._open: dict[tuple, object] = {}

    def get(self, system: str, backend: str, version: str | None):
        key = (system, backend, version)
        if key not in self._open:
            from servopt.perf_db.database import open_database

            self._open[key] = open_database(system, backend, version, cache_dir=self.cache_dir)
        return self._open[key]


_BORROWED_SAID: set[tuple] = set()


def table_serves(arch, table: str) -> bool:
    """Whether a measured table can price this model: MoE tables (experts, all-to-all, wide EP)
    only MoE models, MLA tables only MLA models; the rest (GEMM, attention, collectives) any."""
    if any(word in table for word in ("moe", "deepep", "wideep")) and not arch.is_moe:
        return False
    return "mla" not in table or arch.family == "mla_moe"


def warn_borrowed(db, arch) -> None:
    """One WARNING line per database, model family and process naming the borrowed tables this
    model can use (a dense model is not told about borrowed MoE tables)."""
    said = (db.system_name, db.backend, db.version, arch.is_moe, arch.family)
    summary = db.borrowed_summary(lambda table: table_serves(arch, table))
    if summary and said not in _BORROWED_SAID:
        _BORROWED_SAID.add(said)
        log.warning("%s", summary)


def _quant(arch, wc, db, backend):
    """The worker's quant modes; an fp8 FMHA the data cannot price falls back to bf16 (as the peer)."""
    from servopt.evaluate.single import quant_modes

    default_fmha = wc.fmha_quant_mode == arch.quant.fmha
    q = quant_modes(
        arch,
        wc.gemm_quant_mode,
        wc.moe_quant_mode,
        wc.kvcache_quant_mode,
        None if default_fmha else wc.fmha_quant_mode,
        db=db,
        backend=backend,
    )
    fallback = (wc.fmha_quant_mode, db.system_name, db.backend, db.version, q.fmha)
    if default_fmha and q.fmha != wc.fmha_quant_mode and fallback not in _FMHA_FALLBACKS_SAID:
        _FMHA_FALLBACKS_SAID.add(fallback)  # once per process, not once per role and experiment
        log.warning("fmha_quant_mode %s has no measured data on %s/%s %s; using %s", *fallback)
    return q._replace(comm=wc.comm_quant_mode)


_FMHA_FALLBACKS_SAID: set[tuple] = set()


def _explain_empty(table, exp, role) -> InfeasibleError:
    """Why a role has no usable worker: nothing fits in memory, or nothing could be priced."""
    mem = table.metrics.memory
    capacity_gib = table.layouts.setup.system.gpu.mem_capacity_bytes / 2**30
    field = f"{role}_worker_config"
    lops = table.layouts
    if len(mem.total) == 0 and lops.layouts:
        # Candidates whose weights alone overflow the GPU are dropped before pricing.
        per_gpu_gib = lops.weight_bytes / lops.column("pp") / 2**30
        i = int(np.argmin(per_gpu_gib))
        return InfeasibleError(
            field,
            exp.model_name,
            f"does not fit in memory on {exp.system(role)}: its weights alone need {per_gpu_gib[i]:.1f} GiB "
            f"per GPU at the best layout ({lops.layouts[i].label}) of {capacity_gib:.1f} GiB; allow more GPUs "
            "per worker (total_gpus, num_gpu_per_worker, tp/ep lists) or a smaller quant mode",
        )
    if len(mem.total) == 0:
        why = f": {lops.skipped[0][1]}" if lops.skipped else ""
        return InfeasibleError(
            field,
            exp.model_name,
            f"no parallel layout of the lists can run this model on {exp.system(role)}{why}",
        )
    if not mem.fits.any():
        i = int(np.argmin(mem.total))
        layout = table.layouts.layouts[int(table.candidates.layout[i])]
        return InfeasibleError(
            field,
            exp.model_name,
            f"does not fit in memory on {exp.system(role)}: the smallest footprint is "
            f"{mem.total[i]:.1f} GiB per GPU ({layout.label}, batch {int(table.candidates.batch[i])}; "
            f"weights {mem.weights[i]:.1f} GiB) of {capacity_gib:.1f} GiB; allow more GPUs per worker "
            f"(num_gpu_per_worker, tp/ep lists) or a smaller quant mode",
        )
    return InfeasibleError(
        field,
        exp.model_name,
        f"no {role} candidate can be priced from the {exp.backend_name} perf data on {exp.system(role)} "
        "(every layout hits unmeasured shapes)",
    )


def _layouts(exp, arch, role):
    from servopt.search.layouts import enumerate_layouts

    wc = exp.worker(role)
    return enumerate_layouts(
        is_moe=arch.is_moe,
        backend=exp.backend_name,
        num_gpu_per_worker=wc.num_gpu_per_worker,
        tp_list=wc.tp_list,
        pp_list=wc.pp_list,
        dp_list=wc.dp_list,
        moe_tp_list=wc.moe_tp_list,
        moe_ep_list=wc.moe_ep_list,
        num_experts=arch.num_experts or None,
        role=role,
    )


def _worker_table(exp, arch, role, dbs: _Databases):
    from servopt.evaluate.candidates import ModelSetup, Workload
    from servopt.evaluate.workers import worker_table

    db = dbs.get(exp.system(role), exp.backend_name, exp.backend_version)
    quant = _quant(arch, exp.worker(role), db, exp.backend_name)
    setup = ModelSetup(arch, exp.backend_name, quant, db.system, db.version, exp.config.nextn)
    tuning = exp.tuning
    corr = max_batch = None
    if tuning is not None:
        if role == "prefill":
            corr, max_batch = tuning.prefill_latency_correction_scale, tuning.prefill_max_batch_size
        elif role == "decode":
            corr, max_batch = tuning.decode_latency_correction_scale, tuning.decode_max_batch_size
        else:
            max_batch = tuning.decode_max_batch_size
    layouts = _layouts(exp, arch, role)
    if not layouts:
        raise InfeasibleError(f"{role}_worker_config", None, "no parallel layout of the lists is valid")
    table = worker_table(
        db,
        setup,
        layouts,
        role,
        Workload(exp.isl, exp.osl),
        accept_rates=exp.config.nextn_accept_rates,
        latency_correction=corr,
        max_batch_size=max_batch,
    )
    if len(table.options) == 0:
        raise _explain_empty(table, exp, role)
    return table, db.version


def _with_pair_key(table, backend: str):
    """SGLang needs equal prefill and decode TP (its KV transfer assumes matching shards)."""
    opts = table.options
    if backend != "sglang" or len(opts) == 0:
        return opts
    tp = table.layouts.column("tp")[table.candidates.layout[opts.row]]
    from servopt.search.options import WorkerOptions

    return WorkerOptions.from_arrays(
        gpus=opts.gpus,
        rate_per_s=opts.rate_per_s,
        ttft_ms=opts.ttft_ms,
        tpot_ms=opts.tpot_ms,
        concurrency=opts.concurrency,
        row=opts.row,
        pair_key=tp,
        name=table.role,
    )


def _replica_spec(exp):
    from servopt.search.options import ReplicaSpec

    rc = exp.replica
    if rc is None:
        return ReplicaSpec()
    return ReplicaSpec(
        num_gpu_per_replica=tuple(rc.num_gpu_per_replica) if rc.num_gpu_per_replica else None,
        max_gpu_per_replica=rc.max_gpu_per_replica,
        max_prefill_worker=rc.max_prefill_worker,
        max_decode_worker=rc.max_decode_worker,
    )


def _solve(exp, tables, max_replica_types, settings, frontier=True):
    from servopt.search.options import Sla
    from servopt.search.solve import solve_agg, solve_disagg

    sla = Sla(ttft_ms=exp.ttft, tpot_ms=exp.tpot)
    if exp.serving_mode == "agg":
        # The agg rate counts the osl - 1 generated tokens after the first (the peer's convention).
        return solve_agg(
            tables["agg"],
            sla=sla,
            total_gpus=exp.total_gpus,
            tokens_per_request=exp.osl - 1,
            max_replica_types=max_replica_types,
            settings=settings,
            frontier=frontier,
        )
    return solve_disagg(
        tables["prefill"],
        tables["decode"],
        sla=sla,
        total_gpus=exp.total_gpus,
        tokens_per_request=exp.osl,
        replica=_replica_spec(exp),
        max_replica_types=max_replica_types,
        settings=settings,
        frontier=frontier,
    )


def _top_rows(run: ExperimentRun, options: dict, top_n: int, settings) -> list[dict]:
    """The best deployment per parallel layout (agg) or per decode layout (disagg), best first."""
    group_role = "agg" if run.experiment.serving_mode == "agg" else "decode"
    table = run.tables[group_role]
    opts = options[group_role]
    layout_of = table.candidates.layout[opts.row]
    rows = []
    for lay in np.unique(layout_of):
        sub = dict(options)
        sub[group_role] = opts.take(np.flatnonzero(layout_of == lay))
        try:
            mode = _solve(run.experiment, sub, max_replica_types=1, settings=settings, frontier=False)
        except InfeasibleError:
            continue
        rows.append(run.row(mode.identical))
    rows.sort(key=lambda r: (-r["tokens_per_s_per_gpu"], r["tpot_ms"], r["total_gpus_used"]))
    for rank, row in enumerate(rows[:top_n], start=1):
        row["rank"] = rank
    return rows[:top_n]


def run_experiment(
    exp,
    dbs: _Databases,
    *,
    top_n: int,
    max_replica_types: int,
    settings=None,
    progress: Progress | None = None,
) -> ExperimentRun:
    from servopt.models.registry import resolve_model

    arch = resolve_model(exp.model_name)
    tables, versions, options = {}, {}, {}
    run = ExperimentRun(exp, arch, versions, tables, None, None)
    try:
        for i, role in enumerate(exp.roles):
            if progress:
                progress(f"{exp.name}: evaluating {role} candidates", i / (len(exp.roles) + 1))
            tables[role], versions[role] = _worker_table(exp, arch, role, dbs)
            db = dbs.get(exp.system(role), exp.backend_name, exp.backend_version)
            run.borrowed[role] = db.borrowed_tables
            warn_borrowed(db, arch)
            options[role] = _with_pair_key(tables[role], exp.backend_name)
        if progress:
            progress(f"{exp.name}: searching", len(exp.roles) / (len(exp.roles) + 1))
        run.mode = _solve(exp, options, max_replica_types, settings)
    except InfeasibleError as err:
        run.infeasible = str(err)
        return run
    run.top = _top_rows(run, options, top_n, settings)
    return run


def run_experiments(
    experiments: Sequence,
    *,
    progress: Progress | None = None,
    top_n: int = DEFAULT_TOP_N,
    max_replica_types: int = 2,
    perf_db: str | None = None,
    settings=None,
) -> RunResult:
    """Run every experiment; raise InfeasibleError (exit 1) when none of them can meet its targets."""
    dbs = _Databases(perf_db)
    runs = []
    for i, exp in enumerate(experiments):

        def sub_progress(stage: str, frac: float, i=i) -> None:
            if progress:
                progress(stage, (i + frac) / len(experiments))

        runs.append(
            run_experiment(
                exp,
                dbs,
                top_n=top_n,
                max_replica_types=max_replica_types,
                settings=settings,
                progress=sub_progress,
            )
        )
    if progress:
        progress("done", 1.0)
    result = RunResult(runs)
    if not result.feasible:
        reasons = "".join(f"\n  {r.name}: {r.infeasible}" for r in runs)
        raise InfeasibleError("experiments", None, f"no deployment meets the targets:{reasons}")
    return result


def size_load(question: dict) -> dict:
    """The web app's rate sizing: ``question`` holds ``sizing.question.sizing_doc``'s keywords (a
    load, percentile targets and the rest of the form); the answer is its JSON document."""
    from servopt.sizing.question import sizing_doc

    return sizing_doc(**question)
