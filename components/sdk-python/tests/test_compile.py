"""`weft.compile`: a pipeline authored in Python becomes the Pipeline spec a hand would write."""

import json
import statistics
from typing import NamedTuple

import pytest
import yaml

import weft
from weft import Dataset, Input, Metrics, Model, Output, dsl
from weft.bundle import app_source

THRESHOLD = 0.5


def _mean(values):
    return statistics.fmean(values) if values else 0.0


class Split(NamedTuple):
    train_rows: int
    test_rows: int


@weft.component
def make_data(rows: int, data: Output[Dataset]):
    with open(data.path, "w") as f:
        f.write("x\n" + "".join(f"{i}\n" for i in range(rows)))


@weft.component(packages_to_install=["tabulate==0.9.0"])
def score(data: Input[Dataset], metrics: Metrics, scale: float = 1.0) -> float:
    with open(data.path) as f:
        values = [float(line) for line in f.read().split()[1:]]
    m = _mean(values) * scale
    metrics.log_metric("mean", m)
    return m


@weft.component
def split(data: Input[Dataset], fraction: float) -> Split:
    return Split(1, 1)


@weft.component
def report(value: float, label: str = "x"):
    print(label, value)


@weft.component
def train(data: Input[Dataset], model: Output[Model], seed: int):
    pass


@weft.pipeline(name="sdk-example", description="Data, score, a condition, a loop, an exit handler.")
def example(rows: int = 10, scale: float = 2.0, seeds: list = [1, 2, 3]):
    cleanup = report(value=0.0, label="done")
    with dsl.ExitHandler(cleanup):
        data = make_data(rows=rows)
        s = score(data=data.outputs["data"], scale=scale).set_retry(2, backoff_duration="1s").set_caching_options(False)
        s.set_memory_limit("512M").set_cpu_limit("2").set_accelerator_limit(1)
        with dsl.If(s.output > THRESHOLD):
            report(value=s.output)
        with dsl.ParallelFor(seeds, parallelism=2) as seed:
            train(data=data.outputs["data"], seed=seed)
        sp = split(data=data.outputs["data"], fraction=0.25).after(s)
        report(value=sp.outputs["train_rows"], label="train rows")


EXPECTED = {
    "apiVersion": "weft.dev/v1alpha1",
    "kind": "Pipeline",
    "metadata": {"name": "sdk-example"},
    "spec": {
        "description": "Data, score, a condition, a loop, an exit handler.",
        "params": {
            "rows": {"type": "int", "default": 10},
            "scale": {"type": "float", "default": 2.0},
            "seeds": {"type": "json", "default": [1, 2, 3]},
        },
        "components": {
            "make-data": {
                "source": "components/make-data.wasm",
                "inputs": {"params": {"rows": {"type": "int"}}, "artifacts": {}},
                "outputs": {"params": {}, "artifacts": {"data": "Dataset"}},
            },
            "report": {
                "source": "components/report.wasm",
                "inputs": {"params": {"value": {"type": "float"}, "label": {"type": "string", "default": "x"}}, "artifacts": {}},
                "outputs": {"params": {}, "artifacts": {}},
            },
            "score": {
                "source": "components/score.wasm",
                "inputs": {"params": {"scale": {"type": "float", "default": 1.0}}, "artifacts": {"data": "Dataset"}},
                "outputs": {"params": {"Output": "float"}, "artifacts": {}},
            },
            "split": {
                "source": "components/split.wasm",
                "inputs": {"params": {"fraction": {"type": "float"}}, "artifacts": {"data": "Dataset"}},
                "outputs": {"params": {"train_rows": "int", "test_rows": "int"}, "artifacts": {}},
            },
            "train": {
                "source": "components/train.wasm",
                "inputs": {"params": {"seed": {"type": "int"}}, "artifacts": {"data": "Dataset"}},
                "outputs": {"params": {}, "artifacts": {"model": "Model"}},
            },
        },
        "tasks": {
            "make-data": {"component": "make-data", "params": {"rows": {"param": "rows"}}},
            "score": {
                "component": "score",
                "params": {"scale": {"param": "scale"}},
                "artifacts": {"data": {"task": "make-data", "output": "data"}},
                "retry": {"limit": 2, "backoff": "1s"},
                "cache": False,
                "memory": "512MiB",
                "resources": {"cpu": "2", "gpu": 1},
            },
            "report-2": {
                "component": "report",
                "params": {"value": {"task": "score", "output": "Output"}},
                "when": {"input": {"task": "score", "output": "Output"}, "op": ">", "value": 0.5},
            },
            "train": {
                "component": "train",
                "params": {"seed": {"loopItem": "."}},
                "artifacts": {"data": {"task": "make-data", "output": "data"}},
                "parallelFor": {"items": {"param": "seeds"}, "parallelism": 2},
            },
            "split": {
                "component": "split",
                "params": {"fraction": {"value": 0.25}},
                "artifacts": {"data": {"task": "make-data", "output": "data"}},
                "after": ["score"],
            },
            "report-3": {
                "component": "report",
                "params": {"value": {"task": "split", "output": "train_rows"}, "label": {"value": "train rows"}},
            },
        },
        "exitHandler": {"component": "report", "params": {"value": {"value": 0.0}, "label": {"value": "done"}}},
    },
}


def test_compile_writes_the_spec_a_hand_would(tmp_path, schema):
    import jsonschema

    path = tmp_path / "pipeline.yaml"
    weft.compile(example, str(path), build=False)
    written = yaml.safe_load(path.read_text())
    assert written == EXPECTED
    jsonschema.validate(written, schema)
    # Each component's project is written beside it, ready for `wasm-run build`.
    manifest = (tmp_path / "components" / "src" / "score" / "weft.toml").read_text()
    assert 'language = "python"' in manifest and '"tabulate==0.9.0"' in manifest


def test_kfp_spelling_compiles_the_same(tmp_path):
    from weft import compiler

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    compiler.Compiler().compile(pipeline_func=example, package_path=str(a), build=False)
    weft.compile(example, str(b), build=False)
    assert yaml.safe_load(a.read_text()) == yaml.safe_load(b.read_text())


def test_a_step_carries_its_helpers_imports_and_constants():
    source = app_source(score.python_func)
    assert "import statistics" in source
    assert "def _mean(values):" in source
    assert "@weft.component" not in source
    assert source.rstrip().endswith("weft.step(score)")
    src = app_source(split.python_func)
    assert "class Split(NamedTuple):" in src
    constant = app_source(_uses_constant)
    assert "THRESHOLD = 0.5" in constant
    compile(source, "app.py", "exec")  # it is valid Python


def _uses_constant(x: float) -> bool:
    return x > THRESHOLD


def test_mistakes_are_named():
    with pytest.raises(RuntimeError, match="outside a @weft.pipeline"):
        score(data=None)

    @weft.pipeline
    def missing():
        score(scale=1.0)

    with pytest.raises(TypeError, match="missing the argument 'data'"):
        missing.build()

    with pytest.raises(TypeError, match=r"every argument needs a type annotation|not a parameter type"):

        @weft.component
        def bad(x: set):
            pass

    @weft.pipeline
    def two_in_a_loop():
        data = make_data(rows=1)
        with dsl.ParallelFor([1, 2]) as s:
            train(data=data.outputs["data"], seed=s)
            train(data=data.outputs["data"], seed=s)

    with pytest.raises(NotImplementedError, match="one task per iteration"):
        two_in_a_loop.build()


def test_memory_sizes_are_converted():
    from weft.dsl import _memory

    assert [_memory(m) for m in ["512M", "2G", "1Gi", "64Mi"]] == ["512MiB", "2GiB", "1GiB", "64MiB"]
    with pytest.raises(ValueError, match="expected a size"):
        _memory("lots")
    assert json.dumps(EXPECTED)  # the expectation itself is plain data
