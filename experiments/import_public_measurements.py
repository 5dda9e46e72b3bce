"""Re-create servopt's shipped public measurements from the reference collection's public.csv.

    python experiments/import_public_measurements.py /path/to/reality/public.csv \
        [--out src/servopt/calibrate/data/public_measurements.csv]

Reads the public layout (prose notes) through servopt.calibrate.public_notes, so the rules live in
the package, and writes the structured layout the package reads at run time, one row per source row
in the same order (row N here is row N there). Prints what it extracted, per load kind and basis,
and checks each exact output-basis conversion against any second figure the notes give.
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

from servopt.calibrate.public_csv import SHIPPED, read_measurements, write_measurements
from servopt.errors import ServoptError

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "servopt" / "calibrate" / "data" / SHIPPED


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("public_csv", type=Path, help="the public layout file (public.csv)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        records = read_measurements(args.public_csv)
    except ServoptError as exc:
        print(exc, file=sys.stderr)
        return exc.exit_code
    n = write_measurements(records, args.out)
    print(f"wrote {n} records to {args.out}")
    for field in ("load", "basis", "lengths", "spec", "backend", "system"):
        counts = collections.Counter(getattr(r, field) for r in records)
        print(f"  {field}: " + ", ".join(f"{k}={v}" for k, v in counts.most_common()))
    converted = sum(r.output_tok_s_per_gpu is not None for r in records)
    print(f"  output tok/s/GPU known for {converted} of {n} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
