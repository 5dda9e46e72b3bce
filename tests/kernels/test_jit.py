"""servopt_kernels.jit: deferred kernels, their signatures, and the AOT-or-JIT choice per call."""

import contextlib
from types import SimpleNamespace

import numpy as np
import pytest

from servopt_kernels import dedup, jit


def test_signature_spellings_parse_to_dtype_and_rank():
    assert jit.parse_arg("float64[::1]").dtype == np.float64
    assert jit.parse_arg("int64[:, ::1]").ndim == 2
    assert jit.parse_arg("boolean[::1]").dtype == np.bool_
    assert jit.parse_arg("int64").scalar is not None
    for bad in ("float64[:]", "float32", "int64[::1, :]", "list"):
        with pytest.raises(ValueError, match="kernel signatures take"):
            jit.parse_arg(bad)


def test_kernel_runs_through_numba_and_matches_a_plain_python_oracle():
    bits = np.array([[3, 1, 3, 2, 1]], dtype=np.int64)
    first, inverse = dedup.unique_bits(bits)
    assert first.tolist() == [0, 1, 3] and inverse.tolist() == [0, 1, 0, 2, 1]
    assert dedup.unique_bits.signatures  # a numba dispatcher stands behind the kernel


@pytest.fixture
def fake_aot():
    calls = []

    def export(bits):
        calls.append(bits)
        return ("aot", bits.shape)

    jit.activate_aot(SimpleNamespace(dedup__unique_bits=export))
    jit.aot_misses.clear()
    # Callers hold the kernel object (``from ... import``); module globals may be dispatchers by now.
    yield jit.Kernel.__call__.__get__(_entry("dedup__unique_bits")), calls
    jit.activate_aot(None)
    jit.aot_misses.clear()


def _entry(name):
    return next(k for k in jit.entry_kernels() if k.export_name == name)


def test_matching_arguments_go_to_the_aot_export(fake_aot):
    call, calls = fake_aot
    out = call(np.zeros((2, 3), dtype=np.int64))
    assert out == ("aot", (2, 3)) and len(calls) == 1 and not jit.aot_misses


@pytest.mark.parametrize(
    "bits",
    [
        np.zeros((2, 3), dtype=np.int32),  # other dtype
        np.zeros(3, dtype=np.int64),  # other rank
        np.zeros((3, 2), dtype=np.int64).T,  # not C-contiguous
        np.zeros((2, 3), dtype=np.int64).tolist(),  # not an array
    ],
)
def test_other_argument_types_fall_back_to_numba_and_are_counted(fake_aot, bits):
    call, calls = fake_aot
    # numba may reject what the export would have mis-read: either way the export is not called.
    with contextlib.suppress(Exception):
        call(bits)
    assert not calls and jit.aot_misses == {"dedup__unique_bits": 1}


def test_read_only_arrays_do_not_reach_a_mutable_export(fake_aot):
    call, calls = fake_aot
    bits = np.zeros((2, 3), dtype=np.int64)
    bits.flags.writeable = False
    call(bits)
    assert not calls and jit.aot_misses == {"dedup__unique_bits": 1}


def test_scalars_must_have_the_declared_kind():
    int_arg, float_arg = jit.parse_arg("int64"), jit.parse_arg("float64")
    assert int_arg.matches(3) and int_arg.matches(np.int64(3))
    assert not int_arg.matches(True) and not int_arg.matches(3.0) and not int_arg.matches(np.int32(3))
    assert float_arg.matches(2.5) and float_arg.matches(np.float64(2.5))
    assert not float_arg.matches(2) and not float_arg.matches(np.float32(2.5))


SEARCH_SIGNATURES = """
import json
from numba.core import sigutils
from servopt.config import default_experiments
from servopt.pipeline import run_experiments
from servopt_kernels import jit
for model, gpus in (("QWEN3_32B", 8), ("DEEPSEEK_V3", 16)):
    run_experiments(default_experiments(model, gpus, "h200_sxm"))
report = {}
for k in jit.entry_kernels():
    compiled = list(k.dispatcher.overloads)
    if compiled:
        args, ret = sigutils.normalize_signature(k.signature)
        report[k.export_name] = [compiled == [tuple(args)],
                                 k.dispatcher.overloads[compiled[0]].signature.return_type == ret]
print(json.dumps(report))
"""


def test_declared_signatures_are_the_ones_real_searches_compile():
    """Real searches (dense and MLA+MoE) in a fresh process compile the entry kernels through numba
    from real calls: each declared AOT signature must be exactly that one specialisation, or the AOT
    module would miss."""
    import json
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", SEARCH_SIGNATURES], capture_output=True, text=True, timeout=900
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.splitlines()[-1])
    assert {name for name, ok in report.items() if ok != [True, True]} == set()
    assert len(report) >= 5  # grid lookups, dedup, GEMM, the replica menu and its staircase


def test_keyword_arguments_reach_numba():
    bits = np.array([[3, 1, 3]], dtype=np.int64)
    first, inverse = jit.Kernel.__call__(_entry("dedup__unique_bits"), bits=bits)
    assert first.tolist() == [0, 1] and inverse.tolist() == [0, 1, 0]
