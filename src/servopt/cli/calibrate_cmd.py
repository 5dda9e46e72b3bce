"""``servopt calibrate [FILES...] --out profile.yaml``: fit a calibration profile and cross-validate it.

FILES are measurement CSVs (servopt's structured layout or the public collection's
``source,...,notes`` layout) or benchmark clients' files -- AIPerf exports, ``vllm bench serve
--save-result`` JSON, SGLang ``bench_serving --output-file`` JSONL, GuideLLM JSON reports -- each with
a ``servopt_setup.yaml`` beside it naming model, system, backend and layout, which no client
records (``servopt.calibrate.ingest`` tells the format from the file); none = the public
measurements shipped in the package (which is how the shipped default profile is made). Prints the
fitted parameters, what was not fitted on and why, and the error tables: in-sample, leave one source out, leave one layout out (uncalibrated -> calibrated).
"""

from __future__ import annotations

from pathlib import Path

import typer


def calibrate(
    files: list[Path] = typer.Argument(
        None,
        help="Measurement CSVs or AIPerf / vllm bench serve / SGLang bench_serving / GuideLLM result "
        "files (default: the shipped public ones).",
    ),
    out: Path | None = typer.Option(None, "--out", help="Write the profile (YAML) here."),
    folds: str = typer.Option("source,layout", "--folds", help="Cross-validation folds: source, layout."),
) -> None:
    """Fit request/iteration overheads and a decode scale through the simulator; print CV errors."""
    from servopt.calibrate import cv
    from servopt.calibrate.model import PARAMETERS
    from servopt.calibrate.refit import calibrate as run_calibration
    from servopt.calibrate.refit import read_inputs
    from servopt.errors import ServoptError

    chosen = tuple(f.strip() for f in folds.split(",") if f.strip())
    for f in chosen:
        if f not in cv.FOLDS:
            raise ServoptError("folds", f, "unknown fold", tuple(cv.FOLDS))
    if out is not None and out.exists() and out.is_dir():
        raise ServoptError("out", str(out), "is a folder; give a file path")
    records, inputs = read_inputs(list(files or []))
    result = run_calibration(records, inputs, folds=chosen)
    prof = result.profile
    units = {p.name: p.unit for p in PARAMETERS}
    typer.echo(
        f"{prof.measurements} measurements to fit on ({prof.provenance['measurements_mapped']} mapped of "
        f"{len(records)} read; {result.skipped} skipped by setups.SKIP_REASONS); fitted scopes:"
    )
    if result.skip_reasons:
        typer.echo("  skipped: " + ", ".join(f"{why} {n}" for why, n in result.skip_reasons.items()))
    for fitted in prof.fits:
        vals = ", ".join(f"{k} {v:g} {units[k]}" for k, v in fitted.values.items())
        typer.echo(
            f"  {fitted.scope.label:<22} {vals}  ({fitted.records} records: {', '.join(fitted.sources)})"
        )
        for h in fitted.harnesses:
            typer.echo(
                f"  {'':<22} harness {h.source} / {h.backend}: request_overhead_ms "
                f"{h.request_overhead_ms:g} ms ({h.records} records)"
            )
    for (source, backend), why in sorted(result.excluded.items()):
        typer.echo(f"  not fitted on: {source} / {backend}: {why}")
    for line in result.unfitted:
        typer.echo(f"  scope not fitted: {line}")
    for title, rows in result.tables.items():
        typer.echo("")
        typer.echo(cv.format_table(rows, f"|relative error|, {title}: uncalibrated -> calibrated"))
    if result.coverage:
        typer.echo("")
        typer.echo(cv.format_coverage(result.coverage))
    if out is not None:
        try:
            out.write_text(prof.to_yaml(), encoding="utf-8")
        except OSError as err:
            raise ServoptError("out", str(out), f"cannot be written: {err.__class__.__name__}") from None
        typer.echo(f"\nprofile written: {out}")
