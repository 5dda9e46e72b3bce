"""Where results go: stdout's rich Console, as wide as the terminal, or whole rows when piped."""

from __future__ import annotations

import os
import sys


def stdout_console(pipe_width: int):
    """A terminal (or an explicit ``COLUMNS``) gets its own width, so tables fit it; a pipe or a
    file gets ``pipe_width`` columns, so every row stays on one line for grep and diff."""
    from rich.console import Console

    fits = sys.stdout.isatty() or "COLUMNS" in os.environ
    return Console(width=None if fits else pipe_width)
