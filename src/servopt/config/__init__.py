"""Experiment configuration: the seed's YAML schema, defaults, profiles and file:line errors.

``load_experiments(path)`` (``cli exp``) and ``default_experiments(model, total_gpus, system, ...)``
(``cli default``) both return fully resolved, frozen ``Experiment`` objects, or raise one
``ConfigError`` (exit code 2) listing every problem.
"""

from servopt.config.catalog import Catalog, DefaultCatalog
from servopt.config.loader import (
    default_experiments,
    load_experiments,
    load_experiments_text,
    with_calibration,
    with_robust,
)
from servopt.config.problems import ConfigError, Problem
from servopt.config.schema import (
    AdvancedTuningConfig,
    ConfigBlock,
    Experiment,
    ReplicaConfig,
    WorkerConfig,
)

__all__ = [
    "AdvancedTuningConfig",
    "Catalog",
    "ConfigBlock",
    "ConfigError",
    "DefaultCatalog",
    "Experiment",
    "Problem",
    "ReplicaConfig",
    "WorkerConfig",
    "default_experiments",
    "load_experiments",
    "load_experiments_text",
    "with_calibration",
    "with_robust",
]
