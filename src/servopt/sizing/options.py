"""Worker options for sizing: every layout of the search lists x a few batch caps, as pool options.

Step tables and KV capacities are built once per (role, layout); batch-cap variants share them
(the cap only changes the policy row). KV capacity is computed first, so a layout that cannot hold
one request never has its tables priced. Layouts the data cannot price, or whose KV cache cannot hold
one request, are dropped with their reason.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from servopt.errors import ServoptError
from servopt.evaluate.candidates import ModelSetup
from servopt.models.parallel import Layout
from servopt.simulate.adjust import Adjustments, adjust_kind
from servopt.simulate.build import WorkerPlan, build_kind, kv_capacity_tokens, kv_transfer_model
from servopt.simulate.policy import SchedulerPolicy, fit_token_budget
from servopt.sizing.minimize import PoolOption

# Batch caps tried per layout (the engine's own default is always tried too): smaller caps trade
# queueing for a lower TPOT tail.
BATCH_CAPS = (8, 16, 32, 64, 128, 256)


def pool_options(
    db,
    setup: ModelSetup,
    role: str,
    layouts: list[Layout],
    policy: SchedulerPolicy,
    *,
    max_isl: int,
    max_osl: int,
    prompt_lengths: np.ndarray,
    caps: tuple[int, ...] = BATCH_CAPS,
) -> tuple[list[PoolOption], list[tuple[Layout, str]]]:
    options, dropped = [], []
    need = max_isl + (max_osl if role != "prefill" else 0)
    # The policy build_kind prices with (a prompt budget that holds the longest prompt).
    fitted = policy if role == "decode" else fit_token_budget(policy, max_isl)
    for layout in layouts:
        try:
            # KV capacity first: it needs no step tables, and a layout whose KV cache cannot hold
            # one request (a large model on few GPUs) is dropped before its tables are priced.
            kv = kv_capacity_tokens(setup, layout, role, fitted) // layout.pp
            if kv < need:
                dropped.append((layout, f"KV cache holds {kv} tokens, a request needs {need}"))
                continue
            kind = build_kind(
                db,
                setup,
                WorkerPlan(role, layout, 1, policy),
                max_isl=max_isl,
                max_osl=max_osl,
                prompt_lengths=prompt_lengths,
            )
        except ServoptError as err:
            dropped.append((layout, str(err)))
            continue
        if kind.kv_tokens < need:
            dropped.append((layout, f"KV cache holds {kind.kv_tokens} tokens, a request needs {need}"))
            continue
        cap_list = sorted({c for c in caps if c < policy.max_batch_size} | {policy.max_batch_size})
        if role == "prefill":
            cap_list = [policy.max_batch_size]  # a prefill worker's batch is its token budget
        for cap in cap_list:
            k = replace(kind, policy=replace(kind.policy, max_batch_size=cap))
            label = f"{role} {layout.label} batch<={cap}"
            options.append(PoolOption(label, k, layout.gpus, layout, setup.system.name))
    return options, dropped


def transfer_model(setup: ModelSetup, decode_setup: ModelSetup | None = None):
    """KV-transfer parameters of a replica, from the system specs (``simulate.build``; decode on
    ``decode_setup``'s system when given)."""

    def transfer(p: PoolOption, x: int, d: PoolOption, y: int) -> tuple[float, float]:
        plans = [
            WorkerPlan("prefill", p.layout, x, p.kind.policy),
            WorkerPlan("decode", d.layout, y, d.kind.policy),
        ]
        return kv_transfer_model(setup, plans, decode_setup)

    return transfer


def adjust_options(options: list[PoolOption], adj: Adjustments) -> list[PoolOption]:
    """The options with a calibration's scales and iteration overhead on their step tables (as
    ``cli simulate`` applies them, ``simulate.adjust``); the same list when they are neutral."""
    if adj.neutral:
        return options
    return [replace(o, kind=adjust_kind(o.kind, adj)) for o in options]
