"""``servopt emulate``: serve a planned deployment's predicted timings on an OpenAI-compatible endpoint.

The deployment flags are ``cli simulate``'s; the server is FastAPI on uvicorn (the ``web`` extra),
its metrics Prometheus' client library. Binds to loopback unless ``--host`` says otherwise.
"""

from __future__ import annotations

import math

import typer

from servopt.cli import deployment_flags as flags
from servopt.cli import options


@options.with_option_group(flags.SHARED, after="mode")
def emulate(
    model: str = options.model_option(),
    system: str = options.system_option("h200_sxm"),
    backend: str = options.backend_option(),
    backend_version: str | None = options.backend_version_option(),
    mode: str = flags.MODE,
    gemm_quant_mode: str | None = options.quant_option("gemm"),
    moe_quant_mode: str | None = options.quant_option("moe"),
    kvcache_quant_mode: str | None = options.quant_option("kvcache"),
    fmha_quant_mode: str | None = options.quant_option("fmha"),
    max_model_len: int = typer.Option(
        16384,
        "--max_model_len",
        "--max-model-len",
        help="Longest prompt + output served (sizes the step tables).",
    ),
    speedup: float = typer.Option(
        1.0, "--speedup", help="Run the clock K times faster (timings reported in simulated time)."
    ),
    max_in_flight: int = typer.Option(
        1024, "--max_in_flight", "--max-in-flight", help="Requests in flight before 429 + Retry-After."
    ),
    served_model_name: str | None = typer.Option(
        None, "--served_model_name", "--served-model-name", help="Model id in /v1/models (default: --model)."
    ),
    tokenizer: str | None = typer.Option(
        None,
        "--tokenizer",
        help="Count prompt tokens with this tokenizer (tokenizer.json, its folder, or a cached HF repo id) "
        "instead of characters / 4.",
    ),
    request_log: str | None = typer.Option(
        None,
        "--request_log",
        "--request-log",
        help="Append one JSON line per request: when it arrived, when its tokens were due and sent.",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    perf_db: str | None = options.perf_db_option(),
    **shared,
) -> None:
    """Serve /v1/completions and /v1/chat/completions with the simulated deployment's timings."""
    import contextlib
    import gc
    from dataclasses import replace

    import numpy as np

    from servopt.emulate.prompt import chars_over_four, load_tokenizer_counter
    from servopt.emulate.schedule import LiveSchedule
    from servopt.emulate.server import Limits, create_app
    from servopt.errors import ServoptError
    from servopt.simulate.build import build_deployment
    from servopt.simulate.engine import check_fits, run
    from servopt.simulate.workload import Requests

    request_overhead_ms = shared["request_overhead_ms"] or 0.0
    for name, value in (("speedup", speedup), ("request_overhead_ms", request_overhead_ms + 1.0)):
        if not (math.isfinite(value) and value > 0):
            raise ServoptError(
                name, value, "must be a finite number > 0" if name == "speedup" else "must be >= 0"
            )
    if not 2 <= max_model_len <= 1_000_000:
        raise ServoptError("max_model_len", max_model_len, "must be in [2, 1000000]")
    if not 1 <= max_in_flight <= 100_000:
        raise ServoptError("max_in_flight", max_in_flight, "must be in [1, 100000]")
    if not 0 <= port <= 65535:
        raise ServoptError("port", port, "must be in [0, 65535]")
    count = chars_over_four if tokenizer is None else load_tokenizer_counter(tokenizer)
    arch, spec, db, setup, policy, plans = flags.resolve({**locals(), **shared})
    deployment = build_deployment(
        db,
        setup,
        plans,
        max_isl=max_model_len - 1,
        max_osl=max_model_len - 1,
        prompt_lengths=np.zeros(0, dtype=np.int64),
        size_token_budget=shared["max_num_tokens"] is None,
    )
    deployment = replace(deployment, request_overhead_ms=request_overhead_ms)
    # The longest request the server accepts must fit every instance, or it would stall.
    longest = Requests(np.zeros(1), np.array([max_model_len - 1]), np.array([1]))
    check_fits(deployment, longest)
    check_fits(deployment, Requests(np.zeros(1), np.array([1]), np.array([max_model_len - 1])))
    # Compile/load the simulator's kernels now: the first request would otherwise wait for them
    # (~0.3-2 s with the event loop blocked), and so would every request arriving meanwhile.
    run(deployment, Requests(np.zeros(2), np.array([64, 64]), np.array([4, 4])), record_tokens=True)
    # ~150k objects live from here on (perf tables, libraries): a full garbage collection walks them
    # in 150-200 ms with the event loop stopped, and every token due meanwhile goes out late.
    # Frozen, collections see only the objects made while serving.
    gc.collect()
    gc.freeze()
    if request_log is not None:
        try:
            # 1 MiB buffered: a write on the event loop that the kernel throttles (other programs
            # writing a lot) would hold every token back; full lines appear by the MiB and at exit.
            log_file = open(request_log, "a", buffering=1 << 20)  # noqa: SIM115 (closed below)
        except OSError as err:
            raise ServoptError(
                "request_log", request_log, f"must be a writable file ({err.strerror})"
            ) from None
    else:
        log_file = contextlib.nullcontext()
    schedule = LiveSchedule(deployment, speedup=speedup)
    name = served_model_name or model
    limits = Limits(max_in_flight=max_in_flight, max_model_len=max_model_len)
    app = create_app(schedule, name, limits, count=count, request_log=log_file if request_log else None)
    import uvicorn

    typer.echo(
        f"servopt emulate: {arch.name} on {spec.name}/{backend} {db.version}, "
        f"{' + '.join(f'{p.workers} x {p.role} {p.layout.label}' for p in plans)}, speedup {speedup:g}, "
        f"prompt tokens by {tokenizer or 'characters / 4'}: "
        f"http://{host}:{port}/v1",
        err=True,
    )
    with log_file:
        uvicorn.run(app, host=host, port=port, log_level="warning")
