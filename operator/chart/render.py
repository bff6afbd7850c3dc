"""`helm template` and `helm lint --strict` without a helm binary: Helm's own engine (the Helm v4
SDK through the `helm-python-sdk` wheel from PyPI). Used by the chart's tests; handy by hand too.

    python render.py CHART OUT_DIR [VALUES_JSON]

Renders the chart as release `weft` in namespace `weft-system` with the given values (a JSON
object; default none), writes each rendered manifest under OUT_DIR (empty ones skipped), and
lints the chart strictly with the same values. Exits 1 on a render error or a lint finding.
"""

import json
import os
import sys

from helm_python.chart import Chart, lint


def main() -> int:
    chart_dir, out_dir = sys.argv[1], sys.argv[2]
    values = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    with Chart.load(chart_dir) as chart:
        manifests = chart.render(
            values=values, name="weft", namespace="weft-system", is_install=True
        )
    written = 0
    for path, text in sorted(manifests.items()):
        if not text.strip() or path.endswith("NOTES.txt"):
            continue
        dest = os.path.join(out_dir, path)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with open(dest, "w") as f:
            f.write(text)
        written += 1
    report = lint(chart_dir, values, strict=True, namespace="weft-system", kube_version="v1.33.0")
    print(json.dumps({"written": written, "lint": report}, default=str))
    # Helm's severities: 1 info, 2 warning, 4 error; strict linting fails on warnings.
    findings = [m for m in report.get("messages") or [] if m.get("severity", 0) >= 2]
    return 1 if report.get("errors") or findings else 0


if __name__ == "__main__":
    sys.exit(main())
