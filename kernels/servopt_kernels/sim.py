"""The serving simulator's iteration loop: continuous batching with queues, per engine instance.

One call simulates a whole deployment (agg instances, or prefill and decode instances) serving a
list of requests, iteration by iteration, and writes per-request times. It is a discrete-event
loop over *iteration ends*: each instance runs one forward pass at a time; when a pass ends its
effects are applied (prefill chunks advance, every decoding request gains a token, finished
requests leave) and the instance immediately forms its next batch from its running set and queue.

Scheduling behaviour is data (one row of ``policy`` per instance kind, columns ``P_*``), not
branches per engine: token budget, batch cap, chunked prefill, mixed prefill+decode passes or
prefill-first passes, KV reservation (whole request up front, or grown block by block with
preemption by recompute), routing (push to the least-loaded instance at arrival, or a shared
queue the instances pull from), how often an instance polls for new requests, and TRT-LLM's
attention-DP balancing (a rank's context requests wait until every rank of its worker has one,
or a timeout; see ``_adp_balance``) and its batch waiting without attention DP (context waits
while decodes run until enough tokens are waiting, or a timeout; see ``_batch_wait``).

Step times come from tables (``step_*`` arrays, one slab per instance kind, built by
``servopt.simulate.step_time`` from servopt's own per-op latency model):

- ``tok``: non-attention ops of a forward pass over x tokens (context op list);
- ``gen_full`` / ``gen_attn`` over (decode requests d, mean KV length): a decode-only pass, and
  the decode-attention share of a mixed pass;
- ``ctx_full`` / ``ctx_attn`` over (new tokens n, cached prefix q) of one request's chunk: a
  prefill-only pass of one chunk, and the context-attention share of a batched or mixed pass.

A pass costs: decode only ``gen_full(d, kv)``; one prefill chunk alone ``ctx_full(n, q)``; otherwise
``tok(p + d) + sum ctx_attn(n_i, q_i) + gen_attn(d, kv)`` (the peer's three-pass mixed step), plus
the policy's fixed per-iteration overhead.

Times are in ms. The loop is deterministic: ties between instances ending at the same time are
resolved in instance order.
"""

from __future__ import annotations

import numpy as np

from servopt_kernels.jit import kernel

# Policy columns (float64; flags are 0/1).
P_MAX_BATCH = 0  # running requests per instance
P_MAX_TOKENS = 1  # tokens per forward pass (decode tokens count one each)
P_CHUNKED = 2  # prefill may be split into chunks across passes
P_MIXED = 3  # prefill chunks and decode tokens share a pass (else prefill passes run alone)
P_RESERVE_FULL = 4  # reserve isl + osl KV at admission (no growth, no preemption)
P_KV_TOKENS = 5  # KV-cache capacity in tokens
P_BLOCK = 6  # KV allocation granularity (tokens)
P_OVERHEAD_MS = 7  # fixed cost of every forward pass
P_PULL = 8  # routing: 1 = shared queue the instances pull from, 0 = push to least-loaded
P_RECV_INTERVAL = 9  # poll the queue every N decode-only passes (1 = before every pass)
P_ADP_RANKS = 10  # attention-DP ranks of one worker: that many consecutive instances of the kind
P_ADP_TIMEOUT = 11  # TRT-LLM attention-DP balancing: hold context up to N passes (0 = off)
P_BATCH_WAIT_ITERS = 12  # TRT-LLM batch waiting: hold context up to N passes (with the ratio: 0 = off)
P_BATCH_WAIT_RATIO = 13  # ... or until context + decode tokens reach this share of the token budget
N_POLICY = 14

# Instance roles.
ROLE_AGG = 0
ROLE_PREFILL = 1
ROLE_DECODE = 2

# Inter-token-gap histogram: log bins from ITL_LO_MS by factor ITL_RATIO.
ITL_BINS = 2600
ITL_LO_MS = 1e-3
ITL_RATIO = 1.01

# Timeline columns: time, queued, running, KV tokens used, output tokens so far.
TL_COLS = 5

# Why a run ended: every request done, or (``watch``) early, with the watched requests' verdict
# settled: all of them done, or too many past the TTFT or the TPOT limit.
STOP_NONE = 0
STOP_WATCHED_DONE = 1
STOP_TTFT = 2
STOP_TPOT = 3

INF = np.inf


@kernel(inline="always")
def _bracket(axis, n, x):
    """Index i with axis[i] <= x < axis[i+1], clamped to [0, n-2] (n >= 2), and the weight of i+1:
    0 below the first point (held), above 1 past the last (linear extrapolation)."""
    if n < 2:
        return 0, 0.0
    lo = 0
    hi = n - 1
    if x <= axis[0]:
        lo = 0
    elif x >= axis[n - 1]:
        lo = n - 2
    else:
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if axis[mid] <= x:
                lo = mid
            else:
                hi = mid
    span = axis[lo + 1] - axis[lo]
    w = (x - axis[lo]) / span if span > 0 else 0.0
    if w < 0.0:
        w = 0.0
    return lo, w


@kernel
def interp1(axis, values, n, x):
    """Piecewise-linear ``values(x)`` on ``axis[:n]``; linear extrapolation past the last point."""
    if n == 1:
        return values[0]
    i, w = _bracket(axis, n, x)
    return values[i] * (1.0 - w) + values[i + 1] * w


@kernel
def interp2(ax0, n0, ax1, n1, values, x0, x1):
    """Bilinear ``values(x0, x1)`` on ``ax0[:n0] x ax1[:n1]``; linear extrapolation in both axes."""
    i, wi = _bracket(ax0, n0, x0)
    j, wj = _bracket(ax1, n1, x1)
    i1 = i + 1 if n0 >= 2 else i
    j1 = j + 1 if n1 >= 2 else j
    a = values[i, j] * (1.0 - wj) + values[i, j1] * wj
    b = values[i1, j] * (1.0 - wj) + values[i1, j1] * wj
    return a * (1.0 - wi) + b * wi


@kernel
def _blocks(tokens, block):
    return np.ceil(tokens / block) * block


@kernel
def _push_back(q, r, head, tail, nxt, qlen):
    nxt[r] = -1
    if tail[q] < 0:
        head[q] = r
    else:
        nxt[tail[q]] = r
    tail[q] = r
    qlen[q] += 1


@kernel
def _push_front(q, r, head, tail, nxt, qlen):
    nxt[r] = head[q]
    head[q] = r
    if tail[q] < 0:
        tail[q] = r
    qlen[q] += 1


@kernel
def _pop_front(q, head, tail, nxt, qlen):
    r = head[q]
    head[q] = nxt[r]
    if head[q] < 0:
        tail[q] = -1
    qlen[q] -= 1
    return r


@kernel
def _heap_push(ht, hr, size, t, r):
    i = size
    ht[i] = t
    hr[i] = r
    while i > 0:
        parent = (i - 1) // 2
        if ht[parent] > ht[i] or (ht[parent] == ht[i] and hr[parent] > hr[i]):
            ht[parent], ht[i] = ht[i], ht[parent]
            hr[parent], hr[i] = hr[i], hr[parent]
            i = parent
        else:
            break
    return size + 1


@kernel
def _heap_pop(ht, hr, size):
    r = hr[0]
    size -= 1
    ht[0] = ht[size]
    hr[0] = hr[size]
    i = 0
    while True:
        left = 2 * i + 1
        right = left + 1
        small = i
        if left < size and (ht[left] < ht[small] or (ht[left] == ht[small] and hr[left] < hr[small])):
            small = left
        if right < size and (ht[right] < ht[small] or (ht[right] == ht[small] and hr[right] < hr[small])):
            small = right
        if small == i:
            break
        ht[small], ht[i] = ht[i], ht[small]
        hr[small], hr[i] = hr[i], hr[small]
        i = small
    return r, size


@kernel
def _wake(i, wake, woken, n_woken):
    """Add instance ``i`` to the sorted list of instances to try starting; returns the new count."""
    if wake[i]:
        return n_woken
    wake[i] = True
    j = n_woken
    while j > 0 and woken[j - 1] > i:
        woken[j] = woken[j - 1]
        j -= 1
    woken[j] = i
    return n_woken + 1


@kernel
def _route(
    r,
    role,
    inst_role,
    inst_kind,
    policy,
    pending,
    iter_end,
    inst_of,
    wake,
    woken,
    n_woken,
    head,
    tail,
    nxt,
    qlen,
):
    """Queue request ``r`` for ``role``: the role's shared queue (pull; every idle instance of the
    role is woken) or the least-loaded instance's own queue (push). Returns the woken count."""
    m = inst_role.shape[0]
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
        q = m + role
        for j in range(m):
            if inst_role[j] == role and iter_end[j] == INF:
                n_woken = _wake(j, wake, woken, n_woken)
    else:
        q = best
        pending[best] += 1
        if iter_end[best] == INF:
            n_woken = _wake(best, wake, woken, n_woken)
    inst_of[r] = best
    _push_back(q, r, head, tail, nxt, qlen)
    return n_woken


@kernel
def _ctx_ready(j, q, max_batch, extra_osl, block, kv_cap, n_pf, nrun, qlen, head, queued_at, poll_t,
               target, osl, kv_used):  # fmt: skip
    """Whether instance ``j`` has a context chunk to schedule: a request mid-prefill, or a polled
    queue head that fits its batch and KV."""
    if n_pf[j] > 0:
        return True
    if qlen[q] == 0 or nrun[j] >= max_batch or queued_at[head[q]] > poll_t[j]:
        return False
    r = head[q]
    return kv_used[j] + _blocks(target[r] + (osl[r] if extra_osl else 0), block) <= kv_cap


@kernel
def _adp_balance(i, base, ranks, timeout, max_batch, extra_osl, block, kv_cap, pull_q, adp_wait,
                 adp_go, n_dec, n_pf, nrun, qlen, head, queued_at, poll_t, target, osl, kv_used):  # fmt: skip
    """TRT-LLM's attention-DP balancing (``PyExecutor._balance_adp_requests``, ``attention_dp_config``
    ``enable_balance``): may rank ``i`` (of ranks ``base .. base + ranks - 1``) schedule context now?
    Yes when every rank has a context request and a free slot (all ranks schedule theirs: the others
    at their next pass); else it holds, counting passes, and lets go after ``timeout`` of them or
    when some rank decodes nothing. The engine keeps the count in lockstep on every rank; here each
    rank counts its own passes, and all counts restart together."""
    if adp_go[i]:
        adp_go[i] = False
        adp_wait[i] = 0
        return True
    all_ctx = True
    all_gen = True
    all_free = True
    for j in range(base, base + ranks):
        q = pull_q if pull_q >= 0 else j
        if not _ctx_ready(j, q, max_batch, extra_osl, block, kv_cap, n_pf, nrun, qlen, head,
                          queued_at, poll_t, target, osl, kv_used):  # fmt: skip
            all_ctx = False
        if n_dec[j] == 0:
            all_gen = False
        if n_dec[j] >= max_batch:
            all_free = False
    if all_ctx and all_free:
        for j in range(base, base + ranks):
            adp_wait[j] = 0
            adp_go[j] = j != i
        return True
    adp_wait[i] += 1
    if adp_wait[i] >= timeout or not all_gen:
        adp_wait[i] = 0
        return True
    return False


@kernel
def _start_decoding(i, r, decoding, g0, p0, generated, dec_pass, kv_lin, n_dec, next_fin, isl, osl):
    """Request ``r`` starts decoding on instance ``i``: its stint starts at the instance's
    decoding-pass count with the tokens it has, and may bring the instance's next finish forward."""
    decoding[r] = True
    g0[r] = generated[r]
    p0[r] = dec_pass[i]
    kv_lin[i] += isl[r] + g0[r] - p0[r]
    n_dec[i] += 1
    fin = p0[r] + osl[r] - g0[r]
    if fin < next_fin[i]:
        next_fin[i] = fin


@kernel
def _mid_prefill_chunks(i, budget, run, nrun, decoding, done_pf, target, req, new, pre):
    """The chunks a pass of instance ``i`` continues first: its running requests mid-prefill, in
    admission order, while ``budget`` tokens last. Writes each chunk's request, new tokens and
    tokens done before at ``req/new/pre[0 .. n)``; returns ``n`` and the tokens of all of them."""
    n = 0
    tokens = 0.0
    for s in range(nrun[i]):
        if budget <= 0:
            break
        r = run[i, s]
        if decoding[r] or done_pf[r] >= target[r]:
            continue
        c = min(target[r] - done_pf[r], int(budget))
        req[n] = r
        new[n] = c
        pre[n] = done_pf[r]
        n += 1
        tokens += c
        budget -= c
    return n, tokens


@kernel
def _ctx_tokens(i, q, budget, max_batch, chunked, extra_osl, block, kv_cap, run, nrun, decoding,
                done_pf, target, n_pf, qlen, head, nxt, queued_at, poll_t, osl, kv_used, req, new,
                pre):  # fmt: skip
    """Context tokens instance ``i``'s next pass would schedule in ``budget`` tokens: its requests
    mid-prefill, then the polled queue in FIFO order while the batch, budget and KV allow (the
    admission loop's rules, without admitting; ``req/new/pre`` are the pass's chunk scratch)."""
    tokens = 0.0
    if n_pf[i] > 0:
        _, tokens = _mid_prefill_chunks(i, budget, run, nrun, decoding, done_pf, target, req, new, pre)
        budget -= tokens
    count = nrun[i]
    kv = kv_used[i]
    r = head[q] if qlen[q] > 0 else -1
    while r >= 0 and count < max_batch and budget > 0 and queued_at[r] <= poll_t[i]:
        if not chunked and target[r] > budget:
            break
        kv += _blocks(target[r] + (osl[r] if extra_osl else 0), block)
        if kv > kv_cap:
            break
        c = min(target[r], budget)
        tokens += c
        budget -= c
        count += 1
        r = nxt[r]
    return tokens


@kernel
def _batch_wait(i, tokens, timeout, ratio, max_tokens, bw_count):
    """TRT-LLM's batch waiting (``batch_wait_timeout_iters`` / ``batch_wait_max_tokens_ratio``;
    ``PyExecutor._waiting_requests``), asked only in a pass with context to schedule and decodes
    running: may instance ``i`` schedule its context now? Yes once it has held ``timeout`` passes
    or the pass's context + decode ``tokens`` reach ``ratio`` of the token budget, and the count
    restarts; else it holds and counts. The count is left as it is in passes that do not ask."""
    if bw_count[i] >= timeout or tokens >= ratio * max_tokens:
        bw_count[i] = 0
        return True
    bw_count[i] += 1
    return False


@kernel
def _itl_bin(gap_ms):
    if gap_ms <= ITL_LO_MS:
        return 0
    k = int(np.log(gap_ms / ITL_LO_MS) / np.log(ITL_RATIO))
    return min(k, ITL_BINS - 1)


@kernel(nogil=True)
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
    request_overhead_ms,
    max_batch_cap,
    itl_weight,
    t_arrive,
    t_first,
    t_done,
    preemptions,
    itl_hist,
    timeline,
    dlog_t,
    dlog_i,
    out_p0,
    out_g0,
    out_inst,
    watch,
    ttft_limit_ms,
    tpot_limit_ms,
    ttft_fail_at,
    tpot_fail_at,
):
    """Simulate every request; fills ``t_arrive``/``t_first``/``t_done`` (ms), ``preemptions``,
    ``itl_hist`` (decode tokens per inter-token-gap bin) and ``timeline`` (sampled rows).

    Token times (for the emulator): ``dlog_t``/``dlog_i`` log the end time and instance of every
    decoding pass (as many as fit), and ``out_p0``/``out_g0``/``out_inst`` (length n, or 0 to skip)
    receive each request's last decoding stint: from pass ``p0`` of its instance's decoding passes
    on, it gained tokens ``g0 + 1, g0 + 2, ...`` one per pass.

    Parameters
    ----------
    arrival_ms : (n,) float64, sorted; open-loop arrival times (ignored when ``clients > 0``)
    isl, osl : (n,) int64 request lengths (osl >= 1: the first token comes from the prefill)
    clients : int; > 0 = closed loop (each client sends its next request when its last one ends)
    inst_role, inst_kind : (m,) int64 role (ROLE_*) and kind (row of ``policy`` and table slab)
    policy : (k, N_POLICY) float64
    step tables : per kind, padded; see the module docstring
    xfer_ms_per_token, xfer_fixed_ms : disaggregated KV transfer time = fixed + per token * isl
    request_overhead_ms : time from a request's send to its arrival in the engines' queues
    max_batch_cap : int, the largest P_MAX_BATCH over kinds (running-set width)
    itl_weight : (n,) float64, what each of a request's inter-token gaps adds to ``itl_hist``
        (0 for warm-up requests)
    watch : (n,) bool, or length 0; open loop only: the requests whose times are wanted. The run
        stops early (times of the rest left at -1 where not yet known) once every watched request
        is done (STOP_WATCHED_DONE), or once ``ttft_fail_at`` watched requests have a TTFT
        ``t_first - t_arrive > ttft_limit_ms`` (STOP_TTFT), or ``tpot_fail_at`` watched requests
        with osl > 1 have a TPOT ``(t_done - t_first) / (osl - 1) > tpot_limit_ms`` (STOP_TPOT).
        Each count only ever includes requests whose final value is past the limit (a request
        still waiting for its first token at ``t - t_arrive > ttft_limit_ms`` gets it at or after
        ``t``), so what was computed before the stop is exactly what the whole run computes.

    Returns
    -------
    (iterations, timeline rows written, timeline stride, decoding passes logged, STOP_* code)
    """
    n = isl.shape[0]
    m = inst_role.shape[0]
    nq = m + 3  # one queue per instance + one shared queue per role
    head = np.full(nq, -1, np.int64)
    tail = np.full(nq, -1, np.int64)
    qlen = np.zeros(nq, np.int64)
    nxt = np.full(n, -1, np.int64)

    run = np.full((m, max_batch_cap), -1, np.int64)  # running requests, in admission order
    nrun = np.zeros(m, np.int64)
    kv_used = np.zeros(m, np.float64)
    iter_end = np.full(m, INF)
    # Busy instances by pass end (a heap), and the idle ones whose state changed (sorted): only
    # those can start a pass, so an event costs O(log m + changes), not O(m).
    ev_t = np.zeros(m, np.float64)
    ev_i = np.zeros(m, np.int64)
    ev_n = 0
    wake = np.zeros(m, np.bool_)
    woken = np.zeros(m, np.int64)
    n_woken = 0
    pending = np.zeros(m, np.int64)  # requests routed to the instance and not finished there
    # Decoding requests are tracked in aggregate (see "lazy decode" below): count, the passes
    # that decoded, sum of (isl + g0 - p0), ITL weights of those whose last token ended the last
    # decoding pass, that pass's end, and the earliest pass index at which one of them finishes.
    n_dec = np.zeros(m, np.int64)
    dec_pass = np.zeros(m, np.int64)
    kv_lin = np.zeros(m, np.float64)
    w_steady = np.zeros(m, np.float64)
    last_dec_end = np.zeros(m, np.float64)
    next_fin = np.full(m, np.iinfo(np.int64).max, np.int64)
    n_pf = np.zeros(m, np.int64)  # running requests mid-prefill
    fresh = np.full((m, max_batch_cap), -1, np.int64)  # decoders whose last token came elsewhere
    n_fresh = np.zeros(m, np.int64)
    pass_req = np.full((m, max_batch_cap), -1, np.int64)  # requests with a prefill chunk in the pass
    pass_n = np.zeros(m, np.int64)
    pass_dec = np.zeros(m, np.int64)  # decoding requests in the pass
    # Request polling (P_RECV_INTERVAL, SGLang's --scheduler-recv-interval): an instance sees the
    # requests queued up to its last poll only; queued_at is when each reached its queue.
    queued_at = np.zeros(n, np.float64)
    poll_t = np.zeros(m, np.float64)
    since_poll = np.zeros(m, np.int64)  # decode-only passes since the last poll
    last_pf = np.zeros(m, np.bool_)  # the instance's last pass carried prefill chunks
    # Attention-DP balancing (P_ADP_TIMEOUT): passes each rank held context, and releases granted
    # by another rank of its worker; a worker's ranks follow its kind's first instance.
    adp_wait = np.zeros(m, np.int64)
    adp_go = np.zeros(m, np.bool_)
    bw_count = np.zeros(m, np.int64)  # batch waiting (P_BATCH_WAIT_*): passes context was held
    kind_first = np.full(policy.shape[0], -1, np.int64)
    for i in range(m):
        if kind_first[inst_kind[i]] < 0:
            kind_first[inst_kind[i]] = i

    target = np.zeros(n, np.int64)  # tokens to prefill (isl, or isl + generated after a recompute)
    done_pf = np.zeros(n, np.int64)
    generated = np.zeros(n, np.int64)  # valid while not decoding; decoding: g0 + dec_pass - p0
    g0 = np.zeros(n, np.int64)
    p0 = np.zeros(n, np.int64)
    decoding = np.zeros(n, np.bool_)
    is_fresh = np.zeros(n, np.bool_)
    gone = np.zeros(n, np.bool_)
    kv_alloc = np.zeros(n, np.float64)  # KV reserved at admission (incremental: + 1 per decoding pass)
    chunk = np.zeros(n, np.int64)  # prefill tokens of the request in the current pass
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
    completed = 0
    iterations = 0
    t = 0.0

    # Early stop (``watch``): watched requests done so far and in total, TTFT and TPOT violators
    # among them, and the next request whose TTFT deadline the clock has not yet passed.
    watching = watch.shape[0] == n and clients == 0
    n_watched = 0
    if watching:
        for r in range(n):
            if watch[r]:
                n_watched += 1
    watched_done = 0
    ttft_viol = 0
    tpot_viol = 0
    deadline = 0
    stop = STOP_NONE
    memo_gap = -1.0
    memo_bin = 0
    dlog_n = 0
    # Scratch for one pass's chunks.
    ch_new = np.zeros(max_batch_cap, np.float64)
    ch_pre = np.zeros(max_batch_cap, np.float64)

    # Requests are sent in index order: open loop at their arrival times; closed loop the first
    # wave at t = 0 and the rest as requests complete. Each reaches the engines' queues
    # request_overhead_ms after it was sent (tokenization, HTTP, the frontend).
    if clients > 0:
        first = min(clients, n)
        for r in range(first):
            t_arrive[r] = 0.0
        issued = first
    else:
        for r in range(n):
            t_arrive[r] = arrival_ms[r]
        issued = n
    route_from = 0
    route_to = issued

    while True:
        if watching:
            # Requests past their TTFT deadline: late if the first token is still to come (it
            # comes at or after t) or came late.
            while deadline < n and t - t_arrive[deadline] > ttft_limit_ms:
                if watch[deadline] and (
                    t_first[deadline] < 0 or t_first[deadline] - t_arrive[deadline] > ttft_limit_ms
                ):
                    ttft_viol += 1
                deadline += 1
            if ttft_viol >= ttft_fail_at:
                stop = STOP_TTFT
                break
            if tpot_viol >= tpot_fail_at:
                stop = STOP_TPOT
                break
            if watched_done == n_watched:
                stop = STOP_WATCHED_DONE
                break
        # --- route the requests that have reached the engines, then the KV transfers that have
        # landed (to the least-loaded decode instance) ---
        while True:
            if route_from < route_to and t_arrive[route_from] + request_overhead_ms <= t:
                r = route_from
                route_from += 1
                target[r] = isl[r]
                role = ROLE_PREFILL if disagg else ROLE_AGG
            elif heap_n > 0 and heap_t[0] <= t:
                r, heap_n = _heap_pop(heap_t, heap_r, heap_n)
                role = ROLE_DECODE
            else:
                break
            queued_at[r] = t
            n_woken = _route(r, role, inst_role, inst_kind, policy, pending, iter_end, inst_of, wake,
                             woken, n_woken, head, tail, nxt, qlen)  # fmt: skip
            queued_total += 1

        # --- start a pass on every idle instance whose state changed, in instance order ---
        for w_idx in range(n_woken):
            i = woken[w_idx]
            wake[i] = False
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
            pull = policy[k, P_PULL] > 0
            q = m + role if pull else i
            # The engine polls before forming a pass: always at interval 1; else after a pass with
            # prefill, when nothing decodes (its idle loop spins at once) or after N decode passes.
            if policy[k, P_RECV_INTERVAL] <= 1.0 or last_pf[i] or n_dec[i] == 0:
                poll_t[i] = t
                since_poll[i] = 0
            else:
                since_poll[i] += 1
                if since_poll[i] >= policy[k, P_RECV_INTERVAL]:
                    poll_t[i] = t
                    since_poll[i] = 0
            ctx_ok = True
            if policy[k, P_ADP_TIMEOUT] > 0 and role != ROLE_DECODE:
                ranks = int(policy[k, P_ADP_RANKS])
                base = kind_first[k] + (i - kind_first[k]) // ranks * ranks
                ctx_ok = _adp_balance(i, base, ranks, policy[k, P_ADP_TIMEOUT], max_batch,
                                      full and role == ROLE_AGG, block, kv_cap, q if pull else -1,
                                      adp_wait, adp_go, n_dec, n_pf, nrun, qlen, head, queued_at,
                                      poll_t, target, osl, kv_used)  # fmt: skip

            # Engines that do not mix run a prefill-only pass whenever a running request is
            # mid-prefill or the queue head could be admitted now.
            prefill_pass = (
                role != ROLE_DECODE
                and not mixed
                and ctx_ok
                and _ctx_ready(i, q, max_batch, full and role == ROLE_AGG, block, kv_cap, n_pf, nrun,
                               qlen, head, queued_at, poll_t, target, osl, kv_used)
            )  # fmt: skip

            d = 0
            kv_sum = 0.0
            p_tokens = 0.0
            n_chunks = 0
            pass_n[i] = 0
            if not prefill_pass and n_dec[i] > 0:
                # Every decoding request gains one token. With incremental KV each needs one more
                # token of cache; when that runs out the most recently admitted request is
                # preempted (recompute: the tokens it has become its prompt) until it fits.
                if not full:
                    while n_dec[i] > 0 and kv_used[i] + n_dec[i] > kv_cap and nrun[i] > 0:
                        slot = nrun[i] - 1
                        v = run[i, slot]
                        alloc = kv_alloc[v]
                        if decoding[v]:
                            generated[v] = g0[v] + dec_pass[i] - p0[v]
                            alloc += dec_pass[i] - p0[v]
                            n_dec[i] -= 1
                            kv_lin[i] -= isl[v] + g0[v] - p0[v]
                            if is_fresh[v]:
                                for f in range(n_fresh[i]):
                                    if fresh[i, f] == v:
                                        fresh[i, f] = fresh[i, n_fresh[i] - 1]
                                        n_fresh[i] -= 1
                                        break
                                is_fresh[v] = False
                            else:
                                w_steady[i] -= itl_weight[v]
                            decoding[v] = False
                        else:
                            n_pf[i] -= 1
                        kv_used[i] -= alloc
                        kv_total -= alloc
                        kv_alloc[v] = 0.0
                        target[v] = isl[v] + generated[v]
                        done_pf[v] = 0
                        preemptions[v] += 1
                        run[i, slot] = -1
                        nrun[i] -= 1
                        running_total -= 1
                        if pull:
                            # Back to the shared queue: any instance may take it next.
                            pending[i] -= 1
                            inst_of[v] = -2 - role
                        _push_front(q, v, head, tail, nxt, qlen)
                        queued_total += 1
                    kv_used[i] += n_dec[i]
                    kv_total += n_dec[i]
                d = n_dec[i]
                kv_sum = kv_lin[i] + d * dec_pass[i]
                if role != ROLE_DECODE:
                    budget -= d
            ctx_ok = ctx_ok or d == 0  # held context never leaves a rank idle
            wait_iters = policy[k, P_BATCH_WAIT_ITERS]
            wait_ratio = policy[k, P_BATCH_WAIT_RATIO]
            waits = (wait_iters > 0 or wait_ratio > 0) and role != ROLE_DECODE
            if waits and ctx_ok and d > 0 and policy[k, P_ADP_RANKS] <= 1:
                # TRT-LLM waits only without attention DP, and only with context and decodes.
                # (P_ADP_RANKS counts dp x pp lanes: a pp > 1 worker is skipped too; no replay has one.)
                tokens = _ctx_tokens(i, q, budget, max_batch, chunked, full and role == ROLE_AGG,
                                     block, kv_cap, run, nrun, decoding, done_pf, target, n_pf,
                                     qlen, head, nxt, queued_at, poll_t, osl, kv_used, pass_req[i],
                                     ch_new, ch_pre)  # fmt: skip
                if tokens > 0:
                    ctx_ok = _batch_wait(i, tokens + d, wait_iters, wait_ratio,
                                         policy[k, P_MAX_TOKENS], bw_count)  # fmt: skip

            if role != ROLE_DECODE and (prefill_pass or mixed) and ctx_ok and n_pf[i] > 0:
                # Running requests mid-prefill continue first, in admission order.
                n_chunks, p_tokens = _mid_prefill_chunks(i, budget, run, nrun, decoding, done_pf,
                                                         target, pass_req[i], ch_new, ch_pre)  # fmt: skip
                budget -= p_tokens
                for c in range(n_chunks):
                    chunk[pass_req[i, c]] = int(ch_new[c])
            if role == ROLE_DECODE or ((prefill_pass or mixed) and ctx_ok):
                # Admit from the queue in FIFO order while the batch, token budget and KV allow.
                while qlen[q] > 0 and nrun[i] < max_batch:
                    r = head[q]
                    if queued_at[r] > poll_t[i]:
                        break  # not polled yet
                    if role == ROLE_DECODE:
                        if budget < 1:
                            break
                        # The prompt's KV arrives with the request; this pass writes one more token.
                        need = _blocks(isl[r] + osl[r], block) if full else _blocks(isl[r], block)
                        grow = 0.0 if full else 1.0
                    else:
                        if budget <= 0:
                            break
                        if not chunked and target[r] > budget:
                            break
                        extra = osl[r] if full and role == ROLE_AGG else 0
                        need = _blocks(target[r] + extra, block)
                        grow = 0.0
                    if kv_used[i] + need + grow > kv_cap:
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
                    kv_used[i] += need + grow
                    kv_total += need + grow
                    if role == ROLE_DECODE:
                        # It decodes in this pass; its last token came from the prefill worker.
                        done_pf[r] = target[r]
                        _start_decoding(i, r, decoding, g0, p0, generated, dec_pass, kv_lin, n_dec,
                                        next_fin, isl, osl)  # fmt: skip
                        is_fresh[r] = True
                        fresh[i, n_fresh[i]] = r
                        n_fresh[i] += 1
                        d += 1
                        kv_sum += isl[r] + generated[r]
                        budget -= 1
                    else:
                        n_pf[i] += 1
                        c = min(target[r], int(budget))
                        chunk[r] = c
                        pass_req[i, n_chunks] = r
                        ch_new[n_chunks] = c
                        ch_pre[n_chunks] = 0.0
                        n_chunks += 1
                        p_tokens += c
                        budget -= c

            if d == 0 and n_chunks == 0:
                continue  # idle until something arrives
            pass_n[i] = n_chunks
            pass_dec[i] = d
            last_pf[i] = n_chunks > 0
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
            ev_n = _heap_push(ev_t, ev_i, ev_n, t + dur, i)
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

        n_woken = 0
        # --- next event: the earliest pass end, arrival or landed transfer ---
        tn = ev_t[0] if ev_n > 0 else INF
        if route_from < route_to and t_arrive[route_from] + request_overhead_ms < tn:
            tn = t_arrive[route_from] + request_overhead_ms
        if heap_n > 0 and heap_t[0] < tn:
            tn = heap_t[0]
        if tn == INF:
            break
        t = tn

        # --- finish every pass ending now (in instance order) ---
        while ev_n > 0 and ev_t[0] == t:
            i, ev_n = _heap_pop(ev_t, ev_i, ev_n)
            iter_end[i] = INF
            n_woken = _wake(i, wake, woken, n_woken)
            role = inst_role[i]
            full = policy[inst_kind[i], P_RESERVE_FULL] > 0
            n_gone = 0
            d = pass_dec[i]
            pass_dec[i] = 0
            if d > 0:
                # Lazy decode: the pass gave every decoding request a token. Those whose last token
                # ended the previous decoding pass share one gap; the others are binned one by one.
                dec_pass[i] += 1
                tokens_out += d
                if dlog_n < dlog_t.shape[0]:
                    dlog_t[dlog_n] = t
                    dlog_i[dlog_n] = i
                    dlog_n += 1
                if w_steady[i] > 0:
                    gap = t - last_dec_end[i]
                    if gap != memo_gap:
                        memo_gap = gap
                        memo_bin = _itl_bin(gap)
                    itl_hist[memo_bin] += w_steady[i]
                for f in range(n_fresh[i]):
                    r = fresh[i, f]
                    itl_hist[_itl_bin(t - last_tok[r])] += itl_weight[r]
                    is_fresh[r] = False
                    w_steady[i] += itl_weight[r]
                n_fresh[i] = 0
                last_dec_end[i] = t
                if dec_pass[i] >= next_fin[i]:
                    # Someone finished: find them, and the next earliest finish.
                    nf = np.iinfo(np.int64).max
                    for s in range(nrun[i]):
                        r = run[i, s]
                        if not decoding[r]:
                            continue
                        fin = p0[r] + osl[r] - g0[r]
                        if fin <= dec_pass[i]:
                            gone[r] = True
                            n_gone += 1
                        elif fin < nf:
                            nf = fin
                    next_fin[i] = nf
            for j in range(pass_n[i]):
                r = pass_req[i, j]
                done_pf[r] += chunk[r]
                chunk[r] = 0
                if done_pf[r] < target[r]:
                    continue
                # The pass that completes a prefill samples a token.
                n_pf[i] -= 1
                if t_first[r] < 0:
                    t_first[r] = t
                else:
                    itl_hist[_itl_bin(t - last_tok[r])] += itl_weight[r]
                generated[r] += 1
                tokens_out += 1.0
                last_tok[r] = t
                if generated[r] >= osl[r] or role == ROLE_PREFILL:
                    gone[r] = True
                    n_gone += 1
                    continue
                _start_decoding(i, r, decoding, g0, p0, generated, dec_pass, kv_lin, n_dec, next_fin,
                                isl, osl)  # fmt: skip
                if d > 0:
                    w_steady[i] += itl_weight[r]  # its token ended this decoding pass
                else:
                    is_fresh[r] = True
                    fresh[i, n_fresh[i]] = r
                    n_fresh[i] += 1
            pass_n[i] = 0
            if n_gone == 0:
                continue
            # Requests leaving the instance: free their KV, keep the others in admission order.
            w = 0
            for s in range(nrun[i]):
                r = run[i, s]
                if not gone[r]:
                    run[i, w] = r
                    w += 1
                    continue
                gone[r] = False
                alloc = kv_alloc[r]
                if decoding[r]:
                    generated[r] = g0[r] + dec_pass[i] - p0[r]
                    if not full:
                        alloc += dec_pass[i] - p0[r]
                    n_dec[i] -= 1
                    kv_lin[i] -= isl[r] + g0[r] - p0[r]
                    w_steady[i] -= itl_weight[r]
                    decoding[r] = False
                kv_used[i] -= alloc
                kv_total -= alloc
                kv_alloc[r] = 0.0
                running_total -= 1
                pending[i] -= 1
                if generated[r] >= osl[r]:
                    last_tok[r] = t
                    t_done[r] = t
                    completed += 1
                    if watching and watch[r]:
                        watched_done += 1
                        if osl[r] > 1 and (t - t_first[r]) / (osl[r] - 1) > tpot_limit_ms:
                            tpot_viol += 1
                    if clients > 0 and issued < n:
                        t_arrive[issued] = t
                        issued += 1
                        route_to = issued
                else:
                    # Prefill done on a disaggregated prefill worker: ship the KV to decode.
                    heap_n = _heap_push(
                        heap_t, heap_r, heap_n, t + xfer_fixed_ms + xfer_ms_per_token * isl[r], r
                    )
            for s in range(w, nrun[i]):
                run[i, s] = -1
            nrun[i] = w
            if n_dec[i] == 0:
                w_steady[i] = 0.0  # no float residue from adding and removing weights
    if out_p0.shape[0] == n:
        for r in range(n):
            out_p0[r] = p0[r]
            out_g0[r] = g0[r]
            out_inst[r] = inst_of[r]
    return iterations, tl_rows, tl_stride, dlog_n, stop
