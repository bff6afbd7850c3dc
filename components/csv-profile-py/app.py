"""A pipeline step in Python: profiles a CSV table (per numeric column: count, mean, min, max;
per text column: distinct values), writes the profile as JSON and the table's complete rows
(no empty cell) as a clean CSV, reports the row count as a metric and returns the row count and
the column names.

Built into a component by `wasm-run build` (componentize-py underneath); the `weft` package is
the guest SDK in components/sdk-python.
"""

import csv
import json
from typing import NamedTuple

import weft
from weft import Dataset, Input, Metrics, Output


class Profiled(NamedTuple):
    rows: int
    columns: list


def _number(text):
    try:
        return float(text)
    except ValueError:
        return None


@weft.step
def profile(
    table: Input[Dataset], summary: Output[Dataset], clean: Output[Dataset], metrics: Metrics, label: str = ""
) -> Profiled:
    with open(table.path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if all(v not in (None, "") for v in r.values())]
    if not rows:
        raise ValueError(f"{table.path} has no data rows")
    columns = list(rows[0].keys())
    if label and label not in columns:
        raise KeyError(f"label column {label!r} is not among {columns}")
    out = {}
    for column in columns:
        values = [r[column] for r in rows]
        numbers = [_number(v) for v in values]
        if column != label and all(n is not None for n in numbers):
            out[column] = {
                "count": len(numbers),
                "mean": sum(numbers) / len(numbers),
                "min": min(numbers),
                "max": max(numbers),
            }
        else:
            out[column] = {"count": len(values), "distinct": sorted(set(values))}
    with open(summary.path, "w") as f:
        json.dump(out, f, indent=2, sort_keys=True)
    with open(clean.path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    metrics.log_metric("rows", len(rows))
    weft.log.info("profiled", rows=len(rows), columns=len(columns))
    return Profiled(len(rows), columns)
