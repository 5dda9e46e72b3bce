"""`servopt emulate` flags that fail before serving: one line naming the field, exit 2."""

import subprocess
import sys

import pytest

BASE = ["emulate", "--model", "QWEN3_32B", "--system", "h200_sxm", "--tp", "2", "--port", "0"]


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--tokenizer", "/nonexistent/tokenizer.json"], "tokenizer"),
        (["--request_log", "/nonexistent/dir/log.jsonl"], "request_log"),
        (["--speedup", "0"], "speedup"),
    ],
)
def test_bad_flags_are_one_line_exit_2(extra, field):
    out = subprocess.run(
        [sys.executable, "-m", "servopt", *BASE, *extra], capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and field in lines[0] and "Traceback" not in out.stderr
