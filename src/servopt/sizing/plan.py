"""Rate sizing of a model on a system: the fewest GPUs (or the least cost), aggregated or
disaggregated, that serve an offered rate within percentile targets (the engine behind
``cli default --request_rate``). Disagg decode pools may run on another system (``decode``)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from servopt.errors import InfeasibleError
from servopt.evaluate.candidates import ModelSetup
from servopt.models.parallel import default_agg_lists, default_disagg_lists, enumerate_layouts
from servopt.simulate.metrics import summary
from servopt.simulate.policy import engine_policy
from servopt.sizing.check import Offered, Targets
from servopt.sizing.minimize import Counters, Sized, Sizer
from servopt.sizing.options import adjust_options, pool_options, transfer_model


@dataclass
class SizingResult:
    best: Sized | None
    agg: Sized | None
    disagg: Sized | None
    counters: Counters
    offered: Offered
    targets: Targets
    dropped: list
    system: str = ""
    prices: dict[str, float] | None = None  # USD per GPU-hour by system (--gpu_hour_price)
    request_overhead_ms: float = 0.0  # the calibration's, in every simulation of an answer

    def to_json(self) -> dict:
        from servopt.simulate.engine import run
        from servopt.sizing import analytic
        from servopt.sizing.check import attainment, measured, served_rate
        from servopt.sizing.cost import cost

        req = self.offered.requests(self.targets)
        clients, lifetime = self.offered.clients, self.offered.lifetime_ms(self.targets)

        def one(s: Sized | None) -> dict | None:
            if s is None:
                return None
            raw = run(
                replace(s.deployment, request_overhead_ms=self.request_overhead_ms), req, clients=clients
            )
            m = measured(req, lifetime, raw, clients)
            att = attainment(raw, req, self.targets, lifetime, clients)
            flow = served_rate(raw, req, lifetime, self.offered.rate, clients)
            good = att * flow
            ttft = (raw.t_first - raw.t_arrive)[m]
            steps = (req.osl - 1)[m]
            tpot = ((raw.t_done - raw.t_first)[m] / (steps.clip(min=1)))[steps > 0]
            return {
                "mode": "disagg" if len(s.pools) == 2 else "agg",
                "total_gpus_used": s.gpus,
                "gpus_by_system": gpus_by_system(s),
                "workers": [
                    {
                        "option": o.label,
                        "role": o.kind.role,
                        "workers": w,
                        "gpus_per_worker": o.gpus,
                        "system": o.system or self.system,
                    }
                    for o, w in s.pools
                ],
                "simulated": {"ttft_ms": summary(ttft), "tpot_ms": summary(tpot)},
                "analytic": analytic.percentiles(
                    s, flow, req.isl, req.osl, self._arrival_ca2(), self.request_overhead_ms
                ),
                # The target with the least slack (simulated, at its percentile).
                "binding": "ttft"
                if s.verdict.ttft_ms / self.targets.ttft_ms >= s.verdict.tpot_ms / self.targets.tpot_ms
                else "tpot",
                "goodput": {
                    "attainment": att,
                    "requests_per_s": good,
                    "per_gpu": good / s.gpus,
                },
                "cost": None
                if self.prices is None
                else cost(gpus_by_system(s), self.prices, flow * float(req.osl.mean())),
                "at_targets": {
                    f"ttft_p{self.targets.ttft_percentile:g}_ms": s.verdict.ttft_ms,
                    f"tpot_p{self.targets.tpot_percentile:g}_ms": s.verdict.tpot_ms,
                },
            }

        def gpus_by_system(s: Sized) -> dict[str, int]:
            out: dict[str, int] = {}
            for o, w in s.pools:
                out[o.system or self.system] = out.get(o.system or self.system, 0) + w * o.gpus
            return out

        # The best answer is the agg or the disagg one: simulate each deployment once.
        per_mode = {id(s): one(s) for s in (self.agg, self.disagg) if s is not None}
        best = per_mode[id(self.best)] if id(self.best) in per_mode else one(self.best)
        return {
            "load": {
                "kind": "closed_loop" if self.offered.closed else "open_loop",
                "request_rate": self.offered.rate,
                "concurrency": self.offered.concurrency,
                "arrival": None if self.offered.closed else self.offered.arrival,
                "isl": self.offered.lengths.isl,
                "osl": self.offered.lengths.osl,
                "num_requests_simulated": self.offered.count(self.targets),
                "seed": self.offered.seed,
            },
            "targets": vars(self.targets),
            "best": best,
            "agg": per_mode.get(id(self.agg)),
            "disagg": per_mode.get(id(self.disagg)),
            "search": {
                "simulations": self.counters.simulations,
                "verification_failures": self.counters.verification_failures,
                "options_pruned": self.counters.options_pruned,
            },
        }

    def _arrival_ca2(self) -> float:
        """Squared CV of the arrival gaps (a closed loop of many clients is near Poisson)."""
        o = self.offered
        if o.closed or o.arrival == "poisson":
            return 1.0
        return 0.0 if o.arrival == "constant" else o.arrival_cv**2


OBJECTIVES = ("min_gpus", "max_goodput_per_gpu", "min_cost")


def size_for_rate(
    db,
    setup: ModelSetup,
    offered: Offered,
    targets: Targets,
    *,
    total_gpus: int,
    modes=("agg", "disagg"),
    objective: str = "min_gpus",
    prices: dict[str, float] | None = None,
    decode: tuple | None = None,
    adjustments=None,
    decode_adjustments=None,
) -> SizingResult:
    """``min_gpus``: the fewest GPUs (<= ``total_gpus``) serving ``offered`` within ``targets``;
    ``min_cost``: the same with the least USD/hour at ``prices`` (every system used needs one);
    ``max_goodput_per_gpu``: the stable deployment within ``total_gpus`` with the most requests/s
    meeting both targets per GPU (open loop only). Per mode and best. ``decode``: (db, setup) of
    the system disagg decode pools run on (prefill and agg stay on ``setup``'s).

    ``adjustments`` (a calibration profile's, ``simulate.adjust``; None = the raw model) apply as
    ``cli simulate`` applies them: every worker's step tables and iteration overhead, and the
    request overhead of every verification run. Decode pools on the decode system take
    ``decode_adjustments`` (that system's scope); the request overhead is the front end's, on
    ``setup``'s system. Saturation runs leave the request overhead out: it delays clients, not
    engines, so the stability bound stays optimistic."""
    from servopt.sizing.cost import price_units

    goodput = objective == "max_goodput_per_gpu"
    arch, backend = setup.arch, setup.backend
    decode_db, decode_setup = decode if decode is not None else (db, setup)
    policy = engine_policy(backend, setup.system.gpu.mem_capacity_bytes)
    unit_cost = None
    if objective == "min_cost":
        units = {
            name: price_units(prices or {}, name) for name in {setup.system.name, decode_setup.system.name}
        }
        unit_cost = lambda o: o.gpus * units[o.system]  # noqa: E731
    req = offered.requests(targets)
    common = dict(max_isl=int(req.isl.max()), max_osl=int(req.osl.max()), prompt_lengths=req.isl)
    dropped: list = []
    agg_options: list = []
    per_role: dict = {"prefill": [], "decode": []}
    if "agg" in modes:
        lists = default_agg_lists(is_moe=arch.is_moe, backend=backend, system=setup.system.name)
        agg_options, lost = pool_options(
            db, setup, "agg", _layouts(setup, lists, "agg", total_gpus), policy, **common
        )
        dropped += lost
    if "disagg" in modes:
        p_lists, d_lists = default_disagg_lists(
            is_moe=arch.is_moe,
            backend=backend,
            prefill_system=setup.system.name,
            decode_system=decode_setup.system.name,
        )
        decode_policy = engine_policy(backend, decode_setup.system.gpu.mem_capacity_bytes)
        for role, lists, role_db, role_setup, role_policy in (
            ("prefill", p_lists, db, setup, policy),
            ("decode", d_lists, decode_db, decode_setup, decode_policy),
        ):
            layouts = _layouts(role_setup, lists, role, total_gpus)
            per_role[role], lost = pool_options(role_db, role_setup, role, layouts, role_policy, **common)
            dropped += lost
    if adjustments is not None:
        agg_options = adjust_options(agg_options, adjustments)
        decode_adj = (
            decode_adjustments if decode is not None and decode_adjustments is not None else adjustments
        )
        per_role = {
            "prefill": adjust_options(per_role["prefill"], adjustments),
            "decode": adjust_options(per_role["decode"], decode_adj),
        }
    overhead_ms = 0.0 if adjustments is None else adjustments.request_overhead_ms
    # The two modes' searches share nothing (each its own options, saturation runs and counters),
    # and the simulator releases the GIL: they run side by side, one Sizer each.
    agg_sizer, disagg_sizer = (
        Sizer(
            offered,
            targets,
            budget=total_gpus,
            transfer=transfer_model(setup, decode_setup),
            unit_cost=unit_cost,
            request_overhead_ms=overhead_ms,
        )
        for _ in range(2)
    )

    def search_agg() -> Sized | None:
        if "agg" not in modes:
            return None
        return agg_sizer.max_goodput(agg_options, [], []) if goodput else agg_sizer.size_agg(agg_options)

    def search_disagg() -> Sized | None:
        if not (per_role["prefill"] and per_role["decode"]):
            return None
        if goodput:
            return disagg_sizer.max_goodput([], per_role["prefill"], per_role["decode"])
        return disagg_sizer.size_disagg(per_role["prefill"], per_role["decode"])

    with ThreadPoolExecutor(max_workers=2) as pool:
        agg_job, disagg_job = pool.submit(search_agg), pool.submit(search_disagg)
        agg, disagg = agg_job.result(), disagg_job.result()
    counters = Counters(
        *(getattr(agg_sizer.counters, f) + getattr(disagg_sizer.counters, f) for f in vars(Counters()))
    )
    found = [s for s in (agg, disagg) if s is not None]
    if goodput:
        best = max(found, key=lambda s: (s.goodput_per_gpu, -s.gpus), default=None)
    else:
        best = min(found, key=agg_sizer.objective, default=None)  # GPUs, or cost units
    if best is None and goodput:
        raise InfeasibleError(
            "request_rate",
            offered.rate,
            f"no stable deployment within {total_gpus} GPUs serves any request within TTFT <= "
            f"{targets.ttft_ms:g} ms and TPOT <= {targets.tpot_ms:g} ms",
        )
    if best is None and offered.closed:
        raise InfeasibleError(
            "concurrency",
            offered.concurrency,
            f"no deployment within {total_gpus} GPUs serves that many clients at "
            f"p{targets.ttft_percentile:g} TTFT <= {targets.ttft_ms:g} ms and "
            f"p{targets.tpot_percentile:g} TPOT <= {targets.tpot_ms:g} ms",
        )
    if best is None:
        # The most any agg deployment in the budget could complete (its throughput, at no latency
        # target): the rate to lower towards, an upper bound on what the targets allow.
        ceiling = max(((total_gpus // o.gpus) * agg_sizer.saturation(o) for o in agg_options), default=0.0)
        hint = (
            f"; at most {ceiling:.1f} req/s fit {total_gpus} GPUs even without latency targets"
            if ceiling
            else ""
        )
        raise InfeasibleError(
            "request_rate",
            offered.rate,
            f"no deployment within {total_gpus} GPUs serves it at p{targets.ttft_percentile:g} TTFT <= "
            f"{targets.ttft_ms:g} ms and p{targets.tpot_percentile:g} TPOT <= {targets.tpot_ms:g} ms{hint}",
        )
    return SizingResult(
        best, agg, disagg, counters, offered, targets, dropped, setup.system.name, prices, overhead_ms
    )


def _layouts(setup: ModelSetup, lists, role: str, total_gpus: int):
    """The role's default layouts (the search's lists) that fit the GPU budget."""
    arch = setup.arch
    return [
        lay
        for lay in enumerate_layouts(
            is_moe=arch.is_moe,
            backend=setup.backend,
            num_gpu_per_worker=lists.num_gpu_per_worker,
            tp_list=lists.tp_list,
            pp_list=lists.pp_list,
            dp_list=lists.dp_list,
            moe_tp_list=lists.moe_tp_list,
            moe_ep_list=lists.moe_ep_list,
            num_experts=arch.num_experts,
            role=role,
        )
        if lay.gpus <= total_gpus
    ]
