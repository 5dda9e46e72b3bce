"""Cross-validation of the calibration: leave one source (or one layout) out, refit, predict it.

For every fold the profile is refitted on the other records (screening included: a held-out source
never decides what is fitted) and the held-out records are replayed through the simulator with the
adjustments their scope gets, and the request overhead of their own harness where the fold has
fitted it (a held-out layout's harness is fitted from its other layouts; a held-out source is a
harness the fold has not seen). Uncalibrated = the same replay at neutral. The 80% error bands are
split-conformal: the 10th and 90th percentiles of the held-out log(measured / predicted) residuals,
per backend where it has :data:`MIN_BAND_RESIDUALS` of them, else pooled, of the predictions a user
gets: no harness named, so the scope's request overhead (the median of its harnesses' values), the
harness spread around it counted in the residuals. Residuals against the other harnesses' median
instead (a jackknife) shift the band off the user's prediction when a scope has one or two
harnesses (TRT-LLM's upper TTFT end x2.66 on top of InferenceX's own 110 ms). Their honesty is
checked source by source, with bands built from the other sources' held-out residuals only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from servopt.calibrate.fit import METRICS, Sample, _neutral_index, fit
from servopt.error_bands import band_for
from servopt.errors import ServoptError

LABELS = ("TTFT", "TPOT", "tok/s/GPU")
BAND = (10.0, 90.0)  # an 80% interval
MIN_BAND_RESIDUALS = 20
BAND_FOLDS = ("layout", "source")  # the folds whose residuals make the bands, in preference order
FOLDS: dict[str, Callable[[Sample], str]] = {
    "source": lambda s: s.source,
    "layout": lambda s: s.setup.layout.label,
}


@dataclass
class HeldOut:
    """Per sample (NaN where not priced): predictions (n, 3) raw and calibrated, and the scope used;
    ``unseen``: calibrated with no harness named, the scope's request overhead (the bands')."""

    raw: np.ndarray
    calibrated: np.ndarray
    scope: list[str]
    unseen: np.ndarray | None = None


def _predict(sample: Sample, adj) -> tuple[float, float, float]:
    try:
        out = sample.replay.run(adj)
    except ServoptError:
        return (np.nan, np.nan, np.nan)
    return (out.ttft_ms, out.tpot_ms or np.nan, out.output_tok_s_per_gpu)


def cross_validate(samples: list[Sample], runs: np.ndarray, by: str) -> HeldOut:
    key = FOLDS[by]
    n = len(samples)
    g0 = _neutral_index()
    raw = runs[:, g0, :3].copy()
    cal, unseen = np.full((n, 3), np.nan), np.full((n, 3), np.nan)
    scope = [""] * n
    priced = [i for i in range(n) if np.isfinite(runs[i, g0, 0])]
    for fold in sorted({key(samples[i]) for i in priced}):
        held = [i for i in priced if key(samples[i]) == fold]
        result = fit(samples, runs, [i for i in priced if key(samples[i]) != fold])
        for i in held:
            s = samples[i]
            # The row's own harness where the fold fitted it (never in a source fold).
            adj, label = result.profile.adjustments(s.backend, s.system, s.source)
            scope[i] = label
            cal[i] = _predict(s, adj)
            # What a user's prediction gets: no harness named, the scope's value.
            new, _ = result.profile.adjustments(s.backend, s.system)
            unseen[i] = cal[i] if new == adj else _predict(s, new)
    return HeldOut(raw, cal, scope, unseen)


def unseen(samples: list[Sample], profile) -> np.ndarray:
    """Predictions of records the profile was not fitted on (the disaggregated ones), as a user's:
    the scope's adjustments, no harness named. Their residuals are held out as they stand."""
    out = np.full((len(samples), 3), np.nan)
    for i, s in enumerate(samples):
        if s.replay is not None:
            out[i] = _predict(s, profile.adjustments(s.backend, s.system)[0])
    return out


def in_sample(samples: list[Sample], runs: np.ndarray, profile) -> np.ndarray:
    """Predictions of every sample with the profile fitted on all of them (its own harness's request
    overhead where the profile has it)."""
    out = np.full((len(samples), 3), np.nan)
    for i, s in enumerate(samples):
        if s.replay is None or not np.isfinite(runs[i, _neutral_index(), 0]):
            continue
        out[i] = _predict(s, profile.adjustments(s.backend, s.system, s.source)[0])
    return out


def abs_errors(pred: np.ndarray, measured: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.abs(pred / measured - 1.0)


def _cell(errs: np.ndarray) -> tuple[float | None, float | None, int]:
    e = errs[np.isfinite(errs)]
    if e.size == 0:
        return None, None, 0
    return float(np.median(e)), float(np.percentile(e, 90)), int(e.size)


def error_table(samples: list[Sample], held: HeldOut) -> list[dict]:
    """Rows per (source, backend) and overall: median/p90 |error| per metric, raw vs calibrated."""
    measured = np.stack([s.measured for s in samples])
    raw, cal = abs_errors(held.raw, measured), abs_errors(held.calibrated, measured)
    groups: dict[tuple[str, str], list[int]] = {}
    for i, s in enumerate(samples):
        if np.isfinite(held.calibrated[i]).any():
            groups.setdefault((s.source, s.backend), []).append(i)
    rows = []
    everything = sorted(i for members in groups.values() for i in members)
    for (source, backend), members in [*sorted(groups.items()), (("overall", ""), everything)]:
        row = {"source": source, "backend": backend, "rows": len(members)}
        for m, label in enumerate(LABELS):
            for kind, errs in (("raw", raw), ("cal", cal)):
                med, p90, count = _cell(errs[members, m])
                row[f"{label} {kind} med"], row[f"{label} {kind} p90"] = med, p90
                row[f"{label} n"] = count
        rows.append(row)
    return rows


def format_table(rows: list[dict], title: str) -> str:
    def pct(v):
        return f"{100 * v:5.1f}%" if v is not None else f"{'-':>6}"

    head = "".join(f" | {lab + ' raw':>15} -> {'calibrated':<15}" for lab in LABELS)
    lines = [
        title,
        f"{'source':<28} {'backend':<7} {'rows':>4}{head}",
        f"{'':<41}" + " | med    p90      med    p90  " * 3,
    ]
    for r in rows:
        cells = "".join(
            f" | {pct(r[f'{lab} raw med'])} {pct(r[f'{lab} raw p90'])} -> {pct(r[f'{lab} cal med'])} {pct(r[f'{lab} cal p90'])}"
            for lab in LABELS
        )
        lines.append(f"{r['source'][:28]:<28} {r['backend']:<7} {r['rows']:>4}{cells}")
    return "\n".join(lines)


def residuals(samples: list[Sample], pred: np.ndarray) -> np.ndarray:
    """log(measured / predicted), (n, 3), NaN where either side is missing."""
    measured = np.stack([s.measured for s in samples])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.log(measured / pred)


def band_quantiles(
    samples: list[Sample], res: np.ndarray, idx: list[int]
) -> dict[str, dict[str, list[float]]]:
    """metric -> scope label ("every backend", or a backend) -> [q10, q90] of log residuals."""
    out: dict[str, dict[str, list[float]]] = {}
    for m, metric in enumerate(METRICS):
        per: dict[str, list[float]] = {}
        pooled = res[idx, m][np.isfinite(res[idx, m])]
        if pooled.size:
            per["every backend"] = [round(float(q), 4) for q in np.percentile(pooled, BAND)]
        for backend in sorted({samples[i].backend for i in idx}):
            r = np.array([res[i, m] for i in idx if samples[i].backend == backend])
            r = r[np.isfinite(r)]
            if r.size >= MIN_BAND_RESIDUALS:
                per[backend] = [round(float(q), 4) for q in np.percentile(r, BAND)]
        out[metric] = per
    return out


def coverage(samples: list[Sample], res: np.ndarray, not_in_bands=frozenset()) -> list[dict]:
    """Per held-out source: the share of its residuals inside bands built from the other sources
    (less the (source, backend) pairs in ``not_in_bands``, as the shipped bands are built)."""
    rows = []
    sources = sorted({s.source for i, s in enumerate(samples) if np.isfinite(res[i]).any()})
    total = np.zeros((3, 2))
    for source in sources:
        held = [i for i, s in enumerate(samples) if s.source == source]
        rest = [
            i
            for i, s in enumerate(samples)
            if s.source != source and (s.source, s.backend) not in not_in_bands
        ]
        bands = band_quantiles(samples, res, rest)
        row = {"source": source}
        for m, metric in enumerate(METRICS):
            inside = n = 0
            for i in held:
                band = band_for(bands, metric, samples[i].backend)
                if band is None or not math.isfinite(res[i, m]):
                    continue
                n += 1
                inside += band[0] <= res[i, m] <= band[1]
            row[LABELS[m]] = (inside, n)
            total[m] += (inside, n)
        rows.append(row)
    rows.append({"source": "overall", **{LABELS[m]: (int(total[m, 0]), int(total[m, 1])) for m in range(3)}})
    return rows


def format_coverage(rows: list[dict]) -> str:
    lines = ["80% band coverage per source (bands from the other sources' held-out residuals)"]
    lines.append(f"{'source':<28}" + "".join(f" {lab:>16}" for lab in LABELS))
    for r in rows:
        cells = "".join(
            f" {(f'{100 * a / b:.0f}% ({a}/{b})' if b else '-'):>16}" for a, b in (r[lab] for lab in LABELS)
        )
        lines.append(f"{r['source'][:28]:<28}{cells}")
    return "\n".join(lines)
