"""Validated input ranges shared by the CLI flags, the experiment YAML and the web app.

One range each, so that the three front ends accept and reject the same values (README "Main job"
states them).
"""

from __future__ import annotations

# The GPU budget. 65536 GPUs is beyond any single serving deployment today; the cap keeps replica
# counts, and the products of counts the search forms, far inside int64 and CP-SAT's domains.
MIN_TOTAL_GPUS = 1
MAX_TOTAL_GPUS = 65_536
