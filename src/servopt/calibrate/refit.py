"""Measurements -> a calibration profile and its cross-validation report (``servopt calibrate``).

The same function builds the shipped default profile (from the shipped public measurements) and a
user's, so refitting the shipped data reproduces the shipped file (up to ``provenance.created``).
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

import servopt
from servopt.calibrate import cv
from servopt.calibrate.fit import Sample, _neutral_index, fit, fit_settings, grid_runs, make_samples
from servopt.calibrate.ingest import file_format, read_results
from servopt.calibrate.model import Profile
from servopt.calibrate.public_csv import SHIPPED, shipped_measurements
from servopt.calibrate.setups import SKIP_REASONS, Setup, fit_skip, to_setup
from servopt.calibrate.sidecar import SIDECAR
from servopt.errors import ServoptError


@dataclass
class Calibration:
    profile: Profile
    samples: list[Sample]
    tables: dict[str, list[dict]]  # "in-sample" / "leave one source out" / ... -> error_table rows
    coverage: list[dict]
    excluded: dict
    unfitted: list[str]
    skipped: int
    skip_reasons: dict[str, int]  # setups.SKIP_REASONS -> records, in that order


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def calibrate(
    records, inputs: list[tuple[str, bytes]], folds: tuple[str, ...] = ("source", "layout"), threads=None
) -> Calibration:
    """Fit on every record that maps to a setup; cross-validate by each of ``folds``."""
    mapped = [to_setup(r) for r in records]
    disagg = [m for m in mapped if isinstance(m, Setup) and m.mode == "disagg"]
    # Bursts and open loops are evaluated (experiments/validate_reality.py), not fitted: fit_skip.
    mapped = [(fit_skip(m) or m) if isinstance(m, Setup) else m for m in mapped]
    setups = [m for m in mapped if isinstance(m, Setup)]
    if not setups:
        why = sorted({f"{m.reason}: {m.detail}" for m in mapped})
        raise ServoptError(
            "files", len(records), "no record maps to a setup servopt can simulate", tuple(why)
        )
    samples = make_samples(setups)
    runs = grid_runs(samples, threads=threads)
    result = fit(samples, runs)
    tables = {
        "in-sample (the profile's own records)": cv.error_table(samples, _held(samples, runs, result.profile))
    }
    coverage, bands = [], {}
    band_fold = next((by for by in cv.BAND_FOLDS if by in folds), None)
    for by in folds:
        held = cv.cross_validate(samples, runs, by)
        tables[f"leave one {by} out (held out of the fit)"] = cv.error_table(samples, held)
        if by == band_fold:
            # A user's prediction names no harness: the scope's request overhead.
            res = cv.residuals(samples, held.unseen)
            # Bands for engines like servopt's data: version-gap sources are not in them (listed).
            keep = [i for i, s in enumerate(samples) if (s.source, s.backend) not in result.excluded]
            bands = cv.band_quantiles(samples, res, keep)
            coverage = cv.coverage(samples, res, frozenset(result.excluded))
    bands_disagg, disagg_counts = _disagg_bands(disagg, result)
    unpriced = [s for s in samples if s.replay is None or s.failure]
    provenance = {
        "servopt_version": servopt.__version__,
        "created": datetime.date.today().isoformat(),
        "inputs": [{"file": name, "sha256": sha256_of(data)} for name, data in inputs],
        "measurements_read": len(records),
        "measurements_mapped": len(setups),
        "measurements_priced": len(samples) - len(unpriced),
        "measurements_fitted": len(result.fitted_on),
        "not_fitted_on": [
            {"source": src, "backend": be, "why": why} for (src, be), why in sorted(result.excluded.items())
        ],
        "scopes_not_fitted": result.unfitted,
        "fit": fit_settings(),
        "statistics": {title: _summary(rows) for title, rows in tables.items()},
        "bands_from": (
            f"leave one {band_fold} out residuals of predictions with no harness named (the scope's "
            "request overhead, the median of its harness values)"
            if band_fold
            else None
        ),
        "band_coverage_held_out": {
            row["source"]: {label: [int(v) for v in row[label]] for label in cv.LABELS} for row in coverage
        },
        "bands_disagg_from": {
            "why": "residuals of the disaggregated (xPyD) records, never fitted on, predicted with no "
            "harness named (the scope's request overhead)",
            **disagg_counts,
        },
    }
    profile = replace(result.profile, provenance=provenance, bands=bands, bands_disagg=bands_disagg)
    reasons = [m.reason for m in mapped if not isinstance(m, Setup)]
    skip_reasons = {r: reasons.count(r) for r in SKIP_REASONS if r in reasons}
    return Calibration(
        profile,
        samples,
        tables,
        coverage,
        result.excluded,
        result.unfitted,
        len(records) - len(setups),
        skip_reasons,
    )


def _disagg_bands(setups: list[Setup], result) -> tuple[dict, dict]:
    """The disaggregated records' 80% bands (split-conformal: the fit never saw them) and how many
    records made them; a metric without residuals is left out (disagg keeps the agg band for it)."""
    samples = make_samples(setups)
    res = cv.residuals(samples, cv.unseen(samples, result.profile)) if samples else np.empty((0, 3))
    keep = [i for i, s in enumerate(samples) if (s.source, s.backend) not in result.excluded]
    bands = {m: per for m, per in cv.band_quantiles(samples, res, keep).items() if per}
    priced = [i for i in keep if np.isfinite(res[i]).any()]
    return bands, {"records_mapped": len(setups), "records_priced": len(priced)}


def _held(samples, runs, profile) -> cv.HeldOut:
    return cv.HeldOut(runs[:, _neutral_index(), :3].copy(), cv.in_sample(samples, runs, profile), [])


def _summary(rows: list[dict]) -> dict:
    """The overall row of an error table, rounded (what the provenance keeps)."""
    overall = rows[-1]
    out = {"rows": overall["rows"]}
    for label in cv.LABELS:
        for kind in ("raw", "cal"):
            for stat in ("med", "p90"):
                v = overall[f"{label} {kind} {stat}"]
                out[f"{label} {kind} {stat}"] = None if v is None else round(float(v), 4)
    return out


def read_inputs(paths: list[Path]):
    """Records and (file name, bytes) of each measurements file; the shipped file when none."""
    if not paths:
        ref = resources.files("servopt.calibrate").joinpath("data", SHIPPED)
        return shipped_measurements(), [(SHIPPED, ref.read_bytes())]
    records, inputs = [], []
    for p in paths:
        records += read_results(p)
        if file_format(Path(p)) != "csv":
            # A benchmark tool's file; its deployment comes from the servopt_setup.yaml beside it.
            sidecar = Path(p).parent / SIDECAR
            inputs.append((f"{Path(p).parent.name}/{SIDECAR}", sidecar.read_bytes()))
        inputs.append((Path(p).name, Path(p).read_bytes()))
    return records, inputs
