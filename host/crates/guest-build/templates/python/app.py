"""{{name}}: a Weft pipeline step in Python.

Sums one column of a CSV table, writes the per-row running total as a CSV output, reports the
total as a metric and returns it. Build with `wasm-run build`, run with `./test.sh`.
"""

import csv

import weft
from weft import Dataset, Input, Metrics, Output


@weft.step
def {{ident}}(table: Input[Dataset], totals: Output[Dataset], metrics: Metrics, column: str = "value") -> float:
    total = 0.0
    with open(table.path, newline="") as src, open(totals.path, "w", newline="") as dst:
        rows = csv.DictReader(src)
        if column not in (rows.fieldnames or []):
            raise KeyError(f"no column {column!r} in {table.path}")
        out = csv.writer(dst)
        out.writerow([column, "running_total"])
        for row in rows:
            total += float(row[column])
            out.writerow([row[column], total])
    metrics.log_metric("total", total)
    weft.log.info("summed", column=column, total=total)
    return total
