"""The first, eager version of ``servopt_kernels.sim``: every running request is touched every pass.

Kept as the test oracle of the lazy kernel (which tracks decoding requests in aggregate): where
their semantics agree (no preemption), both must produce the same times and the same
inter-token-gap histogram. Not shipped.
"""

from __future__ import annotations

import numpy as np

from servopt_kernels.jit import kernel
from servopt_kernels.sim import (  # the shared helpers: the oracle differs only in its loop
    INF,
    P_BLOCK,
    P_CHUNKED,
    P_KV_TOKENS,
    P_MAX_BATCH,
    P_MAX_TOKENS,
    P_MIXED,
    P_OVERHEAD_MS,
    P_PULL,
    P_RESERVE_FULL,
    ROLE_AGG,
    ROLE_DECODE,
    ROLE_PREFILL,
    STOP_NONE,
    TL_COLS,
    _blocks,
    _heap_pop,
    _heap_push,
    _itl_bin,
    _pop_front,
    _push_back,
    _push_front,
    interp1,
    interp2,
)


@kernel
def simulate(
    arrival_ms,
    isl,
    osl,
    clients,
    inst_role,
    inst_kind,
    policy,
    tok_axis,
    tok_n,
    tok_ms,
    dec_axis,
    dec_n,
    kv_axis,
    kv_n,
    gen_full_ms,
    gen_attn_ms,
    new_axis,
    new_n,
    pre_axis,
    pre_n,
    ctx_full_ms,
    ctx_attn_ms,
    xfer_ms_per_token,
    xfer_fixed_ms,
    request_overhead_ms,  # not modelled here: the oracle is compared at 0
    max_batch_cap,
    itl_weight,
    t_arrive,
    t_first,
    t_done,
    preemptions,
    itl_hist,
    timeline,
    dlog_t,  # token-time outputs: not produced by the oracle
    dlog_i,
    out_p0,
    out_g0,
    out_inst,
    watch,  # early stop: not modelled here (the oracle always runs to the end)
    ttft_limit_ms,
    tpot_limit_ms,
    ttft_fail_at,
    tpot_fail_at,
):
    """Simulate every request; fills ``t_arrive``/``t_first``/``t_done`` (ms), ``preemptions``,
    ``itl_hist`` (decode tokens per inter-token-gap bin) and ``timeline`` (sampled rows).

    Parameters
    ----------
    arrival_ms : (n,) float64, sorted; open-loop arrival times (ignored when ``clients > 0``)
    isl, osl : (n,) int64 request lengths (osl >= 1: the first token comes from the prefill)
    clients : int; > 0 = closed loop (each client sends its next request when its last one ends)
    inst_role, inst_kind : (m,) int64 role (ROLE_*) and kind (row of ``policy`` and table slab)
    policy : (k, N_POLICY) float64
    step tables : per kind, padded; see the module docstring
    xfer_ms_per_token, xfer_fixed_ms : disaggregated KV transfer time = fixed + per token * isl
    max_batch_cap : int, the largest P_MAX_BATCH over kinds (running-set width)
    itl_weight : (n,) float64, what each of a request's inter-token gaps adds to ``itl_hist``
        (0 for warm-up requests)

    Returns
    -------
    (iterations, timeline rows written, timeline stride)
    """
    n = isl.shape[0]
    m = inst_role.shape[0]
    nq = m + 3  # one queue per instance + one shared queue per role
    head = np.full(nq, -1, np.int64)
    tail = np.full(nq, -1, np.int64)
    qlen = np.zeros(nq, np.int64)
    nxt = np.full(n, -1, np.int64)

    run = np.full((m, max_batch_cap), -1, np.int64)
    nrun = np.zeros(m, np.int64)
    kv_used = np.zeros(m, np.float64)
    iter_end = np.full(m, INF)
    pending = np.zeros(m, np.int64)  # requests routed to the instance and not finished there

    target = np.zeros(n, np.int64)  # tokens to prefill (isl, or isl + generated after a recompute)
    done_pf = np.zeros(n, np.int64)
    generated = np.zeros(n, np.int64)
    kv_alloc = np.zeros(n, np.float64)
    chunk = np.zeros(n, np.int64)  # tokens of the request in the current pass (-1: one decode token)
    last_tok = np.zeros(n, np.float64)
    inst_of = np.full(n, -1, np.int64)

    heap_t = np.zeros(n, np.float64)
    heap_r = np.zeros(n, np.int64)
    heap_n = 0

    has_prefill = False
    has_decode = False
    for i in range(m):
        if inst_role[i] == ROLE_PREFILL:
            has_prefill = True
        if inst_role[i] == ROLE_DECODE:
            has_decode = True
    disagg = has_prefill and has_decode

    for r in range(n):
        t_arrive[r] = -1.0
        t_first[r] = -1.0
        t_done[r] = -1.0
        preemptions[r] = 0

    tl_cap = timeline.shape[0]
    tl_rows = 0
    tl_stride = 1
    tl_seen = 0
    tokens_out = 0.0
    queued_total = 0
    running_total = 0
    kv_total = 0.0

    issued = 0
    next_arr = 0
    completed = 0
    iterations = 0
    t = 0.0

    memo_gap = -1.0
    memo_bin = 0
    # Scratch for one pass's chunks.
    ch_new = np.zeros(max_batch_cap, np.float64)
    ch_pre = np.zeros(max_batch_cap, np.float64)

    if clients > 0:
        first = min(clients, n)
        for r in range(first):
            t_arrive[r] = 0.0
        issued = first
    # Requests whose routing is due: for closed loop the first wave; arrivals are routed below.
    route_from = 0
    route_to = issued if clients > 0 else 0

    while True:
        # --- route requests that arrived (closed loop: issued at a completion; open loop: due) ---
        if clients <= 0:
            while next_arr < n and arrival_ms[next_arr] <= t:
                t_arrive[next_arr] = arrival_ms[next_arr]
                next_arr += 1
            route_to = next_arr
        while route_from < route_to:
            r = route_from
            route_from += 1
            target[r] = isl[r]
            role = ROLE_PREFILL if disagg else ROLE_AGG
            # Pick the queue: shared (pull) or the least-loaded instance of the role (push).
            best = -1
            for i in range(m):
                if inst_role[i] != role:
                    continue
                if policy[inst_kind[i], P_PULL] > 0:
                    best = -2 - role
                    break
                if best < 0 or pending[i] < pending[best]:
                    best = i
            if best <= -2:
                q = m + (-2 - best)
            else:
                q = best
                pending[best] += 1
            inst_of[r] = best
            _push_back(q, r, head, tail, nxt, qlen)
            queued_total += 1
        # --- KV transfers that have landed: route to the least-loaded decode instance ---
        while heap_n > 0 and heap_t[0] <= t:
            r, heap_n = _heap_pop(heap_t, heap_r, heap_n)
            best = -1
            for i in range(m):
                if inst_role[i] != ROLE_DECODE:
                    continue
                if policy[inst_kind[i], P_PULL] > 0:
                    best = -2 - ROLE_DECODE
                    break
                if best < 0 or pending[i] < pending[best]:
                    best = i
            if best <= -2:
                q = m + ROLE_DECODE
            else:
                q = best
                pending[best] += 1
            inst_of[r] = best
            _push_back(q, r, head, tail, nxt, qlen)
            queued_total += 1

        # --- start a pass on every idle instance ---
        for i in range(m):
            if iter_end[i] < INF:
                continue
            k = inst_kind[i]
            role = inst_role[i]
            max_batch = int(policy[k, P_MAX_BATCH])
            budget = policy[k, P_MAX_TOKENS]
            chunked = policy[k, P_CHUNKED] > 0
            mixed = policy[k, P_MIXED] > 0
            full = policy[k, P_RESERVE_FULL] > 0
            kv_cap = policy[k, P_KV_TOKENS]
            block = policy[k, P_BLOCK]
            q = m + role if policy[k, P_PULL] > 0 else i

            # Does a prefill-only pass run (engines that do not mix)? Prefill comes first when any
            # admitted request is mid-prefill or the queue head could be admitted now.
            prefill_pass = False
            if role != ROLE_DECODE and not mixed:
                for s in range(nrun[i]):
                    r = run[i, s]
                    if done_pf[r] < target[r]:
                        prefill_pass = True
                        break
                if not prefill_pass and qlen[q] > 0 and nrun[i] < max_batch:
                    r = head[q]
                    need = _blocks(target[r] + (osl[r] if full and role == ROLE_AGG else 0), block)
                    if kv_used[i] + need <= kv_cap:
                        prefill_pass = True

            d = 0
            kv_sum = 0.0
            p_tokens = 0.0
            n_chunks = 0
            if not prefill_pass:
                # Decode tokens first: every running request past its prefill gains one token; an
                # incremental KV that runs out preempts the most recently admitted request.
                s = 0
                while s < nrun[i]:
                    r = run[i, s]
                    if done_pf[r] < target[r]:
                        s += 1
                        continue
                    ctx = isl[r] + generated[r]
                    if not full and ctx > kv_alloc[r]:
                        while kv_used[i] + block > kv_cap and nrun[i] > 0:
                            victim_slot = nrun[i] - 1
                            victim = run[i, victim_slot]
                            # Recompute: the victim's tokens so far become its prompt.
                            kv_used[i] -= kv_alloc[victim]
                            kv_total -= kv_alloc[victim]
                            kv_alloc[victim] = 0.0
                            target[victim] = isl[victim] + generated[victim]
                            done_pf[victim] = 0
                            chunk[victim] = 0
                            preemptions[victim] += 1
                            run[i, victim_slot] = -1
                            nrun[i] -= 1
                            running_total -= 1
                            if policy[k, P_PULL] > 0:
                                # Back to the shared queue: any instance may take it next.
                                pending[i] -= 1
                                inst_of[victim] = -2 - role
                            _push_front(q, victim, head, tail, nxt, qlen)
                            queued_total += 1
                            if victim == r:
                                break
                        if s >= nrun[i]:
                            break
                        kv_alloc[r] += block
                        kv_used[i] += block
                        kv_total += block
                    chunk[r] = -1
                    d += 1
                    kv_sum += ctx
                    s += 1
                if role != ROLE_DECODE:
                    budget -= d
            else:
                for s in range(nrun[i]):
                    chunk[run[i, s]] = 0

            if role != ROLE_DECODE and (prefill_pass or mixed):
                # Running requests mid-prefill continue first, in admission order.
                for s in range(nrun[i]):
                    r = run[i, s]
                    if done_pf[r] >= target[r] or budget <= 0:
                        if done_pf[r] < target[r]:
                            chunk[r] = 0
                        continue
                    c = min(target[r] - done_pf[r], int(budget))
                    chunk[r] = c
                    ch_new[n_chunks] = c
                    ch_pre[n_chunks] = done_pf[r]
                    n_chunks += 1
                    p_tokens += c
                    budget -= c
            if role == ROLE_DECODE or prefill_pass or mixed:
                # Admit from the queue in FIFO order while the batch, token budget and KV allow.
                while qlen[q] > 0 and nrun[i] < max_batch:
                    r = head[q]
                    if role == ROLE_DECODE:
                        if budget < 1 and d > 0:
                            break
                        need = _blocks(isl[r] + (osl[r] if full else 1), block)
                    else:
                        if budget <= 0:
                            break
                        if not chunked and target[r] > budget:
                            break
                        extra = osl[r] if full and role == ROLE_AGG else 0
                        need = _blocks(target[r] + extra, block)
                    if kv_used[i] + need > kv_cap:
                        break
                    _pop_front(q, head, tail, nxt, qlen)
                    queued_total -= 1
                    if inst_of[r] <= -2:
                        inst_of[r] = i
                        pending[i] += 1
                    run[i, nrun[i]] = r
                    nrun[i] += 1
                    running_total += 1
                    kv_alloc[r] = need
                    kv_used[i] += need
                    kv_total += need
                    if role == ROLE_DECODE:
                        # The KV arrived with the request: it decodes in this pass.
                        done_pf[r] = target[r]
                        chunk[r] = -1
                        d += 1
                        kv_sum += isl[r] + generated[r]
                        budget -= 1
                    else:
                        c = min(target[r], int(budget))
                        chunk[r] = c
                        ch_new[n_chunks] = c
                        ch_pre[n_chunks] = 0.0
                        n_chunks += 1
                        p_tokens += c
                        budget -= c

            if d == 0 and n_chunks == 0:
                continue  # idle until something arrives
            # --- step time of the pass ---
            kv_mean = kv_sum / d if d > 0 else 0.0
            if n_chunks == 0:
                dur = interp2(dec_axis[k], dec_n[k], kv_axis[k], kv_n[k], gen_full_ms[k], d, kv_mean)
            elif n_chunks == 1 and d == 0:
                dur = interp2(
                    new_axis[k], new_n[k], pre_axis[k], pre_n[k], ctx_full_ms[k], ch_new[0], ch_pre[0]
                )
            else:
                dur = interp1(tok_axis[k], tok_ms[k], tok_n[k], p_tokens + d)
                for c in range(n_chunks):
                    dur += interp2(
                        new_axis[k], new_n[k], pre_axis[k], pre_n[k], ctx_attn_ms[k], ch_new[c], ch_pre[c]
                    )
                if d > 0:
                    dur += interp2(dec_axis[k], dec_n[k], kv_axis[k], kv_n[k], gen_attn_ms[k], d, kv_mean)
            dur += policy[k, P_OVERHEAD_MS]
            if dur < 1e-9:
                dur = 1e-9
            iter_end[i] = t + dur
            iterations += 1
            # --- timeline sample (every tl_stride-th pass; halved in place when full) ---
            if tl_seen % tl_stride == 0:
                if tl_rows == tl_cap:
                    half = tl_cap // 2
                    for row in range(half):
                        for col in range(TL_COLS):
                            timeline[row, col] = timeline[2 * row, col]
                    tl_rows = half
                    tl_stride *= 2
                if tl_seen % tl_stride == 0:
                    timeline[tl_rows, 0] = t
                    timeline[tl_rows, 1] = queued_total
                    timeline[tl_rows, 2] = running_total
                    timeline[tl_rows, 3] = kv_total
                    timeline[tl_rows, 4] = tokens_out
                    tl_rows += 1
            tl_seen += 1

        # --- next event: the earliest pass end, arrival or landed transfer ---
        tn = INF
        for i in range(m):
            if iter_end[i] < tn:
                tn = iter_end[i]
        if clients <= 0 and next_arr < n and arrival_ms[next_arr] < tn:
            tn = arrival_ms[next_arr]
        if heap_n > 0 and heap_t[0] < tn:
            tn = heap_t[0]
        if tn == INF:
            break
        t = tn

        # --- finish every pass ending now ---
        for i in range(m):
            if iter_end[i] != t:
                continue
            iter_end[i] = INF
            role = inst_role[i]
            s = 0
            while s < nrun[i]:
                r = run[i, s]
                leave = False
                c = chunk[r]
                chunk[r] = 0
                if c > 0:
                    done_pf[r] += c
                    if done_pf[r] >= target[r]:
                        # The pass that completes a prefill samples a token.
                        if t_first[r] < 0:
                            t_first[r] = t
                        else:
                            gap = t - last_tok[r]
                            if gap != memo_gap:
                                memo_gap = gap
                                memo_bin = _itl_bin(gap)
                            itl_hist[memo_bin] += itl_weight[r]
                        generated[r] += 1
                        tokens_out += 1.0
                        last_tok[r] = t
                        if generated[r] >= osl[r] or role == ROLE_PREFILL:
                            leave = True
                elif c < 0:
                    # Requests decoding in the same passes share their gap: bin it once.
                    gap = t - last_tok[r]
                    if gap != memo_gap:
                        memo_gap = gap
                        memo_bin = _itl_bin(gap)
                    itl_hist[memo_bin] += itl_weight[r]
                    generated[r] += 1
                    tokens_out += 1.0
                    last_tok[r] = t
                    if generated[r] >= osl[r]:
                        leave = True
                if not leave:
                    s += 1
                    continue
                # Leave the instance: free the KV, close the slot (order kept for preemption).
                kv_used[i] -= kv_alloc[r]
                kv_total -= kv_alloc[r]
                kv_alloc[r] = 0.0
                for s2 in range(s, nrun[i] - 1):
                    run[i, s2] = run[i, s2 + 1]
                run[i, nrun[i] - 1] = -1
                nrun[i] -= 1
                running_total -= 1
                pending[i] -= 1
                if generated[r] >= osl[r]:
                    t_done[r] = t
                    completed += 1
                    if clients > 0 and issued < n:
                        t_arrive[issued] = t
                        issued += 1
                        route_to = issued
                else:
                    # Prefill done on a disaggregated prefill worker: ship the KV to decode.
                    heap_n = _heap_push(
                        heap_t, heap_r, heap_n, t + xfer_fixed_ms + xfer_ms_per_token * isl[r], r
                    )
    return iterations, tl_rows, tl_stride, 0, STOP_NONE
