"""CP-SAT composition model: replica shapes, replica counts and the budget in one model.

The "cpsat" engine (``SolverSettings(composition="cpsat")``). Where the "menu" engine finds the
best replica per size by enumeration and lets CP-SAT only pack (``xpyd_model``), this model also
chooses every replica's composition. For each replica type k < K:

- prefill option: one-hot a_ki over the pruned prefill options, x_k = sum_i n_ki workers with
  a_ki <= n_ki <= X_i a_ki;
- decode option: one-hot b_kj, y_k = sum_j m_kj likewise;
- size g_k = sum_i gP_i n_ki + sum_j gD_j m_kj = sum_s s z_ks, one-hot z_ks over allowed sizes;
- rate r_k <= sum_i pu_i n_ki and r_k <= sum_j du_j m_kj (prefill and decode rates, degradations
  folded into ``encode``'s integer units), so r_k = min(prefill, decode) at the optimum;
- count c_k; budget sum_k c_k g_k <= G; objective sum_k c_k r_k.

Aggregated serving is the same model with no prefill pool and one agg worker per replica.

Products of two variables are linearised exactly: c_k g_k through per-size counts
c_ks <= floor(G/s) z_ks (the budget becomes linear), c_k r_k through the binary digits of c_k
(``PRODUCT``). Identical deployments (the peer's shape: K = 1, c = floor(G/g)) need neither: their
value is sum_s floor(G/s) w_s with w_s = r z_s.

tokens/s per GPU of the cluster is ``tokens_per_request * sum_k c_k r_k / G`` with G the fixed
budget (idle GPUs count), so maximising the ratio is maximising its numerator: exact with no
Dinkelbach loop. Ties are broken in the order of ``xpyd_model`` (value, lowest TPOT level, fewest
GPUs), but differently: GPUs in the objective, the level by re-solving below it (``solve``).

One model serves a whole TPOT sweep: the cap is the upper bound of the TPOT-level variable and
the per-size rate bounds (``rate_bounds``) are cut coefficients, both edited in place per solve.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ortools.sat.python import cp_model

from servopt.search import cpsat
from servopt.search.compose_problem import Choice, ComposeProblem
from servopt.search.compose_slots import Slot, Slots, hint_values, read_choice
from servopt.search.encode import MAX_OBJECTIVE_UNITS
from servopt.search.rate_bounds import size_rate_bounds
from servopt.search.result import Counters
from servopt.search.settings import SolverSettings

# How c_k * r_k becomes linear: "binary" writes c_k in binary digits and bounds each digit's
# share of the value by r_k and by R * digit; "multiplication" hands CP-SAT the product
# (add_multiplication_equality). Both exact. Measured over the bench tables (agg + disagg at
# 8..16384 GPUs, one worker): binary 0.91 s deterministic time (9.7 s wall), multiplication 2.8 s
# (19.5 s wall); without the per-size bounds both stall (FEASIBLE at 10 s on one packed solve).
PRODUCT = "binary"

# CP-SAT parameters per deployment shape, applied before SolverSettings (whose params override
# them). Measured on the bench tables and a no-size-list table (1 worker), first without warm
# starts from the menu engine: probing off takes an identical solve from 60 to 10 ms; LP-guided
# branching keeps an unhinted packed solve at 1 s where the default search was FEASIBLE after
# 20 s; the fuller LP (level 2) halves packed and identical times. The LB-tree search proves
# packed optima that otherwise stayed FEASIBLE for 10 s (G = 512: 7 hard frontier caps, 33 s ->
# 2 s) but makes identical solves up to 10x slower (agg), so only packed models use it. With
# menu warm starts the same set stays best: bench suite 4.3 s (+ packed frontiers 10.3 s) against
# 11.1 s (21.6 s) with CP-SAT's defaults; without the LB tree, packed frontiers miss proofs.
ENGINE_PARAMS = {
    "identical": "cp_model_probing_level: 0 search_branching: LP_SEARCH linearization_level: 2",
    "packed": "cp_model_probing_level: 0 search_branching: LP_SEARCH linearization_level: 2 "
    "optimize_with_lb_tree_search: true",
}

# Fold the GPU tie-break into the objective when its largest value stays below this: CP-SAT
# works in int64 but reports objectives as doubles, exact below 2**53 (as ``xpyd_model``).
FOLD_LIMIT = MAX_OBJECTIVE_UNITS


class ComposeModel:
    """Builder for max sum_k c_k r_k over composed replicas, one ``_add_*`` method per group."""

    def __init__(
        self, problem: ComposeProblem, *, max_types: int, identical: bool, product: str | None = None
    ):
        self.p = problem
        self.identical = identical
        self.max_types = 1 if identical else max_types
        self.product = product or PRODUCT
        if self.product not in ("binary", "multiplication"):
            raise ValueError(f"product linearisation {self.product!r} (allowed: binary, multiplication)")
        self.model = cpsat.Model()
        self.reports: list[cpsat.SolveReport] = []
        self.sizes = problem.reachable_sizes()
        self.empty = problem.empty or self.sizes.size == 0
        if self.empty:
            return
        self._bounds_at: dict[int, np.ndarray] = {}
        self._at: dict[int, tuple[Choice | None, bool]] = {}  # solved caps: answer, proven optimal
        self.proven = True  # the last solve's answer is proven optimal
        self._setup_caps()
        self.K = range(self.max_types)
        self._add_type_slots()
        self._add_prefill_choice()
        self._add_decode_choice()
        self._add_ttft()
        self._add_pairing()
        self._add_pool_caps()
        self._add_replica_size()
        self._add_size_order()
        self._add_tpot_level()
        self._add_replica_rate()
        self._add_replica_counts()
        self._add_gpu_budget()
        self._add_throughput()
        self._add_size_rate_bounds()
        self._floor = self.model.add(self.value >= 0)  # raised to the optimum by the tie-break
        self.slots = Slots(
            problem=problem,
            identical=identical,
            sizes=self.sizes,
            copies=self._copies,
            types=tuple(self._slot(k) for k in self.K),
            tpot_level=self.tpot_level.index,
            variables=len(self.model.proto.variables),
        )

    def _setup_caps(self) -> None:
        """Variable bounds: worker caps per option, copies per size, replica rate, total value."""
        p, top = self.p, int(self.sizes[-1])

        def workers(gpus, most, pool_cap, other_gpus):
            room = top - (int(other_gpus.min()) if other_gpus.size else 0)
            cap = np.minimum(most, room // gpus)
            return np.maximum(np.minimum(cap, pool_cap // gpus) if pool_cap else cap, 0).astype(np.int64)

        self._x_cap = workers(p.p_gpus, p.max_x, p.max_p_pool, p.d_gpus)
        self._y_cap = workers(p.d_gpus, p.max_y, p.max_d_pool, p.p_gpus)
        self._copies = p.total_gpus // self.sizes  # floor(G/s): most replicas of size s
        self._rate_cap = max(int(self.size_bounds(p.n_levels - 1).max(initial=0)), 1)
        self._value_cap = max(p.value_bound(), 1)

    # use_0 = 1 >= use_1 >= ... : at least one and at most K replica types, used ones first.
    def _add_type_slots(self) -> None:
        m = self.model
        self.use = [m.new_bool_var(f"use_{k}") for k in self.K]
        m.add(self.use[0] == 1)
        for k in self.K[1:]:
            m.add_implication(self.use[k], self.use[k - 1])

    # sum_i a_ki = use_k; a_ki <= n_ki <= X_i a_ki; x_k = sum_i n_ki (agg: no prefill pool).
    def _add_prefill_choice(self) -> None:
        self.a, self.n, self.x = [], [], []
        if not self.p.agg:
            for k in self.K:
                a, n, x = self._one_hot_counts(f"{k}_p", self._x_cap, self.use[k], self.p.max_x)
                self.a.append(a)
                self.n.append(n)
                self.x.append(x)

    # sum_j b_kj = use_k; b_kj <= m_kj <= Y_j b_kj; y_k = sum_j m_kj (agg: m_kj = b_kj, y_k = use_k).
    def _add_decode_choice(self) -> None:
        self.b, self.m, self.y = [], [], []
        for k in self.K:
            b, cnt, y = self._one_hot_counts(f"{k}_d", self._y_cap, self.use[k], self.p.max_y)
            self.b.append(b)
            self.m.append(cnt)
            self.y.append(y)

    def _one_hot_counts(self, name, caps, use, most):
        m = self.model
        pick = [m.new_bool_var(f"pick_{name}_{i}") for i in range(caps.size)]
        m.add(sum(pick) == use)
        if self.p.agg:
            count = pick  # one agg worker per replica
        else:
            count = [m.new_int_var(0, int(c), f"n_{name}_{i}") for i, c in enumerate(caps)]
            for b, n, c in zip(pick, count, caps.tolist(), strict=True):
                m.add(n <= c * b)
                m.add(n >= b)
        total = m.new_int_var(0, most, f"workers_{name}")
        m.add(total == sum(count))
        return pick, count, total

    # TTFT <= target: a_ki = 0 (agg: b_kj = 0) for options whose TTFT misses it.
    def _add_ttft(self) -> None:
        pool, ok = (self.b, self.p.d_ttft_ok) if self.p.agg else (self.a, self.p.p_ttft_ok)
        for i in np.flatnonzero(~ok).tolist():
            for k in self.K:
                self.model.add(pool[k][i] == 0)

    # Prefill key q >= 0 excludes decode keys q' >= 0, q' != q: sum_{key q} a_ki + sum_{key q'} b_kj <= 1.
    def _add_pairing(self) -> None:
        p = self.p
        if p.agg:
            return
        for q in sorted(set(p.p_key[p.p_key >= 0].tolist())):
            clash = np.flatnonzero((p.d_key >= 0) & (p.d_key != q)).tolist()
            mine = np.flatnonzero(p.p_key == q).tolist()
            for k in self.K if clash else ():
                self.model.add(sum(self.a[k][i] for i in mine) + sum(self.b[k][j] for j in clash) <= 1)

    # sum_i gP_i n_ki <= max prefill GPUs and sum_j gD_j m_kj <= max decode GPUs (0: no cap).
    def _add_pool_caps(self) -> None:
        p, wsum = self.p, cp_model.LinearExpr.weighted_sum
        self.p_pool = [wsum(n, p.p_gpus.tolist()) for n in self.n] or [0] * len(self.K)
        self.d_pool = [wsum(c, p.d_gpus.tolist()) for c in self.m]
        for k in self.K if not p.agg else ():
            if p.max_p_pool:
                self.model.add(self.p_pool[k] <= p.max_p_pool)
            if p.max_d_pool:
                self.model.add(self.d_pool[k] <= p.max_d_pool)

    # g_k = prefill GPUs + decode GPUs = sum_s s z_ks, sum_s z_ks = use_k: g_k in the allowed sizes.
    def _add_replica_size(self) -> None:
        m, sizes = self.model, self.sizes.tolist()
        domain = cp_model.Domain.from_values([0, *sizes])
        self.z, self.g = [], []
        for k in self.K:
            z = [m.new_bool_var(f"z_{k}_{s}") for s in sizes]
            m.add(sum(z) == self.use[k])
            g = m.new_int_var(0, sizes[-1], f"g_{k}")
            m.add(g == self.p_pool[k] + self.d_pool[k])
            m.add(g == cp_model.LinearExpr.weighted_sum(z, sizes))
            m.add_linear_expression_in_domain(g, domain)
            self.z.append(z)
            self.g.append(g)

    # g_{k+1} >= g_k + 1 when type k+1 is used: types are distinct sizes, ascending.
    def _add_size_order(self) -> None:
        # Exact: two types of one size are never both needed (the better one replaces the other
        # on the same GPUs at >= rate and <= TPOT), and the order of types is arbitrary.
        for k in self.K[1:]:
            self.model.add(self.g[k] >= self.g[k - 1] + 1).only_enforce_if(self.use[k])

    # T >= sum_j lvl_j b_kj for every type; T <= cap (edited in place per solve).
    def _add_tpot_level(self) -> None:
        m, p = self.model, self.p
        self.tpot_level = m.new_int_var(0, max(p.n_levels - 1, 0), "tpot_level")
        for k in self.K:
            m.add(self.tpot_level >= cp_model.LinearExpr.weighted_sum(self.b[k], p.d_level.tolist()))

    # use_k <= r_k <= sum_i pu_i n_ki and r_k <= sum_j du_j m_kj.
    def _add_replica_rate(self) -> None:
        m, p, wsum = self.model, self.p, cp_model.LinearExpr.weighted_sum
        self.r = []
        for k in self.K:
            r = m.new_int_var(0, self._rate_cap, f"r_{k}")
            m.add(r >= self.use[k])  # a replica must serve: units > 0, as in the menu and oracle
            m.add(r <= wsum(self.m[k], p.d_units.tolist()))
            if not p.agg:
                m.add(r <= wsum(self.n[k], p.p_units.tolist()))
            self.r.append(r)

    # Packed: z_ks <= c_ks <= floor(G/s) z_ks, c_k = sum_s c_ks. Identical: c = sum_s floor(G/s) z_s.
    def _add_replica_counts(self) -> None:
        m, copies = self.model, self._copies.tolist()
        self.cs, self.c = [], []
        if self.identical:
            return
        for k in self.K:
            cs = [m.new_int_var(0, n, f"c_{k}_{s}") for n, s in zip(copies, self.sizes.tolist(), strict=True)]
            for ci, zi, n in zip(cs, self.z[k], copies, strict=True):
                m.add(ci <= n * zi)
                m.add(ci >= zi)
            c = m.new_int_var(0, max(copies), f"c_{k}")
            m.add(c == sum(cs))
            self.cs.append(cs)
            self.c.append(c)

    # sum_k sum_s s c_ks <= G (identical: floor(G/s) s <= G holds for every size).
    def _add_gpu_budget(self) -> None:
        wsum = cp_model.LinearExpr.weighted_sum
        if self.identical:
            self.gpus_used = wsum(self.z[0], (self._copies * self.sizes).tolist())
            return
        self.gpus_used = sum(wsum(cs, self.sizes.tolist()) for cs in self.cs)
        self.model.add(self.gpus_used <= self.p.total_gpus)

    # V = sum_k v_k, v_k = c_k r_k exactly (identical: v = sum_s floor(G/s) w_s, w_s <= r, w_s <= R z_s).
    def _add_throughput(self) -> None:
        m, R, wsum = self.model, self._rate_cap, cp_model.LinearExpr.weighted_sum
        self.v = [m.new_int_var(0, self._value_cap, f"v_{k}") for k in self.K]
        self.value = sum(self.v)
        self.bits, self.w = [], []
        if self.identical:
            w = [m.new_int_var(0, R, f"w_{s}") for s in self.sizes.tolist()]
            for wi, zi in zip(w, self.z[0], strict=True):
                m.add(wi <= self.r[0])
                m.add(wi <= R * zi)
            m.add(self.v[0] == wsum(w, self._copies.tolist()))
            self.w.append(w)
            return
        digits = [1 << d for d in range(int(self._copies.max()).bit_length())]
        for k in self.K:
            if self.product == "multiplication":
                m.add_multiplication_equality(self.v[k], self.c[k], self.r[k])
                continue
            # c_k = sum_d 2^d bit_kd; digit d adds 2^d w_kd with w_kd <= r_k and w_kd <= R bit_kd.
            bits = [m.new_bool_var(f"bit_{k}_{d}") for d in range(len(digits))]
            w = [m.new_int_var(0, R, f"w_{k}_{d}") for d in range(len(digits))]
            m.add(self.c[k] == wsum(bits, digits))
            for wd, bd in zip(w, bits, strict=True):
                m.add(wd <= self.r[k])
                m.add(wd <= R * bd)
            m.add(self.v[k] == wsum(w, digits))
            self.bits.append(bits)
            self.w.append(w)

    # r_k <= sum_s B_s z_ks and V <= sum_k sum_s B_s c_ks, B_s(cap) from ``rate_bounds``.
    def _add_size_rate_bounds(self) -> None:
        # Redundant cuts, but the ones that make the LP bound useful: the products above relax to
        # nearly nothing, and fractional worker counts hide what each size loses to whole workers.
        # B depends on the TPOT cap: ``solve`` writes it into these rows' coefficients.
        m, S = self.model, self.sizes.size
        self._bound_rows = []
        for k in self.K:
            ct = m.add(self.r[k] - sum(self.z[k]) <= 0)
            self._bound_rows.append((ct, m.positions(ct, self.z[k]), np.ones(S, dtype=np.int64)))
        counts = self.z[0] if self.identical else [c for cs in self.cs for c in cs]
        scale = self._copies if self.identical else np.ones(len(counts), dtype=np.int64)
        ct = m.add(self.value - sum(counts) <= 0)
        self._bound_rows.append((ct, m.positions(ct, counts), scale))

    def size_bounds(self, cap: int) -> np.ndarray:
        """B_s: no replica of size s with TPOT level <= cap is faster (cached per cap)."""
        if cap not in self._bounds_at:
            self._bounds_at[cap] = size_rate_bounds(self.p, self.sizes, cap)
        return self._bounds_at[cap]

    def _write_bounds(self, cap: int) -> None:
        b = np.minimum(self.size_bounds(cap), self._rate_cap)
        for ct, pos, scale in self._bound_rows:
            self.model.set_coefficients(ct, pos, -(np.resize(b, pos.size) * scale))

    # maximise (G+1) V - gpus used (ties: fewest GPUs), folded when int64 allows.
    def _set_objective(self) -> bool:
        weight = self.p.total_gpus + 1
        if weight * self._value_cap * len(self.K) + weight < FOLD_LIMIT:
            self.model.maximize(weight * self.value - self.gpus_used)
            return True
        self.model.maximize(self.value)
        return False

    def solve(
        self,
        cap: int,
        settings: SolverSettings,
        counters: Counters,
        hint: Choice | None = None,
        hint_at: Callable[[int], Choice | None] | None = None,
    ) -> Choice | None:
        """The best deployment with TPOT level <= cap, ties broken; None if none (or none in time).

        Order: value, then TPOT level, then GPUs. One solve gives the best value with the fewest
        GPUs; the TPOT tie-break then re-solves at the level just below the answer's until the
        value drops. That solve is the sweep's next point anyway (kept in ``_at``), so a frontier
        sweep pays for it once; folding the level into the objective as the "menu" engine does
        instead leaves CP-SAT, which sees per-size rate bounds only at the cap, unable to prove
        at large budgets that a lower level loses value.

        ``hint`` warm-starts the solve; ``hint_at(cap)``, if given, supplies a hint for any cap
        solved whose hint would otherwise lie above it (or be missing).
        """
        self.proven = True
        if self.empty or cap < 0:
            return None
        best = self._at_cap(min(cap, self.p.n_levels - 1), settings, counters, hint, hint_at)
        while best is not None and best.packing.tpot_level > 0:
            lower = self._at_cap(best.packing.tpot_level - 1, settings, counters, best, hint_at)
            if lower is None or lower.packing.value < best.packing.value:
                break
            best = lower
        return best

    def _at_cap(self, cap: int, settings: SolverSettings, counters: Counters, hint, hint_at) -> Choice | None:
        """Best value at TPOT level <= cap with the fewest GPUs (its level not minimised)."""
        if cap not in self._at:
            if hint_at is not None and (hint is None or hint.packing.tpot_level > cap):
                hint = hint_at(cap) or hint
            seen = len(self.reports)
            best = self._solve_cap(cap, settings, counters, hint)
            # INFEASIBLE is a proof; UNKNOWN (time limit, nothing found) and FEASIBLE are not.
            proven = all(r.proven for r in self.reports[seen:])
            self._at[cap] = (best, proven)
        best, proven = self._at[cap]
        self.proven &= proven
        return best

    def _solve_cap(
        self, cap: int, settings: SolverSettings, counters: Counters, hint: Choice | None
    ) -> Choice | None:
        self.model.set_upper_bound(self.tpot_level, cap)
        self._write_bounds(cap)
        self.model.set_lower_bound(self._floor, 0)
        folded = self._set_objective()
        if hint is not None:
            self.hint(hint)
        else:
            self.model.clear_hints()  # no stale hint from an earlier cap
        best = self._run(settings, counters)
        if best is not None and not folded:
            # Second stage: keep the optimal value, minimise the GPUs.
            self.model.set_lower_bound(self._floor, best.packing.value)
            self.model.minimize(self.gpus_used)
            self.hint(best)
            best = self._run(settings, counters) or best
        return best

    def hint(self, known: Choice) -> None:
        """Warm start from a known deployment, as a complete assignment (see ``compose_slots``)."""
        self.model.set_hint(hint_values(self.slots, known))

    def _run(self, settings: SolverSettings, counters: Counters) -> Choice | None:
        # The engine's parameters first: the caller's settings and params override them.
        engine = ENGINE_PARAMS["identical" if self.identical else "packed"]
        report = cpsat.solve(self.model, settings, counters, params=engine)
        self.reports.append(report)
        if not report.has_solution:
            return None
        return read_choice(self.slots, report.solution)

    def _slot(self, k: int) -> Slot:
        """Slot k's variable indices (-1 or empty: not in this model)."""

        def idx(variables) -> np.ndarray:
            return np.array([v.index for v in variables], dtype=np.int64)

        agg, ident = self.p.agg, self.identical
        return Slot(
            use=self.use[k].index,
            a=idx(() if agg else self.a[k]),
            n=idx(() if agg else self.n[k]),
            x=-1 if agg else self.x[k].index,
            b=idx(self.b[k]),
            m=idx(self.m[k]),
            y=self.y[k].index,
            z=idx(self.z[k]),
            g=self.g[k].index,
            r=self.r[k].index,
            cs=idx(() if ident else self.cs[k]),
            c=-1 if ident else self.c[k].index,
            bits=idx(self.bits[k] if self.bits else ()),
            w=idx(self.w[k] if self.w else ()),
            v=self.v[k].index,
        )
