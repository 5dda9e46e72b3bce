"""Measured-results CSV files <-> :class:`MeasuredRecord`.

Two layouts are read, told apart by their header:

- the **structured** layout servopt ships (``calibrate/data/public_measurements.csv``), one column per
  record field (:data:`COLUMNS`); written by :func:`write_measurements`;
- the **public** layout of the reference collection (``source,...,notes``), whose prose notes are
  read by :mod:`servopt.calibrate.public_notes`, for users who keep their own files in it.

A malformed row is a :class:`servopt.errors.DataFileError`: ``file:line: field: message``, exit 2.
Record ``row`` numbers are the rows' line numbers in the file read (header = line 1), so the
shipped file's row N is the public file's row N: the import keeps the order.
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from servopt.calibrate.cells import Cells
from servopt.calibrate.public_notes import PUBLIC_COLUMNS, record_from_public_row
from servopt.calibrate.records import (
    BACKENDS,
    BASES,
    LATENCY_STATS,
    LENGTHS,
    LOADS,
    SPECS,
    Disagg,
    MeasuredRecord,
    WorkerGroup,
)
from servopt.errors import DataFileError

SHIPPED = "public_measurements.csv"
_ROLES = ("prefill", "decode")
_GROUP_FIELDS = ("workers", "tp", "ep", "attention_dp", "gpus")
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(MeasuredRecord) if f.name not in ("row", "disagg"))
# The structured layout: every record field, ``disagg`` flattened to a flag and two worker groups.
COLUMNS: tuple[str, ...] = (
    *_RECORD_FIELDS,
    "disagg",
    *(f"{role}_{f}" for role in _ROLES for f in _GROUP_FIELDS),
)
_INTS = ("num_gpus", "tp", "pp", "ep", "dp", "isl", "osl", "num_requests", "input_tokens",
         "output_tokens", "concurrency", "spec_nextn")  # fmt: skip
_FLOATS = ("ttft_ms", "tpot_ms", "ttft_p50_ms", "ttft_p90_ms", "ttft_p99_ms", "tpot_p50_ms",
           "tpot_p90_ms", "tpot_p99_ms", "total_tok_s", "tok_s_per_gpu", "tok_s_per_user", "output_tok_s",
           "output_tok_s_per_gpu", "output_tok_s_per_decode_gpu", "input_tok_s_per_prefill_gpu")  # fmt: skip
# Columns added after files were written without them (the shipped file): read as empty when absent.
_LATER_COLUMNS = ("ttft_p90_ms", "tpot_p90_ms")
_EARLIER_COLUMNS = tuple(c for c in COLUMNS if c not in _LATER_COLUMNS)
_CHOICES = {"backend": BACKENDS, "lengths": LENGTHS, "load": LOADS, "spec": SPECS, "basis": BASES}
_REQUIRED_TEXT = ("source", "model", "gpu", "framework", "precision")


def read_measurements(path: Path | str) -> list[MeasuredRecord]:
    """Every row of a measurements file (either layout) as records, in file order."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(path, 0, "file", f"cannot be read ({exc.strerror or exc})") from None
    return _parse(text.splitlines(keepends=True), path)


def shipped_measurements() -> list[MeasuredRecord]:
    """The public measurements shipped in the package (``calibrate/data``)."""
    ref = resources.files("servopt.calibrate").joinpath("data", SHIPPED)
    return _parse(ref.read_text(encoding="utf-8").splitlines(keepends=True), Path(str(ref)))


def _parse(lines: list[str], path: Path) -> list[MeasuredRecord]:
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise DataFileError(path, 1, "header", "the file is empty")
    header = [h.strip() for h in header]
    if tuple(header) in (COLUMNS, _EARLIER_COLUMNS):
        convert = _record_from_structured
    elif tuple(header) == PUBLIC_COLUMNS:
        convert = record_from_public_row
    else:
        missing = [c for c in PUBLIC_COLUMNS if c not in header]
        raise DataFileError(
            path,
            1,
            "header",
            f"is neither servopt's structured layout nor the public layout (missing {', '.join(missing)})",
        )
    records = []
    for cells in reader:
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            raise DataFileError(path, line, "row", f"has {len(cells)} cells, the header has {len(header)}")
        row = dict.fromkeys(_LATER_COLUMNS, "") if convert is _record_from_structured else {}
        row.update(zip(header, cells, strict=True))
        records.append(convert(Cells(path, line, row)))
    return records


def _record_from_structured(cells: Cells) -> MeasuredRecord:
    values: dict[str, object] = {name: cells.text(name) for name in _RECORD_FIELDS}
    for name in _REQUIRED_TEXT:
        values[name] = cells.text(name, required=True)
    for name, allowed in _CHOICES.items():
        values[name] = cells.choice(name, allowed)
    values["latency_stat"] = cells.choice("latency_stat", LATENCY_STATS, required=False)
    for name in _INTS:
        values[name] = cells.integer(name, minimum=0 if name == "spec_nextn" else 1)
    for name in _FLOATS:
        values[name] = cells.number(name)
    values["range_ratio"] = _ratio(cells)
    values["request_rate"] = cells.number("request_rate", allow_inf=True)
    values["attention_dp"] = cells.flag("attention_dp")
    return MeasuredRecord(**values, disagg=_disagg(cells), row=cells.line)


def _ratio(cells: Cells) -> float | None:
    text = cells.text("range_ratio")
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value < 1.0:
        raise cells.error("range_ratio", "must be a number in [0, 1)", text)
    return value


def _disagg(cells: Cells) -> Disagg | None:
    if not cells.flag("disagg"):
        return None
    groups = []
    for role in _ROLES:
        # InferenceX states "0x(tp20,...) = 20 GPUs" for some rows: kept as stated, not repaired.
        count = cells.integer(f"{role}_workers", minimum=0)
        if count is None:
            groups.append(None)
            continue
        groups.append(
            WorkerGroup(
                count,
                cells.integer(f"{role}_tp", required=True),
                cells.integer(f"{role}_ep", required=True),
                cells.flag(f"{role}_attention_dp"),
                cells.integer(f"{role}_gpus", required=True),
            )
        )
    return Disagg(*groups)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "inf" if math.isinf(value) else repr(value)
    return str(value)


def structured_row(record: MeasuredRecord) -> list[str]:
    row = [_cell(getattr(record, name)) for name in _RECORD_FIELDS]
    row.append(_cell(record.disagg is not None))
    for role in _ROLES:
        group = getattr(record.disagg, role) if record.disagg else None
        row.extend(
            [""] * len(_GROUP_FIELDS)
            if group is None
            else [_cell(v) for v in (group.count, group.tp, group.ep, group.attention_dp, group.gpus)]
        )
    return row


def write_measurements(records: Iterable[MeasuredRecord], path: Path | str) -> int:
    """Write records in the structured layout; returns the number of rows written."""
    n = 0
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        for record in records:
            writer.writerow(structured_row(record))
            n += 1
    return n
