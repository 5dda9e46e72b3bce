"""One run: experiments -> perf databases -> worker tables -> exact search -> results.

This is the single implementation behind ``cli default``, ``cli exp`` and the web app. Per
experiment it opens the perf database of each role's system, enumerates the parallel layouts of
the worker config, evaluates every (layout, batch [, ctx tokens]) candidate in batched calls,
applies the experiment's calibration profile to those figures (``calibration:`` key or
``--calibration``; none = the raw model), and hands the option tables to the CP-SAT search. The
winner across experiments is the one whose identical-replica deployment gives the most tokens/s
per GPU of the budget (the peer's rule); the packed deployment (up to K replica shapes) is
reported beside it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

import numpy as np

from servopt.calibrate.model import resolve_calibration, worker_adjustments
from servopt.config.schema import Experiment
from servopt.error_bands import pessimistic_factors
from servopt.errors import InfeasibleError, ServoptError
from servopt.evaluate.calibration import at_pessimistic_end
from servopt.evaluate.candidates import ModelSetup, Workload
from servopt.evaluate.single import quant_modes
from servopt.evaluate.workers import WorkerTable, worker_table
from servopt.models.arch import ModelArch
from servopt.models.parallel import Layout, enumerate_layouts
from servopt.models.registry import resolve_model
from servopt.perf_db.database import PerfDatabase, open_database

# The web app's pipeline API (webapp/settings.py names this module): run_experiments here, and the
# documents report builds from its result.
from servopt.report.document import result_document
from servopt.report.files import deployment_files, packed_deployment_files
from servopt.run_result import ExperimentRun, RunResult
from servopt.search.conventions import DEFAULT_CONVENTIONS
from servopt.search.options import ReplicaSpec, Sla, WorkerOptions
from servopt.search.result import Deployment, ModeResult
from servopt.search.settings import SolverSettings
from servopt.search.solve import solve_agg, solve_disagg

__all__ = [
    "DEFAULT_TOP_N",
    "ExperimentRun",
    "RunResult",
    "deployment_files",
    "packed_deployment_files",
    "result_document",
    "run_experiment",
    "run_experiments",
]

log = logging.getLogger(__name__)

Progress = Callable[[str, float], None]

# Default number of configurations listed per serving mode (the peer's --top_n default).
DEFAULT_TOP_N = 5


class _Databases:
    """Perf databases opened once per run, keyed by (system, backend, version)."""

    def __init__(self, cache_dir: str | None):
        self.cache_dir = cache_dir
        self._open: dict[tuple, PerfDatabase] = {}

    def get(self, system: str, backend: str, version: str | None) -> PerfDatabase:
        key = (system, backend, version)
        if key not in self._open:
            self._open[key] = open_database(system, backend, version, cache_dir=self.cache_dir)
        return self._open[key]


_BORROWED_SAID: set[tuple] = set()


def table_serves(arch: ModelArch, table: str) -> bool:
    """Whether a measured table can price this model: MoE tables (experts, all-to-all, wide EP)
    only MoE models, MLA tables only MLA models; the rest (GEMM, attention, collectives) any."""
    if any(word in table for word in ("moe", "deepep", "wideep")) and not arch.is_moe:
        return False
    return "mla" not in table or arch.family == "mla_moe"


def warn_borrowed(db: PerfDatabase, arch: ModelArch) -> None:
    """One WARNING line per database, model family and process naming the borrowed tables this
    model can use (a dense model is not told about borrowed MoE tables)."""
    said = (db.system_name, db.backend, db.version, arch.is_moe, arch.family)
    summary = db.borrowed_summary(lambda table: table_serves(arch, table))
    if summary and said not in _BORROWED_SAID:
        _BORROWED_SAID.add(said)
        log.warning("%s", summary)


def _quant(arch: ModelArch, wc, db: PerfDatabase, backend: str):
    """The worker's quant modes; an fp8 FMHA the data cannot price falls back to bf16 (as the peer)."""
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


def _explain_empty(table: WorkerTable, exp: Experiment, role: str) -> InfeasibleError:
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


def _layouts(exp: Experiment, arch: ModelArch, role: str) -> list[Layout]:
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
        cp_list=wc.cp_list,
    )


def _worker_table(
    exp: Experiment, arch: ModelArch, role: str, dbs: _Databases, adjustments=None
) -> tuple[WorkerTable, str]:
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
        adjustments=adjustments,
    )
    if len(table.options) == 0:
        raise _explain_empty(table, exp, role)
    return table, db.version


def _with_pair_key(table: WorkerTable, backend: str) -> WorkerOptions:
    """SGLang needs equal prefill and decode TP (its KV transfer assumes matching shards)."""
    opts = table.options
    if backend != "sglang" or len(opts) == 0:
        return opts
    tp = table.layouts.column("tp")[table.candidates.layout[opts.row]]
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


def _request_overhead_outside_ttft_factor(opts: WorkerOptions, adj) -> WorkerOptions:
    """Prefill options whose disaggregated TTFT is ``factor * engine + request_overhead``.

    The peer's disaggregated TTFT factor (``search.conventions``, 1.8) corrects the prefill
    engine's latency for queueing; a calibration's request overhead is the client's trip to that
    queue, not engine time, so it is not multiplied: the options enter the search at
    ``engine + overhead / factor`` (the worker table keeps ``engine + overhead``, as cli estimate)."""
    if adj is None or adj.request_overhead_ms == 0.0 or len(opts) == 0:
        return opts
    shift = adj.request_overhead_ms * (1.0 - 1.0 / DEFAULT_CONVENTIONS.disagg_ttft_factor)
    return dataclasses.replace(opts, ttft_ms=opts.ttft_ms - shift)


def _replica_spec(exp: Experiment) -> ReplicaSpec:
    rc = exp.replica
    if rc is None:
        return ReplicaSpec()
    return ReplicaSpec(
        num_gpu_per_replica=tuple(rc.num_gpu_per_replica) if rc.num_gpu_per_replica else None,
        max_gpu_per_replica=rc.max_gpu_per_replica,
        max_prefill_worker=rc.max_prefill_worker,
        max_decode_worker=rc.max_decode_worker,
    )


def _solve(
    exp: Experiment,
    tables: dict[str, WorkerOptions],
    max_replica_types: int,
    settings: SolverSettings | None,
    frontier: bool = True,
) -> ModeResult:
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


def _top(
    run: ExperimentRun, options: dict[str, WorkerOptions], top_n: int, settings: SolverSettings | None
) -> list[Deployment]:
    """The best identical deployment per parallel layout (agg) or per decode layout (disagg), best
    first (tokens/s/GPU, then TPOT, then GPUs used), at most ``top_n``."""
    group_role = "agg" if run.experiment.serving_mode == "agg" else "decode"
    table = run.tables[group_role]
    opts = options[group_role]
    layout_of = table.candidates.layout[opts.row]
    best = []
    for lay in np.unique(layout_of):
        sub = dict(options)
        sub[group_role] = opts.take(np.flatnonzero(layout_of == lay))
        try:
            mode = _solve(run.experiment, sub, max_replica_types=1, settings=settings, frontier=False)
        except InfeasibleError:
            continue
        best.append(mode.identical)
    best.sort(key=lambda d: (-d.tokens_per_s_per_gpu, d.tpot_ms, d.gpus_used))
    return best[:top_n]


def run_experiment(
    exp: Experiment,
    dbs: _Databases,
    *,
    top_n: int,
    max_replica_types: int,
    settings: SolverSettings | None = None,
    progress: Progress | None = None,
) -> ExperimentRun:
    arch = resolve_model(exp.model_name)
    tables, versions, options = {}, {}, {}
    run = ExperimentRun(exp, arch, versions, tables, None, None)
    # The calibration profile's adjustments, per worker from its own (backend, system) scope; the
    # search then meets its targets on calibrated figures (servopt.evaluate.calibration).
    profile = resolve_calibration(exp.calibration)
    adjustments, run.calibration = worker_adjustments(
        profile, exp.backend_name, {role: exp.system(role) for role in exp.roles}
    )
    try:
        for i, role in enumerate(exp.roles):
            if progress:
                progress(f"{exp.name}: evaluating {role} candidates", i / (len(exp.roles) + 1))
            tables[role], versions[role] = _worker_table(exp, arch, role, dbs, adjustments[role])
            db = dbs.get(exp.system(role), exp.backend_name, exp.backend_version)
            run.borrowed[role] = db.borrowed_tables
            warn_borrowed(db, arch)
            options[role] = _with_pair_key(tables[role], exp.backend_name)
            if role == "prefill":
                options[role] = _request_overhead_outside_ttft_factor(options[role], adjustments[role])
        if progress:
            progress(f"{exp.name}: searching", len(exp.roles) / (len(exp.roles) + 1))
        options, other = _band_ends(run, profile, options)
    except InfeasibleError as err:
        run.infeasible = str(err)
        return run
    if other is not None:
        # The selection redone on the same candidates at the band's other end (no frontier, no
        # top table: the robustness report needs its identical and packed answers only).
        try:
            run.other = _solve(exp, other, max_replica_types, settings, frontier=False)
        except InfeasibleError as err:
            run.other_infeasible = str(err)
    try:
        run.mode = _solve(exp, options, max_replica_types, settings)
    except InfeasibleError as err:
        run.infeasible = str(err)
        return run
    run.top = _top(run, options, top_n, settings)
    return run


def _band_ends(run: ExperimentRun, profile, options: dict[str, WorkerOptions]):
    """(the options the run plans on, those of the band's other end or None without bands).

    The pessimistic end multiplies every candidate of the backend by one factor per figure
    (servopt.evaluate.calibration.at_pessimistic_end); ``robust: true`` plans on it. The bands are
    the serving mode's (a disagg experiment's from the held-out disaggregated records, where the
    profile has them): its prefill workers' TTFT, decode workers' TPOT and every worker's rate (so
    the deployment's) take the disagg factors, an agg experiment's the agg ones."""
    exp = run.experiment
    bands = profile.bands_for(exp.serving_mode) if profile is not None else {}
    factors = pessimistic_factors(bands, exp.backend_name)
    if factors is None:
        if exp.robust:
            raise ServoptError(
                f"{exp.name}: robust",
                True,
                f"needs a calibration profile with error bands (calibration: {exp.calibration})",
            )
        return options, None
    run.factors = factors
    run.bands = bands
    pessimistic = {role: at_pessimistic_end(o, factors) for role, o in options.items()}
    if exp.robust:
        run.planned_at = "pessimistic"
        return pessimistic, options
    return options, pessimistic


def run_experiments(
    experiments: Sequence[Experiment],
    *,
    progress: Progress | None = None,
    top_n: int = DEFAULT_TOP_N,
    max_replica_types: int = 2,
    perf_db: str | None = None,
    settings: SolverSettings | None = None,
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
        where = (
            " at the pessimistic end of the 80% band (robust)" if any(e.robust for e in experiments) else ""
        )
        raise InfeasibleError("experiments", None, f"no deployment meets the targets{where}:{reasons}")
    return result


def size_load(question: dict) -> dict:
    """The web app's rate sizing: ``question`` holds ``sizing.question.sizing_doc``'s keywords (a
    load, percentile targets and the rest of the form); the answer is its JSON document."""
    from servopt.calibrate.model import calibrated_question
    from servopt.sizing.question import sizing_doc

    question = dict(question)
    calibration = question.pop("calibration", "default")
    return sizing_doc(**calibrated_question(question, calibration))
