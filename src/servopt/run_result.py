"""What one search run produced, typed and unrendered: per experiment its worker tables and the
search's deployments.

``pipeline`` builds it and ``report`` renders every document from it (the JSON document, tables,
CSV, deployment files), so neither imports the other's code for it. The field types come from
config, models, evaluate and search; they are imported for type checkers only, so this module (and
report, which reads it) loads none of those packages at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from servopt.errors import ServoptError

if TYPE_CHECKING:
    from servopt.config.schema import Experiment
    from servopt.error_bands import PessimisticFactors
    from servopt.evaluate.workers import WorkerTable
    from servopt.models.arch import ModelArch
    from servopt.search.result import Deployment, ModeResult


@dataclass
class ExperimentRun:
    """Everything one experiment produced; ``mode`` is None when nothing met the targets (then
    ``infeasible`` says why)."""

    experiment: Experiment
    arch: ModelArch
    versions: dict[str, str]  # role -> resolved backend version
    tables: dict[str, WorkerTable]  # role (agg | prefill | decode) -> its evaluated candidates
    mode: ModeResult | None
    infeasible: str | None
    # The best identical deployment of each parallel layout (agg) or decode layout (disagg), best
    # first, at most top_n: the rows of the top table.
    top: list[Deployment] = field(default_factory=list)
    # role -> measured rows its database borrows from other data versions (perf_db.sources)
    borrowed: dict[str, list[dict]] = field(default_factory=dict)
    # The calibration profile applied, per worker role its scope and parameters
    # (servopt.calibrate.model.worker_adjustments); None = the raw model (calibration: none).
    calibration: dict | None = None
    # The profile's 80% error bands (metric -> scope -> [low, high] log(measured / predicted)) and
    # the backend's pessimistic factors; None for the raw model or a profile without bands.
    bands: dict | None = None
    factors: PessimisticFactors | None = None
    # Which end of the band ``mode`` and ``top`` were searched at: "nominal" (the predictions) or
    # "pessimistic" (--robust). ``other`` is the selection redone at the other end on the same
    # candidates (None when nothing met the targets there; then ``other_infeasible`` says why).
    planned_at: str = "nominal"
    other: ModeResult | None = None
    other_infeasible: str | None = None

    @property
    def name(self) -> str:
        return self.experiment.name


@dataclass
class RunResult:
    """Every experiment of a run, in the order given; at least one is feasible."""

    runs: list[ExperimentRun]

    @property
    def feasible(self) -> list[ExperimentRun]:
        return [r for r in self.runs if r.mode is not None]

    @property
    def winner(self) -> ExperimentRun:
        """The experiment whose identical-replica deployment gives the most tokens/s per GPU."""
        return max(self.feasible, key=lambda r: r.mode.identical.tokens_per_s_per_gpu)

    def run(self, name: str) -> ExperimentRun:
        for r in self.runs:
            if r.name == name:
                return r
        raise ServoptError("experiment", name, "no such experiment in this run", [r.name for r in self.runs])
