"""The calibration model: a few physical parameters per scope, and the profile that carries them.

A :class:`Profile` holds one parameter set per *scope*: a (backend, system), a backend, or every
backend (the empty scope). A deployment takes the most specific scope that was fitted, else the
neutral values, which reproduce the raw model exactly. A scope may also carry the request overhead
of each benchmark *harness* (a source's way of measuring one backend: :class:`HarnessFit`) it was
fitted on: that offset belongs to the harness, not the engine, so a record of a known harness takes
its own, and a deployment measured any other way takes the scope's (the median of its
harnesses'). The parameters (:data:`PARAMETERS`) are what no per-op table holds; each has a unit,
bounds (what is physically plausible for a modern engine, so that a fit cannot absorb a version gap
into an overhead) and a neutral value.

A profile file is YAML, versioned (``schema: 1``), with its provenance (input files and their sha256,
servopt version, date, the fit's settings and statistics). Loading validates every field and fails
with one line naming it (exit 2); values are finite, within bounds, never NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import yaml

from servopt.calibrate.records import BACKENDS
from servopt.errors import ServoptError
from servopt.simulate.adjust import Adjustments

SCHEMA = 1
KIND = "servopt-calibration"
DEFAULT_PROFILE = "default_profile.yaml"
MAX_PROFILE_BYTES = 4 << 20


class Parameter(NamedTuple):
    name: str
    unit: str
    neutral: float
    low: float
    high: float
    meaning: str


PARAMETERS: tuple[Parameter, ...] = (
    Parameter(
        "request_overhead_ms", "ms", 0.0, 0.0, 1000.0,
        "client send -> engine queue (tokenization, HTTP, frontend, first scheduling); adds to TTFT",
    ),
    # Per-pass CPU cost of an engine with CUDA graphs and an overlapped scheduler is well under a
    # millisecond to a few; 5 ms bounds it so that a 2x slower engine version cannot hide in it.
    Parameter(
        "iteration_overhead_ms", "ms", 0.0, 0.0, 5.0,
        "fixed cost of every forward pass (CPU scheduling, kernel launches)",
    ),
    Parameter(
        "decode_scale", "x", 1.0, 0.8, 1.25,
        "multiplies decode step times (decode-only passes, decode attention in mixed passes)",
    ),
    # Not fitted by default: at one client the measured TTFT sits a constant 100-150 ms above the
    # simulated prefill for 1k and 8k prompts alike, an offset, not a proportion. Fitted on the
    # shipped data (0.6-1.0) it made leave-one-layout-out TTFT worse (docs/reality.md, "Targets").
    Parameter(
        "prefill_scale", "x", 1.0, 0.5, 2.0,
        "multiplies prefill step times (prefill chunks, context attention, mixed passes' token ops)",
    ),
)  # fmt: skip
PARAMETER_NAMES = tuple(p.name for p in PARAMETERS)
NEUTRAL: dict[str, float] = {p.name: p.neutral for p in PARAMETERS}


def check_value(name: str, value: object, where: str) -> float:
    """``value`` as a float within the parameter's bounds, or a one-line error naming ``where``."""
    spec = next(p for p in PARAMETERS if p.name == name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ServoptError(where, value, f"must be a finite number ({spec.unit})")
    if not spec.low <= value <= spec.high:
        raise ServoptError(where, value, f"must be in [{spec.low:g}, {spec.high:g}] {spec.unit}")
    return float(value)


class Scope(NamedTuple):
    """Where a parameter set applies: None = any."""

    backend: str | None = None
    system: str | None = None

    @property
    def label(self) -> str:
        if self.backend is None:
            return "every backend"
        return self.backend if self.system is None else f"{self.backend} on {self.system}"

    def to_dict(self) -> dict:
        return {k: v for k, v in self._asdict().items() if v is not None}


@dataclass(frozen=True)
class HarnessFit:
    """One harness's own request overhead within a scope: the (source, backend) of the records it
    was fitted on, and how many of the scope's records that harness has."""

    source: str
    backend: str
    request_overhead_ms: float
    records: int

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "backend": self.backend,
            "request_overhead_ms": self.request_overhead_ms,
            "records": self.records,
        }


@dataclass(frozen=True)
class ScopeFit:
    """One scope's parameters and how many measurements (from which sources) they were fitted on;
    ``harnesses``: the harnesses with a request overhead of their own (the scope's value is theirs
    for a harness not listed)."""

    scope: Scope
    values: dict[str, float]
    records: int
    sources: tuple[str, ...]
    harnesses: tuple[HarnessFit, ...] = ()

    def adjustments(self) -> Adjustments:
        return Adjustments(**{k: self.values.get(k, NEUTRAL[k]) for k in Adjustments._fields})

    def harness(self, source: str, backend: str) -> HarnessFit | None:
        return next((h for h in self.harnesses if (h.source, h.backend) == (source, backend)), None)


@dataclass(frozen=True)
class Profile:
    """Fitted scopes (most specific wins) plus provenance (free-form, written as is)."""

    fits: tuple[ScopeFit, ...]
    provenance: dict = field(default_factory=dict)
    bands: dict = field(default_factory=dict)  # metric -> scope label -> [low, high] log-ratio
    name: str = "profile"
    # The same shape, from the held-out disaggregated (xPyD) records; empty: disagg uses ``bands``.
    bands_disagg: dict = field(default_factory=dict)

    def bands_for(self, mode: str) -> dict:
        """The error bands of a deployment in ``mode`` (agg | disagg): a disaggregated one takes
        ``bands_disagg`` for each metric it has (older and user profiles may have none: ``bands``)."""
        return {**self.bands, **self.bands_disagg} if mode == "disagg" else self.bands

    @property
    def measurements(self) -> int:
        return int(self.provenance.get("measurements_fitted", 0))

    def lookup(self, backend: str, system: str) -> ScopeFit | None:
        by_scope = {f.scope: f for f in self.fits}
        for scope in (Scope(backend, system), Scope(backend), Scope()):
            if scope in by_scope:
                return by_scope[scope]
        return None

    def adjustments(self, backend: str, system: str, harness: str | None = None) -> tuple[Adjustments, str]:
        """The adjustments for a deployment, and which scope gave them. ``harness``: the source whose
        benchmark measured it, where known (validation, cross-validation): its own request overhead
        if the scope has that harness; predictions for a user's deployment pass none."""
        fit = self.lookup(backend, system)
        if fit is None:
            return Adjustments(), "no fitted scope (neutral)"
        own = fit.harness(harness, backend) if harness is not None else None
        if own is None:
            return fit.adjustments(), fit.scope.label
        adj = fit.adjustments()._replace(request_overhead_ms=own.request_overhead_ms)
        return adj, f"{fit.scope.label}, {harness} harness"

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "kind": KIND,
            "parameters": {
                p.name: {
                    "unit": p.unit,
                    "neutral": p.neutral,
                    "bounds": [p.low, p.high],
                    "meaning": p.meaning,
                }
                for p in PARAMETERS
            },
            "scopes": [
                {
                    "scope": f.scope.to_dict(),
                    **{k: f.values[k] for k in PARAMETER_NAMES if k in f.values},
                    "records": f.records,
                    "sources": list(f.sources),
                    **({"harnesses": [h.to_dict() for h in f.harnesses]} if f.harnesses else {}),
                }
                for f in self.fits
            ],
            "bands": self.bands,
            **({"bands_disagg": self.bands_disagg} if self.bands_disagg else {}),
            "provenance": self.provenance,
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, width=110, allow_unicode=True)


def _fail(where: str, message: str, value: object = None) -> ServoptError:
    return ServoptError(where, value, message)


def profile_from_dict(doc: object, name: str) -> Profile:
    """Validate a parsed profile document; every error names the field (``name: scopes[2].x``)."""
    if not isinstance(doc, dict):
        raise _fail(name, "a calibration profile is a YAML mapping")
    if doc.get("schema") != SCHEMA:
        raise _fail(
            f"{name}: schema", f"must be {SCHEMA} (this servopt reads schema {SCHEMA})", doc.get("schema")
        )
    if doc.get("kind") != KIND:
        raise _fail(f"{name}: kind", f"must be {KIND!r}", doc.get("kind"))
    scopes = doc.get("scopes")
    if not isinstance(scopes, list):
        raise _fail(f"{name}: scopes", "must be a list of fitted scopes")
    fits, seen = [], set()
    for i, entry in enumerate(scopes):
        where = f"{name}: scopes[{i}]"
        if not isinstance(entry, dict):
            raise _fail(where, "must be a mapping")
        unknown = set(entry) - {"scope", "records", "sources", "harnesses", *PARAMETER_NAMES}
        if unknown:
            raise _fail(f"{where}.{sorted(unknown)[0]}", "unknown field", None) from None
        raw_scope = entry.get("scope", {})
        if not isinstance(raw_scope, dict) or set(raw_scope) - {"backend", "system"}:
            raise _fail(f"{where}.scope", "must be a mapping with optional backend and system")
        scope = Scope(raw_scope.get("backend"), raw_scope.get("system"))
        if scope.backend is not None and scope.backend not in BACKENDS:
            raise ServoptError(f"{where}.scope.backend", scope.backend, "unknown backend", BACKENDS)
        if scope.system is not None and (scope.backend is None or not isinstance(scope.system, str)):
            raise _fail(f"{where}.scope.system", "a system scope needs a backend and a system name")
        if scope in seen:
            raise _fail(f"{where}.scope", f"{scope.label} appears twice")
        seen.add(scope)
        values = {k: check_value(k, entry[k], f"{where}.{k}") for k in PARAMETER_NAMES if k in entry}
        records = _count(entry.get("records", 0), f"{where}.records")
        sources = entry.get("sources", [])
        if not isinstance(sources, list) or not all(isinstance(s, str) for s in sources):
            raise _fail(f"{where}.sources", "must be a list of source names")
        harnesses = _harnesses(entry.get("harnesses", []), scope, f"{where}.harnesses")
        fits.append(ScopeFit(scope, values, records, tuple(sources), harnesses))
    bands = _bands(doc.get("bands", {}), f"{name}: bands")
    bands_disagg = _bands(doc.get("bands_disagg", {}), f"{name}: bands_disagg")
    provenance = doc.get("provenance", {}) or {}
    if not isinstance(provenance, dict):
        raise _fail(f"{name}: provenance", "must be a mapping")
    return Profile(tuple(fits), provenance, bands, name, bands_disagg)


def _bands(bands: object, where: str) -> dict:
    """A ``bands`` mapping: metric -> scope label -> [low, high] log-ratios, finite, low <= high."""
    bands = bands or {}
    if not isinstance(bands, dict):
        raise _fail(where, "must be a mapping")
    for metric, per_scope in bands.items():
        if not isinstance(per_scope, dict):
            raise _fail(f"{where}.{metric}", "must be a mapping of scope -> [low, high]")
        for label, pair in per_scope.items():
            ok = (
                isinstance(pair, list)
                and len(pair) == 2
                and all(
                    isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in pair
                )
                and pair[0] <= pair[1]
            )
            if not ok:
                raise _fail(f"{where}.{metric}.{label}", "must be [low, high], finite, low <= high", pair)
    return bands


def _count(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _fail(where, "must be an integer >= 0", value)
    return value


HARNESS_FIELDS = ("source", "backend", "request_overhead_ms", "records")


def _harnesses(entries: object, scope: Scope, where: str) -> tuple[HarnessFit, ...]:
    """A scope's ``harnesses`` list: each a (source, backend) of the scope's backend, once."""
    if not isinstance(entries, list):
        raise _fail(where, "must be a list of harnesses (source, backend, request_overhead_ms, records)")
    out, seen = [], set()
    for k, h in enumerate(entries):
        at = f"{where}[{k}]"
        if not isinstance(h, dict):
            raise _fail(at, "must be a mapping")
        unknown = set(h) - set(HARNESS_FIELDS)
        if unknown:
            raise _fail(f"{at}.{sorted(unknown)[0]}", "unknown field")
        missing = [f for f in HARNESS_FIELDS if f not in h]
        if missing:
            raise _fail(
                f"{at}.{missing[0]}", "missing (a harness has source, backend, request_overhead_ms, records)"
            )
        source, backend = h["source"], h["backend"]
        if not isinstance(source, str) or not source:
            raise _fail(f"{at}.source", "must be a source name", source)
        if backend not in BACKENDS:
            raise ServoptError(f"{at}.backend", backend, "unknown backend", BACKENDS)
        if scope.backend is not None and backend != scope.backend:
            raise ServoptError(f"{at}.backend", backend, f"must be the scope's backend ({scope.backend})")
        if (source, backend) in seen:
            raise _fail(at, f"harness {source} / {backend} appears twice")
        seen.add((source, backend))
        overhead = check_value("request_overhead_ms", h["request_overhead_ms"], f"{at}.request_overhead_ms")
        out.append(HarnessFit(source, backend, overhead, _count(h["records"], f"{at}.records")))
    return tuple(out)


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file (one-line errors, exit 2)."""

    p = Path(path)
    try:
        if not p.is_file():
            raise ServoptError("calibration", str(p), "no such file (give a profile path, default or none)")
        if p.stat().st_size > MAX_PROFILE_BYTES:
            raise ServoptError("calibration", str(p), f"larger than {MAX_PROFILE_BYTES >> 20} MiB")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ServoptError("calibration", str(p), f"cannot be read: {err.__class__.__name__}") from None
    return profile_from_text(text, str(p))


def profile_from_text(text: str, name: str) -> Profile:
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{name}:{mark.line + 1}" if mark is not None else name
        raise ServoptError(
            where, None, f"not valid YAML ({getattr(err, 'problem', None) or 'parse error'})"
        ) from None
    return profile_from_dict(doc, name)


@cache
def default_profile() -> Profile:
    """The profile shipped in the package (fitted on the shipped public measurements)."""
    ref = resources.files("servopt.calibrate").joinpath("data", DEFAULT_PROFILE)
    return profile_from_text(ref.read_text(encoding="utf-8"), "default profile")


def resolve_calibration(value: str | None) -> Profile | None:
    """``--calibration``: ``default`` (or None) = the shipped profile, ``none`` = raw model, else a path."""
    if value is None or value == "default":
        return default_profile()
    if value == "none":
        return None
    return load_profile(value)


def worker_adjustments(
    profile: Profile | None, backend: str, systems: dict[str, str]
) -> tuple[dict[str, Adjustments | None], dict | None]:
    """Per worker role (``systems``: role -> its system), the profile's adjustments for that role's
    (backend, system) scope, and the document that says so (None for the raw model)."""
    if profile is None:
        return dict.fromkeys(systems), None
    adjs, workers = {}, {}
    for role, system in systems.items():
        adj, scope = profile.adjustments(backend, system)
        adjs[role] = adj
        workers[role] = {"system": system, "scope": scope, **adj._asdict()}
    doc = {"profile": profile.name, "measurements": profile.measurements, "workers": workers}
    return adjs, doc


def scope_adjustments(
    profile: Profile | None, backend: str, system: str
) -> tuple[Adjustments | None, dict | None]:
    """One deployment's adjustments (a single (backend, system) scope) and the document that says
    so: ``cli estimate`` and rate sizing. (None, None) for the raw model."""
    if profile is None:
        return None, None
    adj, scope = profile.adjustments(backend, system)
    return adj, {
        "profile": profile.name,
        "scope": scope,
        "measurements": profile.measurements,
        **adj._asdict(),
    }


def calibrated_question(question: dict, calibration: str | None) -> dict:
    """A rate-sizing question (``sizing.question.sizing_doc``'s keywords) with the profile's
    adjustments for its (backend, system) and the document that says so."""
    profile = resolve_calibration(calibration)
    adj, doc = scope_adjustments(profile, question["backend"], question["system"])
    out = {
        **question,
        "adjustments": adj,
        "calibration": doc,
        "bands": None if profile is None else profile.bands,
        "disagg_bands": None if profile is None else profile.bands_for("disagg"),
    }
    decode_system = question.get("decode_system")
    if profile is not None and decode_system not in (None, question["system"]):
        # Disagg decode pools on another system take that system's scope (prefill, agg and the
        # front end's request overhead stay on --system's).
        decode_adj, decode_doc = scope_adjustments(profile, question["backend"], decode_system)
        doc["decode"] = {k: v for k, v in decode_doc.items() if k not in ("profile", "measurements")}
        out["decode_adjustments"] = decode_adj
    return out
