"""Hyperparameter tuning from Python, as Katib's SDK spells it: `weft.search.double(...)` and
friends describe the search space, and `weft.Client().tune(...)` writes a Katib-style
`Experiment` (the same file `wasm-run tune` and the operator read), runs it locally with
`wasm-run tune`, and reads the trials and the best one back.

The trial is a `@weft.component` (each trial is one step of it, with the trial's parameters as
its parameters) or a `@weft.pipeline` (each trial is a run of it). A trial reports its
objective with `metrics.log_metric(name, value)` (a series with `step=`): no metrics collector.
"""

import builtins
import json
import math
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Union

from . import yaml

__all__ = [
    "search", "Search", "Parameter", "Trial", "ExperimentResult", "ExperimentFailed",
    "InvalidExperiment", "build_experiment", "write_experiment", "run_experiment", "tune",
]

_DISTRIBUTIONS = {
    "uniform": "uniform", "loguniform": "logUniform", "log_uniform": "logUniform",
    "normal": "normal", "lognormal": "logNormal", "log_normal": "logNormal",
}


def _number(v) -> str:
    """A bound as Katib writes it: a string (`"0.01"`), exact for ints, `repr` for floats."""
    if isinstance(v, bool) or not isinstance(v, (builtins.int, float)):
        raise TypeError(f"expected a number, got {type(v).__name__} {v!r}")
    return repr(v) if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Parameter:
    """One dimension of the search space: Katib's `parameterType` and `feasibleSpace`."""

    parameter_type: str
    feasible_space: Dict[str, Any]

    def spec(self, name: str) -> Dict[str, Any]:
        return {"name": name, "parameterType": self.parameter_type, "feasibleSpace": dict(self.feasible_space)}


def _distribution(d: Optional[str]) -> Optional[str]:
    if d is None:
        return None
    found = _DISTRIBUTIONS.get(str(d).replace("-", "_").lower()) or _DISTRIBUTIONS.get(str(d).lower())
    if found is None:
        raise ValueError(f"distribution {d!r}: expected one of uniform, logUniform, normal, logNormal")
    return found


def _range(kind: str, min, max, step=None, distribution=None) -> Parameter:
    space = {"min": _number(min), "max": _number(max)}
    if step is not None:
        space["step"] = _number(step)
    d = _distribution(distribution)
    if d is not None and d != "uniform":
        space["distribution"] = d
    return Parameter(kind, space)


class search:  # noqa: N801 - Katib's spelling: katib.search.double(...)
    """The search space, as Katib's SDK writes it: `search.double(min, max, step=None,
    distribution="uniform")`, `search.int(min, max, step=None)`, `search.categorical([...])`
    (strings) and `search.discrete([...])` (numbers). Bounds are checked by `wasm-run tune`."""

    @staticmethod
    def double(min: float, max: float, step: Optional[float] = None, distribution: str = "uniform") -> Parameter:
        return _range("double", min, max, step, distribution)

    @staticmethod
    def int(min: builtins.int, max: builtins.int, step: Optional[builtins.int] = None,
            distribution: str = "uniform") -> Parameter:
        for v in (min, max, step):
            if v is not None and (isinstance(v, bool) or not isinstance(v, builtins.int)):
                raise TypeError(f"search.int takes whole numbers, got {v!r}")
        return _range("int", min, max, step, distribution)

    @staticmethod
    def categorical(list: Iterable[Any]) -> Parameter:
        values = [str(v) for v in list]
        if not values:
            raise ValueError("search.categorical needs at least one value")
        return Parameter("categorical", {"list": values})

    @staticmethod
    def discrete(list: Iterable[float]) -> Parameter:
        values = [_number(v) for v in list]
        if not values:
            raise ValueError("search.discrete needs at least one value")
        return Parameter("discrete", {"list": values})


class Search:
    """Kubeflow SDK's spelling (`kubeflow.optimizer.Search`): `uniform`, `loguniform`, `choice`."""

    @staticmethod
    def uniform(min: float, max: float) -> Parameter:
        return search.double(min, max)

    @staticmethod
    def loguniform(min: float, max: float) -> Parameter:
        return search.double(min, max, distribution="logUniform")

    @staticmethod
    def choice(values: Iterable[Any]) -> Parameter:
        """Numbers become a `discrete` parameter (an int in the trial when all are whole, else a
        float), anything else `categorical`."""
        values = builtins.list(values)
        numeric = values and all(isinstance(v, (builtins.int, float)) and not isinstance(v, bool) for v in values)
        return search.discrete(values) if numeric else search.categorical(values)


@dataclass
class Trial:
    """One trial: its parameters, state, objective value and everything observed."""

    name: str
    state: str
    parameters: Dict[str, Any]
    objective: Optional[float]
    run_id: Optional[str] = None
    observation: Dict[str, Any] = field(default_factory=dict)
    message: Optional[str] = None

    @classmethod
    def from_record(cls, t: Dict[str, Any]) -> "Trial":
        return cls(t["name"], t.get("state"), json.loads(t.get("assignment_json") or "{}"), t.get("objective"),
                   t.get("run_id"), json.loads(t.get("observation_json") or "{}"), t.get("message"))

    @property
    def metrics(self) -> Dict[str, float]:
        """Each metric's value for this trial (by its strategy: min, max or latest)."""
        return dict(self.observation.get("metrics") or {})


@dataclass
class ExperimentResult:
    """An experiment as `wasm-run tune --json` (or `experiments show`) reports it."""

    name: str
    state: str
    message: Optional[str]
    trials: List[Trial]
    best_trial: Optional[Trial]
    spec: Dict[str, Any] = field(default_factory=dict)
    #: Trial counters by Katib's status names (`trials`, `trialsSucceeded`...): a cluster's.
    counts: Dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_summary(cls, summary: Dict[str, Any]) -> "ExperimentResult":
        e = summary["experiment"]
        trials = [Trial.from_record(t) for t in summary.get("trials", [])]
        best = next((t for t in trials if t.name == summary.get("best_trial")), None)
        spec = json.loads(e["spec_json"]) if e.get("spec_json") else {}
        return cls(e["name"], e["state"], e.get("message"), trials, best, spec)

    @classmethod
    def from_resource(cls, obj: Dict[str, Any]) -> "ExperimentResult":
        """An Experiment object of the cluster, as the operator and its runner report it: the
        state, the trial counters (`counts`) and the best trial (`currentOptimalTrial`); the
        other trials' details stay in the runner's store."""
        status = obj.get("status") or {}
        spec = obj.get("spec") or {}
        types = {p["name"]: p for p in spec.get("parameters", [])}
        best = None
        optimal = status.get("currentOptimalTrial")
        if optimal:
            params = {a["name"]: _typed(a["value"], types.get(a["name"])) for a in optimal.get("parameterAssignments", [])}
            metrics = {m["name"]: m.get("value") for m in (optimal.get("observation") or {}).get("metrics", [])}
            best = Trial(optimal["bestTrialName"], "Succeeded", params, status.get("bestValue"),
                         observation={"metrics": metrics})
        counts = {k: status[k] for k in ("trials", "trialsSucceeded", "trialsFailed", "trialsEarlyStopped",
                                         "trialsRunning", "trialMetricsUnavailable") if k in status}
        return cls(obj["metadata"]["name"], status.get("state") or "Created", status.get("message"),
                   [best] if best else [], best, spec, counts)

    @property
    def optimal_hyperparameters(self) -> Dict[str, Any]:
        """The best trial's parameters (Katib's `get_optimal_hyperparameters`), `{}` if none."""
        return dict(self.best_trial.parameters) if self.best_trial else {}


def _whole(values) -> bool:
    try:
        return all(float(v).is_integer() for v in values)
    except (TypeError, ValueError):
        return False


def _typed(text: str, param: Optional[Dict[str, Any]]):
    """A parameter value the cluster reports as text, as the trial received it."""
    kind = (param or {}).get("parameterType")
    try:
        if kind == "int" or (kind == "discrete" and _whole((param.get("feasibleSpace") or {}).get("list", []))):
            return builtins.int(float(text))
        if kind in ("double", "discrete"):
            return float(text)
    except ValueError:
        pass
    return text


class ExperimentFailed(RuntimeError):
    """The experiment ended other than Succeeded (failure budget spent, cancelled); `.result`
    holds what it got done."""

    def __init__(self, result: ExperimentResult, message: str):
        super().__init__(message)
        self.result = result


class InvalidExperiment(ValueError):
    """`wasm-run tune` refused the experiment file; the message is its located error
    (`experiment.yaml:LINE:COL: ...`)."""

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path


def _duration(t: Union[int, float, str, None]) -> Optional[str]:
    if t is None:
        return None
    if isinstance(t, (builtins.int, float)) and not isinstance(t, bool):
        return f"{math.ceil(t)}s"
    return str(t)


def _settings(settings) -> List[Dict[str, str]]:
    if not settings:
        return []
    items = settings.items() if isinstance(settings, dict) else settings
    out = []
    for item in items:
        if isinstance(item, dict):
            name, value = item["name"], item["value"]
        else:
            name, value = item
        out.append({"name": str(name), "value": json.dumps(value) if isinstance(value, bool) else str(value)})
    return out


def _early_stopping(es) -> Optional[Dict[str, Any]]:
    if es is None:
        return None
    if isinstance(es, str):
        return {"algorithmName": es}
    if isinstance(es, dict):
        name = es.get("algorithmName") or es.get("algorithm_name") or es.get("name")
        if not name:
            raise ValueError("early_stopping: give the algorithm's name (medianstop, asha...)")
        out = {"algorithmName": name}
        settings = _settings(es.get("algorithmSettings") or es.get("algorithm_settings") or es.get("settings"))
        if settings:
            out["algorithmSettings"] = settings
        return out
    raise TypeError("early_stopping: an algorithm name, or {'algorithm_name': ..., 'algorithm_settings': {...}}")


#: Which parameter types a component's typed parameter accepts (the value the host sends:
#: double as float, int as int, categorical as string; discrete as int when its list is of
#: whole numbers, else as float).
_ACCEPTS = {"float": {"double", "discrete", "int"}, "int": {"int", "discrete-whole"}, "string": {"categorical"},
            "bool": set()}


#: The Python values a fixed parameter of each type may have.
_FIXED = {"float": (builtins.int, float), "int": (builtins.int,), "string": (str,), "bool": (bool,)}


def _check_component(comp, parameters: Dict[str, Parameter], fixed: Dict[str, Any], inputs: Dict[str, str]):
    sig = comp.signature
    declared = {a.name: a for a in sig.of_kind("param")}
    for name, p in parameters.items():
        arg = declared.get(name)
        if arg is None:
            raise ValueError(f"tune: parameter {name!r} is not a parameter of component {comp.name} "
                             f"(it has {', '.join(declared) or 'none'})")
        accepts = _ACCEPTS.get(arg.type)
        kind = p.parameter_type
        if kind == "discrete" and _whole(p.feasible_space.get("list", [])):
            kind = "discrete-whole"
        if accepts is not None and kind not in accepts and not (kind == "discrete-whole" and "discrete" in accepts):
            sent = {"double": "float", "discrete": "float", "discrete-whole": "int", "int": "int",
                    "categorical": "str"}[kind]
            have = {"string": "str"}.get(arg.type, arg.type)
            raise TypeError(f"tune: {comp.name}({name}: {have}) cannot take a {p.parameter_type} parameter "
                            f"(its values reach the step as {sent}); annotate it {sent} or change the search space")
    for name, value in fixed.items():
        if name not in declared:
            raise ValueError(f"tune: fixed parameter {name!r} is not a parameter of component {comp.name}")
        if name in parameters:
            raise ValueError(f"tune: {name!r} is both tuned and fixed")
        want = _FIXED.get(declared[name].type)
        if want is not None and (isinstance(value, bool) != (want == (bool,)) or not isinstance(value, want)):
            have = {"string": "str"}.get(declared[name].type, declared[name].type)
            raise TypeError(f"tune: fixed parameter {name}={value!r} does not fit {comp.name}({name}: {have})")
    for arg in declared.values():
        if not arg.optional and arg.name not in parameters and arg.name not in fixed:
            raise ValueError(f"tune: component {comp.name} needs parameter {arg.name!r}: tune it or give it in fixed_params")
    for arg in sig.of_kind("input"):
        if arg.name not in inputs:
            raise ValueError(f"tune: component {comp.name} needs input artifact {arg.name!r}: give its path in inputs")


def build_experiment(name: str, objective, parameters: Dict[str, Parameter], objective_metric_name: str,
                     directory: str, *, objective_type: str = "minimize", objective_goal: Optional[float] = None,
                     additional_metric_names: Optional[List[str]] = None,
                     metric_strategies: Optional[Dict[str, str]] = None,
                     algorithm_name: str = "random", algorithm_settings=None, max_trial_count: Optional[int] = 10,
                     parallel_trial_count: int = 3, max_failed_trial_count: Optional[int] = None,
                     early_stopping=None, packages_to_install: Optional[List[str]] = None,
                     trial_timeout=None, trial_memory: Optional[str] = None,
                     fixed_params: Optional[Dict[str, Any]] = None, inputs: Optional[Dict[str, str]] = None,
                     resume_policy: Optional[str] = None, build: bool = True,
                     wasm_run: Optional[str] = None) -> Dict[str, Any]:
    """The Experiment (a dict) for `objective`, with what it runs built under `directory`
    (`components/NAME.wasm`, or `pipeline.yaml` and its components). See `Client.tune`."""
    from .compiler import build_component, compile as compile_pipeline, write_project
    from .dsl import Component, Pipeline, _memory, component

    if not parameters:
        raise ValueError("tune: give at least one parameter to search")
    for pname, p in parameters.items():
        if not isinstance(p, Parameter):
            raise TypeError(f"tune: parameter {pname!r} must be a weft.search.* value, got {type(p).__name__}")
    direction = str(objective_type).lower()
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"objective_type {objective_type!r}: minimize or maximize")
    fixed = dict(fixed_params or {})
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)

    if isinstance(objective, Pipeline):
        if trial_timeout is not None or trial_memory is not None or inputs or packages_to_install:
            raise ValueError("tune: trial_timeout, trial_memory, inputs and packages_to_install apply to a "
                             "component objective; in a pipeline, set them on its tasks and components")
        declared = objective.params()
        for pname in list(parameters) + list(fixed):
            if pname not in declared:
                raise ValueError(f"tune: {pname!r} is not a parameter of pipeline {objective.name} "
                                 f"(it has {', '.join(declared) or 'none'})")
        compile_pipeline(objective, os.path.join(directory, "pipeline.yaml"), build=build, wasm_run=wasm_run)
        template: Dict[str, Any] = {"pipeline": {"pipelineRef": "pipeline.yaml"}}
        if fixed:
            template["pipeline"]["params"] = fixed
    else:
        if not isinstance(objective, Component):
            if not callable(objective):
                raise TypeError("tune: objective is a @weft.component or @weft.pipeline function")
            objective = component(objective)
        if packages_to_install:
            merged = list(dict.fromkeys(list(objective.packages_to_install) + list(packages_to_install)))
            objective = Component(objective.python_func, packages_to_install=merged, name=objective.name)
        _check_component(objective, parameters, fixed, inputs or {})
        components = os.path.join(directory, "components")
        project = write_project(objective, os.path.join(components, "src", objective.name))
        if build:
            build_component(project, components, wasm_run)
        trial: Dict[str, Any] = {"source": f"components/{objective.name}.wasm"}
        if fixed:
            trial["params"] = fixed
        if inputs:
            trial["inputs"] = {k: os.path.abspath(v) if not str(v).startswith("sha256:") else v for k, v in inputs.items()}
        outputs = {a.name: a.type for a in objective.signature.of_kind("output")}
        if outputs:
            trial["outputs"] = outputs
        if trial_timeout is not None:
            trial["timeout"] = _duration(trial_timeout)
        if trial_memory is not None:
            trial["memory"] = _memory(trial_memory)
        template = {"component": trial}

    objective_spec: Dict[str, Any] = {"type": direction, "objectiveMetricName": objective_metric_name}
    if objective_goal is not None:
        objective_spec["goal"] = float(objective_goal)
    if additional_metric_names:
        objective_spec["additionalMetricNames"] = list(additional_metric_names)
    if metric_strategies:
        objective_spec["metricStrategies"] = [{"name": k, "value": v} for k, v in metric_strategies.items()]
    algorithm: Dict[str, Any] = {"algorithmName": algorithm_name}
    settings = _settings(algorithm_settings)
    if settings:
        algorithm["algorithmSettings"] = settings
    spec: Dict[str, Any] = {
        "objective": objective_spec,
        "algorithm": algorithm,
        "parallelTrialCount": int(parallel_trial_count),
    }
    if max_trial_count is not None:
        spec["maxTrialCount"] = int(max_trial_count)
    if max_failed_trial_count is not None:
        spec["maxFailedTrialCount"] = int(max_failed_trial_count)
    es = _early_stopping(early_stopping)
    if es:
        spec["earlyStopping"] = es
    if resume_policy:
        spec["resumePolicy"] = resume_policy
    spec["parameters"] = [p.spec(n) for n, p in parameters.items()]
    spec["trialTemplate"] = template
    return {"apiVersion": "weft.dev/v1alpha1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}


def write_experiment(doc: Dict[str, Any], path: str) -> str:
    with open(path, "w") as f:
        f.write(f"# Written by the weft Python SDK (weft.Client().tune); run it with `wasm-run tune {os.path.basename(path)}`.\n")
        f.write(yaml.dumps(doc))
    return path


def run_experiment(cmd: List[str], path: str) -> ExperimentResult:
    """Runs `wasm-run tune PATH --json` (`cmd`: wasm-run and its global options)."""
    done = subprocess.run(cmd + ["tune", path, "--json"], capture_output=True, text=True)
    stderr = done.stderr.strip()
    try:
        summary = json.loads(done.stdout)
    except json.JSONDecodeError:
        summary = None
    if summary is None:
        error = next((line[len("error: "):] for line in reversed(stderr.splitlines()) if line.startswith("error: ")), stderr)
        if done.returncode == 2:
            raise InvalidExperiment(error, path)
        raise RuntimeError(f"wasm-run tune {path} failed ({done.returncode}): {error}")
    result = ExperimentResult.from_summary(summary)
    if result.state != "Succeeded":
        failed = [f"{t.name}: {t.message}" for t in result.trials if t.state == "Failed" and t.message][:3]
        detail = f" ({'; '.join(failed)})" if failed else ""
        raise ExperimentFailed(result, f"experiment {result.name} {result.state}: {result.message}{detail}")
    return result


def tune(client, name: str, objective, parameters: Dict[str, Parameter], objective_metric_name: str,
         package_dir: Optional[str] = None, kube=None, wait: bool = True, timeout: Optional[float] = None,
         **options) -> ExperimentResult:
    """`Client.tune`'s body: build, write, then run here and read back, or (`kube`, a
    `weft.kube.KubeRuns`) submit to the cluster and, with `wait`, wait for its end."""
    directory = os.path.abspath(package_dir or os.path.join(tempfile.gettempdir(), f"weft-tune-{name}"))
    doc = build_experiment(name, objective, parameters, objective_metric_name, directory,
                           wasm_run=client.wasm_run, **options)
    path = write_experiment(doc, os.path.join(directory, "experiment.yaml"))
    if kube is None:
        return run_experiment(client._cmd(), path)
    # The file `wasm-run tune --validate` accepts is the one the cluster gets, refused here
    # with its located error rather than by the operator later.
    checked = subprocess.run(client._cmd("tune", path, "--validate"), capture_output=True, text=True)
    if checked.returncode == 2:
        raise InvalidExperiment(checked.stderr.strip().removeprefix("error: "), path)
    if checked.returncode != 0:
        raise RuntimeError(f"wasm-run tune {path} --validate failed ({checked.returncode}): {checked.stderr.strip()}")
    result = ExperimentResult.from_resource(kube.create_experiment(kube.stored_experiment(doc, directory)))
    return wait_experiment(kube, name, timeout) if wait else result


def wait_experiment(kube, name: str, timeout: Optional[float]) -> ExperimentResult:
    """The cluster's Experiment `name` once it has ended; raises `ExperimentFailed` unless it
    succeeded, `TimeoutError` past `timeout` seconds."""
    from .kube import EXPERIMENT_TERMINAL

    result = ExperimentResult.from_resource(kube.wait(name, timeout, plural="experiments",
                                                      terminal=EXPERIMENT_TERMINAL))
    if result.state != "Succeeded":
        raise ExperimentFailed(result, f"experiment {result.name} {result.state}: {result.message}")
    return result
