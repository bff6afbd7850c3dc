"""`weft.Client().tune(...)`: a Katib-style Experiment written from Python, run by the real
`wasm-run tune`, and read back. The objective is a Python component computing a quadratic
with a known minimum, so every trial's objective can be checked against the function."""

import json
import math
import pathlib

import pytest
import yaml

import weft
from weft import Metrics
from weft.tune import ExperimentFailed, InvalidExperiment, Parameter, build_experiment

#: The minimum of `quadratic`: at x = X0, y = Y0 (and shape "bowl"), value FLOOR.
X0, Y0, FLOOR = 1.5, -2, 0.25
#: Steps of the reported series: the loss falls to its final value at the last one.
STEPS = 3


def _loss(x: float, y: int, shape: str = "bowl") -> float:
    return (x - X0) ** 2 + (y - Y0) ** 2 + FLOOR + (0.0 if shape == "bowl" else 1.0)


@weft.component
def quadratic(x: float, y: int, metrics: Metrics, shape: str = "bowl"):
    if shape == "crash":
        raise ValueError("asked to crash")
    value = _loss(x, y, shape)
    # A series (min strategy: the trial's objective is its least value, the final one) and a
    # second metric recorded alongside.
    for step in range(1, STEPS + 1):
        metrics.log_metric("loss", value + (STEPS - step), step=step)
    metrics.log_metric("distance", math.hypot(x - X0, y - Y0))


@weft.pipeline(name="quadratic-pipeline")
def quadratic_pipeline(x: float = 0.0, y: int = 0):
    quadratic(x=x, y=y)


SPACE = {"x": weft.search.double(-4, 4), "y": weft.search.int(-5, 5)}


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """One package folder for the module: the component is built once (~10 s), then reused."""
    return tmp_path_factory.mktemp("tune-pkg")


@pytest.fixture
def experiment_schema():
    repo = pathlib.Path(__file__).resolve().parents[3]
    return json.loads((repo / "schemas" / "experiment.schema.json").read_text())


def _validate_written(package, schema, name):
    import jsonschema

    written = yaml.safe_load((package / "experiment.yaml").read_text())
    jsonschema.validate(written, schema)
    assert written["metadata"]["name"] == name
    return written


def _check_trials(result, space_check, distance=False):
    assert result.state == "Succeeded", result
    for t in result.trials:
        assert t.state == "Succeeded", t
        space_check(t.parameters)
        assert isinstance(t.parameters["y"], int), t.parameters
        want = _loss(t.parameters["x"], t.parameters["y"])
        assert t.objective == pytest.approx(want, abs=1e-9), t
        # The series arrived step by step through metrics.log_metric(step=...).
        assert [p[0] for p in t.observation["series"]] == list(range(1, STEPS + 1)), t.observation
        if distance:  # recorded as an additional metric
            assert t.metrics["distance"] == pytest.approx(math.hypot(t.parameters["x"] - X0, t.parameters["y"] - Y0))
    best = min(result.trials, key=lambda t: t.objective)
    assert result.best_trial is not None and result.best_trial.name == best.name
    assert result.best_trial.objective == pytest.approx(_loss(best.parameters["x"], best.parameters["y"]))


def test_random_search_tunes_a_python_component_and_reads_it_back(tmp_path, package, wasm_run, experiment_schema):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    result = client.tune(
        "quad-random", quadratic, SPACE, "loss", additional_metric_names=["distance"],
        algorithm_name="random", algorithm_settings={"random_state": 3},
        max_trial_count=6, parallel_trial_count=3, trial_timeout=60, trial_memory="256M", package_dir=str(package),
    )
    written = _validate_written(package, experiment_schema, "quad-random")
    spec = written["spec"]
    assert spec["parameters"] == [
        {"name": "x", "parameterType": "double", "feasibleSpace": {"min": "-4", "max": "4"}},
        {"name": "y", "parameterType": "int", "feasibleSpace": {"min": "-5", "max": "5"}},
    ]
    assert spec["trialTemplate"]["component"] == {
        "source": "components/quadratic.wasm", "timeout": "60s", "memory": "256MiB"}
    assert spec["algorithm"] == {"algorithmName": "random", "algorithmSettings": [{"name": "random_state", "value": "3"}]}

    assert len(result.trials) == 6
    assert result.message.startswith("MaxTrialsReached"), result.message

    def inside(p):
        assert -4 <= p["x"] <= 4 and -5 <= p["y"] <= 5, p

    _check_trials(result, inside, distance=True)

    # Read back from the store, as `wasm-run experiments show|list` have it.
    again = client.get_experiment("quad-random")
    assert again.state == "Succeeded" and again.best_trial.name == result.best_trial.name
    assert [t.parameters for t in again.trials] == [t.parameters for t in result.trials]
    assert client.get_optimal_hyperparameters("quad-random") == result.best_trial.parameters
    assert [e.name for e in client.list_experiments()] == ["quad-random"]
    # A trial is a run like any other.
    assert client.get_metrics(result.best_trial.run_id)["trial"]["loss"] == pytest.approx(result.best_trial.objective)


def test_grid_search_covers_its_grid_and_finds_its_minimum(tmp_path, package, wasm_run, experiment_schema):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    space = {"x": weft.search.double(-2, 4, step=2), "y": weft.search.int(-3, -1)}
    result = client.tune("quad-grid", quadratic, space, "loss", algorithm_name="grid",
                         max_trial_count=12, parallel_trial_count=4, package_dir=str(package))
    _validate_written(package, experiment_schema, "quad-grid")
    seen = sorted((t.parameters["x"], t.parameters["y"]) for t in result.trials)
    assert seen == sorted((x, y) for x in (-2.0, 0.0, 2.0, 4.0) for y in (-3, -2, -1))

    def on_grid(p):
        assert p["x"] in (-2.0, 0.0, 2.0, 4.0) and p["y"] in (-3, -2, -1), p

    _check_trials(result, on_grid)
    # The grid's least point: x = 2 (nearest 1.5; 1 is not on it), y = -2.
    assert result.best_trial.parameters == {"x": 2.0, "y": -2}
    assert result.best_trial.objective == pytest.approx(0.25 + FLOOR)


def test_a_pipeline_objective_with_a_fixed_param_and_a_categorical(tmp_path, package, wasm_run, experiment_schema):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    result = client.tune("quad-pipeline", quadratic_pipeline, {"x": weft.Search.uniform(1, 2)}, "loss",
                         fixed_params={"y": -2}, algorithm_settings={"random_state": 1}, max_trial_count=3,
                         package_dir=str(package))
    written = _validate_written(package, experiment_schema, "quad-pipeline")
    assert written["spec"]["trialTemplate"] == {"pipeline": {"pipelineRef": "pipeline.yaml", "params": {"y": -2}}}
    assert len(result.trials) == 3 and result.state == "Succeeded"
    for t in result.trials:
        assert 1 <= t.parameters["x"] <= 2 and t.state == "Succeeded", t
        assert t.objective == pytest.approx(_loss(t.parameters["x"], -2)), t

    # A categorical parameter reaches a `str` parameter of the component.
    shapes = client.tune("quad-shape", quadratic, {"shape": weft.search.categorical(["bowl", "raised"])}, "loss",
                         fixed_params={"x": X0, "y": Y0}, algorithm_name="grid", max_trial_count=2,
                         package_dir=str(package))
    _validate_written(package, experiment_schema, "quad-shape")
    assert sorted((t.parameters["shape"], t.objective) for t in shapes.trials) == [("bowl", FLOOR), ("raised", FLOOR + 1)]
    assert shapes.best_trial.parameters == {"shape": "bowl"}


def test_bad_input_surfaces_the_clis_located_error(tmp_path, package, wasm_run):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    with pytest.raises(InvalidExperiment, match=r"experiment\.yaml:\d+:\d+: min 4 must be less than max -4"):
        client.tune("quad-bad", quadratic, {"x": weft.search.double(4, -4), "y": weft.search.int(-5, 5)}, "loss",
                    max_trial_count=2, package_dir=str(package))
    with pytest.raises(InvalidExperiment, match="unknown suggestion algorithm `annealing`"):
        client.tune("quad-bad", quadratic, SPACE, "loss", algorithm_name="annealing", package_dir=str(package))
    # Nothing was recorded for a refused file.
    assert client.list_experiments() == []

    # An experiment that spends its failure budget raises, carrying what it did.
    with pytest.raises(ExperimentFailed, match="MaxFailedTrialsReached") as failed:
        client.tune("quad-failing", quadratic, {"x": weft.search.double(-1, 1)}, "loss",
                    fixed_params={"y": 0, "shape": "crash"}, max_trial_count=4, max_failed_trial_count=0,
                    parallel_trial_count=1, package_dir=str(package))
    assert failed.value.result.state == "Failed"
    assert all(t.state == "Failed" for t in failed.value.result.trials)
    assert "ValueError: asked to crash" in str(failed.value)


def test_the_sdk_refuses_what_cannot_run_before_building(tmp_path):
    # Checked against the component's signature, with nothing built.
    def build(parameters, **kw):
        return build_experiment("e", quadratic, parameters, "loss", str(tmp_path), build=False, **kw)

    with pytest.raises(ValueError, match="'z' is not a parameter of component quadratic"):
        build({"z": weft.search.double(0, 1), **SPACE})
    with pytest.raises(TypeError, match=r"quadratic\(y: int\) cannot take a double parameter"):
        build({"x": weft.search.double(0, 1), "y": weft.search.double(0, 1)})
    with pytest.raises(TypeError, match=r"quadratic\(x: float\) cannot take a categorical parameter"):
        build({"x": weft.search.categorical(["a"]), "y": weft.search.int(0, 1)})
    with pytest.raises(TypeError, match=r"quadratic\(y: int\) cannot take a discrete parameter \(its values reach the step as float\)"):
        build({"x": weft.search.double(0, 1), "y": weft.search.discrete([1, 2.5])})
    build({"x": weft.search.double(0, 1), "y": weft.search.discrete([1, 2])})  # whole numbers: ints
    with pytest.raises(ValueError, match="needs parameter 'y': tune it or give it in fixed_params"):
        build({"x": weft.search.double(0, 1)})
    with pytest.raises(TypeError, match=r"fixed parameter y='0' does not fit quadratic\(y: int\)"):
        build({"x": weft.search.double(0, 1)}, fixed_params={"y": "0"})
    with pytest.raises(TypeError, match="search.int takes whole numbers"):
        weft.search.int(0, 1.5)
    with pytest.raises(ValueError, match="objective_type"):
        build(SPACE, objective_type="lowest")

    doc = build({"x": weft.search.double(1e-4, 0.1, distribution="log-uniform"), "y": weft.search.int(0, 4, step=2)},
                early_stopping={"algorithm_name": "medianstop", "algorithm_settings": {"start_step": 2}},
                objective_type="Maximize", objective_goal=3)
    assert doc["spec"]["parameters"][0]["feasibleSpace"] == {"min": "0.0001", "max": "0.1", "distribution": "logUniform"}
    assert doc["spec"]["parameters"][1]["feasibleSpace"] == {"min": "0", "max": "4", "step": "2"}
    assert doc["spec"]["earlyStopping"] == {"algorithmName": "medianstop",
                                            "algorithmSettings": [{"name": "start_step", "value": "2"}]}
    assert doc["spec"]["objective"] == {"type": "maximize", "objectiveMetricName": "loss", "goal": 3.0}
    assert weft.Search.choice([2, 4]) == Parameter("discrete", {"list": ["2", "4"]})
    assert weft.Search.choice(["a", 4]) == Parameter("categorical", {"list": ["a", "4"]})
    assert weft.Search.loguniform(0.01, 0.05).feasible_space["distribution"] == "logUniform"


def _stored_bytes(wasm_run, store, digest, to):
    other = weft.Client(home=str(to / "home"), wasm_run=wasm_run)
    other._run("--artifact-store", f"file://{store}", "artifacts", "get", digest, "--to", str(to / "got"))
    return [p.read_bytes() for p in (to / "got").rglob("*") if p.is_file()]


def _optimal(name, assignments, value):
    """The status the operator and its runner write for a finished experiment."""
    return {"state": "Succeeded", "message": "MaxTrialsReached: 4 trials", "bestValue": value,
            "trials": 4, "trialsSucceeded": 4, "trialsFailed": 0,
            "currentOptimalTrial": {"bestTrialName": name,
                                    "parameterAssignments": [{"name": k, "value": v} for k, v in assignments.items()],
                                    "observation": {"metrics": [{"name": "loss", "value": value, "min": str(value)}]}}}


def test_a_component_experiment_is_submitted_to_the_cluster_and_read_back(tmp_path, package, wasm_run, cluster,
                                                                         experiment_schema):
    import jsonschema

    fake, kubeconfig = cluster
    store = tmp_path / "store"
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run, kube=True, namespace="ml",
                         artifact_store=f"file://{store}", kubeconfig=kubeconfig)
    space = {"x": weft.search.double(-4, 4), "y": weft.search.discrete([-2, 0, 2])}
    created = client.tune("quad-kube", quadratic, space, "loss", algorithm_name="tpe", max_trial_count=4,
                          package_dir=str(package), wait=False)
    assert created.state == "Created" and created.best_trial is None

    exp = fake.objects[("ml", "experiments", "quad-kube")]
    jsonschema.validate({k: exp[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": "quad-kube"}},
                        experiment_schema)
    source = exp["spec"]["trialTemplate"]["component"]["source"]
    assert source.startswith("sha256:"), source  # the operator runs digests from the store
    assert _stored_bytes(wasm_run, store, source, tmp_path / "check") == [
        (package / "components" / "quadratic.wasm").read_bytes()]
    assert exp["spec"]["parameters"][1] == {"name": "y", "parameterType": "discrete",
                                            "feasibleSpace": {"list": ["-2", "0", "2"]}}

    # Still running: the wait times out naming it; then the operator reports the end.
    exp["status"] = {"state": "Running", "trials": 2, "trialsRunning": 2}
    with pytest.raises(TimeoutError, match="ml/quad-kube not finished"):
        client.wait_for_experiment("quad-kube", timeout=0)
    assert client.get_experiment("quad-kube").counts == {"trials": 2, "trialsRunning": 2}
    exp["status"] = _optimal("quad-kube-3", {"x": "1.25", "y": "-2"}, 0.3125)
    done = client.wait_for_experiment("quad-kube", timeout=30)
    assert done.state == "Succeeded" and done.counts["trialsSucceeded"] == 4
    # Values typed as the trial got them: a whole-number discrete is an int.
    assert done.optimal_hyperparameters == {"x": 1.25, "y": -2}
    assert done.best_trial.objective == 0.3125 and done.best_trial.metrics == {"loss": 0.3125}
    assert [e.name for e in client.list_experiments()] == ["quad-kube"]

    # The same name again is refused by the cluster, named.
    with pytest.raises(ValueError, match="Experiment ml/quad-kube already exists"):
        client.tune("quad-kube", quadratic, space, "loss", package_dir=str(package))
    # A failed experiment raises with the result.
    exp["status"] = {"state": "Failed", "message": "MaxFailedTrialsReached: 3 trials failed"}
    with pytest.raises(ExperimentFailed, match="quad-kube Failed: MaxFailedTrialsReached") as failed:
        client.wait_for_experiment("quad-kube", timeout=30)
    assert failed.value.result.state == "Failed"


def test_a_pipeline_experiment_applies_its_pipeline_and_bad_input_is_refused_before_submitting(
        tmp_path, package, wasm_run, cluster, experiment_schema):
    fake, kubeconfig = cluster
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run, kube=True, namespace="ml",
                         artifact_store=f"file://{tmp_path / 'store'}", kubeconfig=kubeconfig)
    with pytest.raises(InvalidExperiment, match=r"experiment\.yaml:\d+:\d+: min 4 must be less than max -4"):
        client.tune("quad-bad", quadratic, {"x": weft.search.double(4, -4), "y": weft.search.int(-5, 5)}, "loss",
                    package_dir=str(package))
    assert not [r for r in fake.requests if r[0] != "GET"], fake.requests  # nothing sent

    # The pipeline goes to the cluster as a Pipeline object, which the Experiment names.
    client.tune("quad-kube-pipeline", quadratic_pipeline, {"x": weft.Search.uniform(1, 2)}, "loss",
                fixed_params={"y": -2}, max_trial_count=3, package_dir=str(package), wait=False)
    exp = fake.objects[("ml", "experiments", "quad-kube-pipeline")]
    assert exp["spec"]["trialTemplate"] == {"pipeline": {"pipelineRef": "quadratic-pipeline", "params": {"y": -2}}}
    pipeline = fake.objects[("ml", "pipelines", "quadratic-pipeline")]
    sources = [c["source"] for c in pipeline["spec"]["components"].values()]
    assert sources and all(s.startswith("sha256:") for s in sources), sources
    exp["status"] = _optimal("quad-kube-pipeline-1", {"x": "1.5"}, 0.25)
    assert client.get_optimal_hyperparameters("quad-kube-pipeline") == {"x": 1.5}


def test_a_whole_number_discrete_parameter_reaches_an_int_param(tmp_path, package, wasm_run):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    result = client.tune("quad-discrete", quadratic, {"x": weft.search.discrete([1.5]),
                                                      "y": weft.search.discrete([-3, -2, 4])}, "loss",
                         algorithm_name="grid", max_trial_count=3, package_dir=str(package))
    _check_trials(result, lambda p: None)
    assert sorted(t.parameters["y"] for t in result.trials) == [-3, -2, 4]
    assert result.best_trial.parameters == {"x": 1.5, "y": -2}
