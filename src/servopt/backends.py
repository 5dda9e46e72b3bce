"""The serving engines servopt models, as the perf database's backend folders name them.

Kept free of heavy imports so that the CLI's ``--help`` can list them.
"""

from __future__ import annotations

from typing import Literal, get_args

Backend = Literal["trtllm", "sglang", "vllm"]
BACKENDS: tuple[str, ...] = get_args(Backend)
