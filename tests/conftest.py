"""Shared fixtures: one small real search (Qwen3-32B on 8 H200, the seed's SLA), run once per session."""

import os
import tempfile

import pytest
from hypothesis import Phase, settings

# Property tests report a failure in seconds: no shrinking and no explain phase by default (both
# can take minutes over slow examples), no wall-clock deadline (it would make the outcome depend on
# machine load). Every property test is derandomized, so the failing example is the same on a
# rerun: ``HYPOTHESIS_PROFILE=shrink pytest ...`` shrinks it to a minimal one.
settings.register_profile(
    "fast_failure", deadline=None, phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.target)
)
settings.register_profile("shrink", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "fast_failure"))

# CLI runs inside the tests stay on numba's JIT and start no background AOT builds;
# tests/kernels/test_aot.py builds and checks the AOT module explicitly.
os.environ["SERVOPT_AOT"] = "0"
# No test reaches the Hugging Face Hub or reads the user's cache: an empty cache, offline. Set before
# huggingface_hub is imported (it reads these once); subprocesses inherit them.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="servopt-tests-hf-")
os.environ.pop("HF_HUB_CACHE", None)


@pytest.fixture(scope="session")
def qwen8_result():
    from servopt.config import default_experiments
    from servopt.pipeline import run_experiments

    experiments = default_experiments("QWEN3_32B", 8, "h200_sxm")
    return experiments, run_experiments(experiments)
