"""servopt.run_result: the typed result of a run. Its annotations are the truth about a real run."""

import types
import typing

import pytest

from servopt.config.schema import Experiment
from servopt.error_bands import PessimisticFactors
from servopt.errors import ServoptError
from servopt.evaluate.workers import WorkerTable
from servopt.models.arch import ModelArch
from servopt.run_result import ExperimentRun, RunResult
from servopt.search.result import Deployment, ModeResult

# The names the module imports for type checkers only.
TYPE_NAMES = {
    "Experiment": Experiment,
    "ModelArch": ModelArch,
    "WorkerTable": WorkerTable,
    "Deployment": Deployment,
    "ModeResult": ModeResult,
    "PessimisticFactors": PessimisticFactors,
}


def _check(value, hint, where: str) -> None:
    """``value`` is an instance of ``hint`` (classes, ``X | None``, list/dict of those)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is None:
        assert isinstance(value, hint), f"{where}: {type(value).__name__} is not {hint}"
    elif origin in (typing.Union, types.UnionType):
        assert any(_fits(value, a) for a in args), f"{where}: {type(value).__name__} is not {hint}"
    elif origin is list:
        assert isinstance(value, list), where
        for i, item in enumerate(value):
            _check(item, args[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), where
        for k, v in value.items():
            _check(k, args[0], f"{where} key")
            _check(v, args[1], f"{where}[{k!r}]")
    else:  # pragma: no cover - a new kind of annotation: teach _check
        raise AssertionError(f"{where}: cannot check {hint}")


def _fits(value, hint) -> bool:
    try:
        _check(value, hint, "")
    except AssertionError:
        return False
    return True


def test_every_field_of_a_real_run_has_its_declared_type(qwen8_result):
    _, result = qwen8_result
    hints = typing.get_type_hints(ExperimentRun, localns=TYPE_NAMES)
    assert set(hints) == {f for f in ExperimentRun.__dataclass_fields__}
    assert result.runs and all(r.top for r in result.feasible)
    for run in result.runs:
        for name, hint in hints.items():
            _check(getattr(run, name), hint, f"{run.name}.{name}")
    assert typing.get_type_hints(RunResult, localns=TYPE_NAMES) == {"runs": list[ExperimentRun]}


def test_the_checker_rejects_a_wrong_type():
    # The test above can fail: a row dict where a Deployment belongs is caught.
    hint = typing.get_type_hints(ExperimentRun, localns=TYPE_NAMES)["top"]
    with pytest.raises(AssertionError, match="is not"):
        _check([{"tokens_per_s_per_gpu": 1.0}], hint, "top")


def test_winner_is_the_best_identical_deployment_and_names_are_looked_up(qwen8_result):
    _, result = qwen8_result
    best = max(r.mode.identical.tokens_per_s_per_gpu for r in result.runs if r.mode is not None)
    assert result.winner.mode.identical.tokens_per_s_per_gpu == best
    assert result.run(result.runs[0].name) is result.runs[0]
    with pytest.raises(ServoptError, match="no such experiment"):
        result.run("nope")
