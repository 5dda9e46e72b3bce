"""A real model setup on the measured database, opened once per session per (model, backend)."""

import functools

import pytest


@functools.cache
def real_setup(model: str, backend: str, system: str = "h200_sxm"):
    from servopt.evaluate.candidates import ModelSetup
    from servopt.evaluate.single import quant_modes
    from servopt.hardware import load_system
    from servopt.models.registry import resolve_model
    from servopt.perf_db.database import open_database

    arch = resolve_model(model)
    db = open_database(system, backend)
    quant = quant_modes(arch, None, None, None, None, db=db, backend=backend)
    return db, ModelSetup(arch, backend, quant, load_system(system), db.version, 0)


@pytest.fixture
def setup_of():
    return real_setup
