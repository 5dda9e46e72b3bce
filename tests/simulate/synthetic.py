"""Synthetic step tables for queueing-theory checks: a pass costs a constant, or a constant per token."""

import numpy as np

from servopt.simulate.engine import Deployment, InstanceKind
from servopt.simulate.policy import SchedulerPolicy
from servopt.simulate.step_time import StepTables

BIG = 1e7


def tables(per_pass_ms: float = 0.0, per_token_ms: float = 0.0) -> StepTables:
    """A pass of one prefill chunk of n tokens costs ``per_pass_ms + per_token_ms * n``."""
    ax = np.array([0.0, BIG])
    prefix = np.array([0.0, BIG])
    ctx = np.array([[per_pass_ms, per_pass_ms], [per_pass_ms + per_token_ms * BIG] * 2])
    dec = np.full((2, 2), per_pass_ms)
    zero = np.zeros((2, 2))
    return StepTables(ax, np.zeros(2), ax, ax, dec, zero, ax, prefix, ctx, zero)


def one_at_a_time(servers: int, table: StepTables, pull: bool = True) -> Deployment:
    """``servers`` instances that each serve one request at a time (no batching)."""
    policy = SchedulerPolicy(
        max_batch_size=1,
        max_num_tokens=10**9,
        chunked_prefill=False,
        mixed_batches=False,
        reserve_full_kv=True,
        kv_block_tokens=1,
    )
    kind = InstanceKind("agg", servers, policy, 10**12, table, 1.0, pull=pull)
    return Deployment((kind,))
