"""Configuration problems: collected while a file is validated, reported together.

Every problem names where it is (``file:line:col``, or nothing for command-line flags), the field
(a dotted path such as ``exp_agg_full.config.worker_config.tp_list[2]``), the offending value when
there is one, and what is allowed. A file's problems are raised together as one ``ConfigError``
(exit code 2) before any search starts, one problem per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from servopt.errors import ServoptError, closest

# Long values (whole sections, long lists) are cut in messages so a line stays readable.
_MAX_VALUE_CHARS = 60
# More allowed values than this are elided in messages.
_MAX_ALLOWED_SHOWN = 24


class _NoValue:
    """Marks a problem about a key that is absent (there is no value to show)."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


def field_name(path: Sequence[str | int]) -> str:
    """``('exp', 'config', 'tp_list', 2)`` -> ``exp.config.tp_list[2]``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "<file>"


def _short_repr(value: object) -> str:
    text = repr(value)
    if len(text) > _MAX_VALUE_CHARS:
        text = text[: _MAX_VALUE_CHARS - 3] + "..."
    return text


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with the configuration, with its place in the source."""

    file: str  # display name of the source ("" for command-line flags)
    line: int  # 1-based; 0 when the source has no lines
    col: int
    field: str
    message: str
    value: object = field(default=NO_VALUE, compare=False)
    allowed: tuple[str, ...] | None = field(default=None, compare=False)
    suggest: bool = field(default=True, compare=False)  # offer "did you mean" from ``allowed``

    @property
    def location(self) -> str:
        if not self.file:
            return ""
        if self.line <= 0:
            return f"{self.file}:"
        return f"{self.file}:{self.line}:{self.col}:"

    def __str__(self) -> str:
        text = f"{self.field}: "
        if self.value is not NO_VALUE:
            text += f"{_short_repr(self.value)}: "
        text += self.message
        if self.allowed is not None:
            if self.suggest and isinstance(self.value, str):
                near = [n for n in closest(self.value, self.allowed) if n != self.value]
                if near:
                    text += f" (did you mean {', '.join(near)}?)"
            shown = list(self.allowed)
            if len(shown) > _MAX_ALLOWED_SHOWN:
                shown = [*shown[:_MAX_ALLOWED_SHOWN], "..."]
            text += f" (allowed: {', '.join(map(str, shown))})"
        loc = self.location
        return f"{loc} {text}" if loc else text


class ConfigError(ServoptError):
    """Every problem of one configuration, one per line; exit code 2."""

    exit_code = 2

    def __init__(self, problems: Iterable[Problem]):
        self.problems: tuple[Problem, ...] = tuple(sorted(set(problems)))
        if not self.problems:
            raise ValueError("ConfigError needs at least one problem")
        first = self.problems[0]
        super().__init__(first.field, first.value, first.message, first.allowed)

    def _format(self) -> str:
        lines = [str(p) for p in self.problems]
        if len(lines) == 1:
            return lines[0]
        return f"{len(lines)} problems in the configuration:\n" + "\n".join(lines)
