"""A pipeline authored in Python, built into components, run by `wasm-run` through
`weft.Client`, and read back: the same semantics as any Weft pipeline (conditions, loops,
retries, caching), in the same home as the CLI's runs."""

import csv
import statistics

import pytest

import weft
from weft import Dataset, Input, Metrics, Output, dsl

ROWS_HEADER = ["x", "y"]


def _line(a, b):
    return statistics.linear_regression(a, b)


@weft.component
def make_points(n: int, slope: float, points: Output[Dataset]):
    with open(points.path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ROWS_HEADER)
        for i in range(n):
            w.writerow([i, slope * i + 1])


@weft.component(packages_to_install=["tabulate==0.9.0"])
def fit(points: Input[Dataset], metrics: Metrics, table: Output[Dataset]) -> float:
    from tabulate import tabulate

    with open(points.path) as f:
        rows = [(float(r["x"]), float(r["y"])) for r in csv.DictReader(f)]
    slope, intercept = _line([r[0] for r in rows], [r[1] for r in rows])
    metrics.log_metric("slope", slope)
    with open(table.path, "w") as f:
        f.write(tabulate(rows, headers=ROWS_HEADER))
    return slope


@weft.component
def shout(value: float, times: int) -> str:
    if times < 0:
        raise ValueError(f"times must not be negative, got {times}")
    return "!" * times + f" {value:.1f}"


@weft.pipeline(name="fit-a-line")
def fit_a_line(n: int = 20, slope: float = 3.0):
    points = make_points(n=n, slope=slope)
    f = fit(points=points.outputs["points"])
    with dsl.If(f.output > 2.0):
        shout(value=f.output, times=3)
    with dsl.ParallelFor([1, 2, 3]) as k:
        shout(value=slope, times=k)


def test_a_python_pipeline_runs_and_is_read_back(tmp_path, wasm_run):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    result = client.create_run_from_pipeline_func(
        fit_a_line, arguments={"slope": 2.5}, run_name="line-1", package_dir=str(tmp_path / "pkg")
    )
    assert result.state == "SUCCEEDED", result.tasks
    assert result.outputs("fit")["Output"] == pytest.approx(2.5)
    assert result.outputs("shout")["Output"] == "!!! 2.5"
    assert result.outputs("shout-2")["Output"] == ["! 2.5", "!! 2.5", "!!! 2.5"]

    runs = client.list_runs()
    assert any(r.get("id", r.get("run_id")) == "line-1" for r in runs), runs
    assert client.get_metrics("line-1")["fit"]["slope"] == pytest.approx(2.5)
    table = [a for a in client.get_run("line-1").artifacts if a["name"] == "table" and a["direction"] == "output"]
    out = client.download_artifact(table[0]["digest"], str(tmp_path / "table"))
    text = next(p for p in (tmp_path / "table").rglob("*") if p.is_file()).read_text()
    assert "---  ----" in text and " 19  48.5" in text and out  # tabulate (bundled from PyPI) drew it

    # Below the condition's threshold the conditional task is skipped.
    low = client.create_run_from_pipeline_func(
        fit_a_line, arguments={"slope": 1.0}, run_name="line-2", package_dir=str(tmp_path / "pkg")
    )
    states = {t["name"]: t["state"] for t in low.tasks}
    assert states["shout"] == "NOT_TRIGGERED" and states["fit"] == "SUCCEEDED", states


def test_a_failing_step_fails_the_run_with_the_exception(tmp_path, wasm_run):
    @weft.pipeline(name="negative")
    def negative():
        shout(value=1.0, times=-1)

    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    with pytest.raises(weft.client.RunFailed, match="ValueError: times must not be negative, got -1"):
        client.create_run_from_pipeline_func(negative, package_dir=str(tmp_path / "pkg"))
