"""Typed access to the cells of one CSV row, every failure a ``file:line: field: message`` error."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from servopt.errors import DataFileError

# Spellings of a true/false cell; anything else is an error naming these.
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


class Cells:
    """One row's cells by column name; ``line`` is the row's line number in ``path``."""

    def __init__(self, path: Path | str, line: int, cells: dict[str, str]):
        self.path = path
        self.line = line
        self.cells = cells

    def error(self, field: str, message: str, value: object = None) -> DataFileError:
        return DataFileError(self.path, self.line, field, message, value)

    def text(self, field: str, *, required: bool = False) -> str | None:
        value = (self.cells.get(field) or "").strip()
        if not value:
            if required:
                raise self.error(field, "is required (empty)")
            return None
        return value

    def integer(self, field: str, *, required: bool = False, minimum: int = 1) -> int | None:
        value = self.text(field, required=required)
        if value is None:
            return None
        try:
            number = int(value)
        except ValueError:
            raise self.error(field, "must be a whole number", value) from None
        if number < minimum:
            raise self.error(field, f"must be >= {minimum}", value)
        return number

    def number(self, field: str, *, required: bool = False, allow_inf: bool = False) -> float | None:
        """A positive finite float (``inf`` too where ``allow_inf``); NaN is never a measurement."""
        value = self.text(field, required=required)
        if value is None:
            return None
        try:
            number = float(value.replace(",", ""))
        except ValueError:
            raise self.error(field, "must be a number", value) from None
        if math.isnan(number) or (math.isinf(number) and not allow_inf) or number <= 0:
            raise self.error(field, "must be a positive finite number", value)
        return number

    def flag(self, field: str) -> bool:
        value = (self.text(field) or "false").lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise self.error(field, "must be true or false", value)

    def choice(self, field: str, allowed: Sequence[str], *, required: bool = True) -> str | None:
        value = self.text(field, required=required)
        if value is not None and value not in allowed:
            raise DataFileError(self.path, self.line, field, f"must be one of {', '.join(allowed)}", value)
        return value
