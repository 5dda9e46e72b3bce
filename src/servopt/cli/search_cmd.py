"""``servopt cli default`` and ``servopt cli exp``: the search, from flags or from an experiment YAML."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import typer

from servopt.cli import options
from servopt.limits import MAX_TOTAL_GPUS, MIN_TOTAL_GPUS

JSON_HELP = "Print one JSON document on stdout (no tables, no progress)."


COMPOSITION_HELP = (
    "menu: exact best replica per size, CP-SAT packs (default, fastest); "
    "cpsat: one CP-SAT model also chooses the x prefill + y decode composition."
)

# Options both search commands take (typer reads one declaration per parameter; sharing is fine).
TOP_N = typer.Option(
    5,
    "--top_n",
    "--top-n",
    min=1,
    help="Rows per table: the best deployment of each parallel layout (fewer when fewer meet the targets).",
)
MAX_REPLICA_TYPES = typer.Option(
    2, "--max_replica_types", "--max-replica-types", min=1, help="Replica shapes in the packed deployment."
)
SAVE_DIR = typer.Option(
    None,
    "--save_dir",
    "--save-dir",
    help="Also write the results, plots, the resolved config.yaml and deployment files under this folder.",
)
PERF_DB = options.perf_db_option()
COMPOSITION = typer.Option("menu", "--composition", help=COMPOSITION_HELP)
AS_JSON = typer.Option(False, "--json", help=JSON_HELP)
# The search's report options, in --help order, both commands take: (parameter, type, option).
REPORT = (
    ("top_n", int, TOP_N),
    ("max_replica_types", int, MAX_REPLICA_TYPES),
    ("save_dir", str | None, SAVE_DIR),
    ("perf_db", str | None, PERF_DB),
    ("composition", str, COMPOSITION),
    ("as_json", bool, AS_JSON),
)
VERBOSE = typer.Option(False, "--verbose", "-v", help="Debug logging (enumerated layouts).")
CALIBRATION = options.calibration_option()
EXP_CALIBRATION = options.calibration_option(
    None, help_extra=" Overrides every experiment's calibration key (absent: default)."
)
ROBUST = typer.Option(
    False,
    "--robust",
    help="Plan against the pessimistic end of the calibration's 80% error band (TTFT and TPOT at "
    "their high end, throughput at its low end); the report compares with the nominal plan.",
)


def _run_and_report(
    experiments, *, top_n, max_replica_types, save_dir, as_json, perf_db, composition="menu"
) -> None:
    from servopt.cli.startup import build_kernels_in_background, import_cp_model_without_pandas, start_kernels
    from servopt.resources import cache_dir

    cache_root = cache_dir(perf_db)
    aot_active = start_kernels(cache_root)
    import_cp_model_without_pandas()
    from servopt.pipeline import result_document, run_experiments
    from servopt.search.settings import SolverSettings

    settings = SolverSettings(composition=composition)
    if as_json:  # no progress, no tables: rich is not even imported
        result = run_experiments(
            experiments, top_n=top_n, max_replica_types=max_replica_types, perf_db=perf_db, settings=settings
        )
    else:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        err = Console(stderr=True)
        with Progress(
            TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(), console=err, transient=True
        ) as bar:
            task = bar.add_task("starting", total=1.0)

            def progress(stage: str, fraction: float) -> None:
                bar.update(task, description=stage, completed=fraction)

            result = run_experiments(
                experiments,
                progress=progress,
                top_n=top_n,
                max_replica_types=max_replica_types,
                perf_db=perf_db,
                settings=settings,
            )
    doc = result_document(result)
    if save_dir is not None:
        from servopt.report.save import save_run

        where = save_run(
            result,
            doc,
            Path(save_dir),
            top_n=top_n,
            run_options={"max_replica_types": max_replica_types, "composition": composition},
        )
    if as_json:
        typer.echo(json.dumps(doc, default=str))
    else:
        from servopt.cli.output import stdout_console
        from servopt.report.tables import print_report

        print_report(doc, stdout_console(240), top_n=top_n)
        if save_dir is not None:
            # Last, so it is what the user sees; the path alone on its line, never wrapped, so
            # that it can be copied.
            err.print("results saved to:")
            err.print(str(where), soft_wrap=True, markup=False, highlight=False)
    if not aot_active:
        build_kernels_in_background(cache_root)


def _logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(message)s"
    )


@options.with_option_group(REPORT, after="tpot")
def default(
    model: str = options.model_option(),
    total_gpus: int = typer.Option(
        ..., "--total_gpus", "--total-gpus", min=MIN_TOTAL_GPUS, max=MAX_TOTAL_GPUS, help=options.GPUS_HELP
    ),
    system: str = options.system_option(...),
    decode_system: str | None = typer.Option(
        None,
        "--decode_system",
        "--decode-system",
        "--decode_system_name",
        help="GPU system of the disagg decode workers (default: --system).",
    ),
    backend: str = options.backend_option(),
    backend_version: str | None = options.backend_version_option(),
    isl: int = typer.Option(4000, "--isl", min=1, help="Input sequence length."),
    osl: int = typer.Option(1000, "--osl", min=2, help="Output sequence length."),
    ttft: float = typer.Option(1000.0, "--ttft", help="TTFT target in ms (> 0)."),
    tpot: float = typer.Option(40.0, "--tpot", help="TPOT target in ms (> 0)."),
    verbose: bool = VERBOSE,
    calibration: str = CALIBRATION,
    robust: bool = ROBUST,
    request_rate: float | None = typer.Option(
        None,
        "--request_rate",
        "--request-rate",
        help="Size for this load (requests/s): the fewest GPUs (<= --total_gpus) meeting the targets "
        "at the percentiles below, verified by simulation.",
    ),
    concurrency: int | None = typer.Option(
        None,
        "--concurrency",
        help="Size for a closed loop of this many clients (instead of --request_rate): the fewest GPUs "
        "(<= --total_gpus) meeting the percentile targets at that concurrency, verified by simulation.",
    ),
    arrival: str = typer.Option(
        "poisson", "--arrival", help="With --request_rate: poisson, constant, gamma."
    ),
    arrival_cv: float = typer.Option(
        1.0, "--arrival_cv", "--arrival-cv", help="gamma arrivals: coefficient of variation of the gaps."
    ),
    ttft_percentile: float | None = typer.Option(
        None,
        "--ttft_percentile",
        "--ttft-percentile",
        help="With --request_rate: TTFT target percentile (99).",
    ),
    tpot_percentile: float | None = typer.Option(
        None,
        "--tpot_percentile",
        "--tpot-percentile",
        help="With --request_rate: TPOT target percentile (99).",
    ),
    objective: str = typer.Option(
        "min_gpus",
        "--objective",
        help="With a load: min_gpus (fewest GPUs meeting the percentile targets), min_cost (least USD/hour "
        "at --gpu_hour_price, which must price --system and --decode_system) or max_goodput_per_gpu "
        "(--request_rate only: most requests/s meeting both targets per GPU, within --total_gpus; "
        "docs/sizing.md).",
    ),
    num_requests: int = typer.Option(
        2000, "--num_requests", "--num-requests", help="With --request_rate: requests simulated (at least)."
    ),
    seed: int = typer.Option(0, "--seed", help="With --request_rate: seed of the simulated requests."),
    gpu_hour_price: str | None = typer.Option(
        None,
        "--gpu_hour_price",
        "--gpu-hour-price",
        help="With a load: your USD per GPU-hour, SYSTEM=USD[,SYSTEM=USD] (none ship with servopt); adds "
        "cost per hour and per million output tokens to every answer.",
    ),
    **report,
) -> None:
    """Agg vs disagg for one model on a GPU budget, with the seed's defaults; with --request_rate,
    the fewest GPUs that serve that load within percentile targets."""
    _logging(verbose)
    from servopt.errors import ServoptError

    if request_rate is not None and concurrency is not None:
        raise ServoptError("concurrency", concurrency, "give --request_rate or --concurrency, not both")
    loaded = request_rate is not None or concurrency is not None
    if not loaded and (ttft_percentile is not None or tpot_percentile is not None):
        field = "ttft_percentile" if ttft_percentile is not None else "tpot_percentile"
        value = ttft_percentile if ttft_percentile is not None else tpot_percentile
        raise ServoptError(field, value, "needs --request_rate or --concurrency")
    if not loaded and gpu_hour_price is not None:
        raise ServoptError("gpu_hour_price", gpu_hour_price, "needs --request_rate or --concurrency")
    if robust and calibration == "none":
        raise ServoptError("robust", True, "needs a calibration's error bands; --calibration is none")
    if loaded and robust:
        raise ServoptError(
            "robust",
            True,
            "not yet supported with --request_rate/--concurrency (the answer reports its band)",
        )
    if loaded:
        from servopt.cli.rate_sizing import size_and_report

        size_and_report(
            model=model, total_gpus=total_gpus, system=system, backend=backend,
            backend_version=backend_version, isl=isl, osl=osl, ttft=ttft, tpot=tpot,
            request_rate=request_rate, concurrency=concurrency, arrival=arrival, arrival_cv=arrival_cv,
            ttft_percentile=99.0 if ttft_percentile is None else ttft_percentile,
            tpot_percentile=99.0 if tpot_percentile is None else tpot_percentile,
            objective=objective, num_requests=num_requests, seed=seed, perf_db=report["perf_db"],
            as_json=report["as_json"],
            gpu_hour_price=gpu_hour_price, decode_system=decode_system, calibration=calibration,
        )  # fmt: skip
        return
    from servopt.config import default_experiments

    experiments = default_experiments(
        model,
        total_gpus,
        system,
        decode_system=decode_system,
        backend=backend,
        backend_version=backend_version,
        isl=isl,
        osl=osl,
        ttft=ttft,
        tpot=tpot,
        calibration=calibration,
        robust=robust,
    )
    _run_and_report(experiments, **report)


@options.with_option_group(REPORT, after="yaml_path")
def exp(
    yaml_path: Path = typer.Option(
        ...,
        "--yaml_path",
        "--yaml-path",
        exists=True,
        dir_okay=False,
        help="Experiment YAML (the seed's schema).",
    ),
    verbose: bool = VERBOSE,
    calibration: str | None = EXP_CALIBRATION,
    robust: bool = typer.Option(
        False, "--robust", help="Sets every experiment's robust key (see cli default)."
    ),
    **report,
) -> None:
    """Run every experiment of a YAML file and compare them in one report."""
    _logging(verbose)
    from servopt.config import load_experiments, with_calibration, with_robust
    from servopt.errors import ServoptError

    experiments = load_experiments(yaml_path)
    if calibration is not None:
        experiments = with_calibration(experiments, calibration)
    if robust:
        experiments = with_robust(experiments)
    if any(e.workload is not None for e in experiments):
        if any(e.robust for e in experiments):
            raise ServoptError(
                "robust", True, "not yet supported with a workload (the answer reports its band)"
            )
        from servopt.cli.rate_sizing import size_experiments

        size_experiments(
            experiments, save_dir=report["save_dir"], as_json=report["as_json"], perf_db=report["perf_db"]
        )
        return
    _run_and_report(experiments, **report)
