"""User-facing errors: one clear line naming the field, the value and what is allowed.

Every error a user can cause (bad flag, unknown model/system, impossible layout, infeasible SLA)
is raised as a ServoptError subclass; the CLI prints ``str(err)`` and exits with ``err.exit_code``,
never a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

# A value is shown in a message up to this many characters: a 50 MB name must not become a 50 MB
# line, nor reach difflib, whose matching is quadratic in the name's length.
MAX_SHOWN_CHARS = 200


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 3] + "..."


def closest(value: str, allowed: Iterable[str], n: int = 3) -> list[str]:
    """The allowed names closest to ``value`` (case-insensitive), best first."""
    if len(str(value)) > MAX_SHOWN_CHARS:
        return []
    allowed = list(allowed)
    lowered = {a.lower(): a for a in allowed}
    hits = difflib.get_close_matches(str(value).lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


class ServoptError(Exception):
    """An error caused by user input or user-visible state. Exit code 2 unless overridden."""

    exit_code = 2

    def __init__(self, field: str, value: object, message: str, allowed: Iterable[str] | None = None):
        self.field = field
        self.value = value
        self.message = message
        self.allowed = list(allowed) if allowed is not None else None
        super().__init__(self._format())

    def _format(self) -> str:
        text = (
            f"{self.field}: {self.message}"
            if self.value is None
            else f"{self.field}: {_shown(self.value)}: {self.message}"
        )
        if self.allowed is not None:
            near = closest(str(self.value), self.allowed)
            if near:
                text += f" (did you mean {', '.join(near)}?)"
            shown = self.allowed if len(self.allowed) <= 24 else [*self.allowed[:24], "..."]
            text += f" (allowed: {', '.join(map(str, shown))})"
        return text


class UnknownNameError(ServoptError):
    """A name (model, system, backend, version, op, dtype) that servopt does not know."""


class InvalidLayoutError(ServoptError):
    """A parallel layout the model or backend cannot take."""


class OutOfMemoryError(ServoptError):
    """A configuration whose weights, KV cache and activations do not fit in GPU memory."""


class InfeasibleError(ServoptError):
    """No deployment meets the targets: exit code 1 with the binding constraint."""

    exit_code = 1


class DataFileError(ServoptError):
    """A malformed row of a data file: ``file:line: field: message``, exit 2."""

    def __init__(self, path: object, line: int, field: str, message: str, value: object = None):
        self.path = str(path)
        self.line = line
        super().__init__(field, value, message)

    def _format(self) -> str:
        return f"{self.path}:{self.line}: {super()._format()}"
