"""`weft.Client`: runs pipelines locally through `wasm-run` (the same home, so runs show up in
`wasm-run runs list`), or submits them to a cluster as PipelineRuns (`weft.kube`); reads runs,
metrics and artifacts back. Method names follow KFP's `kfp.Client` where the meaning is the same."""

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from .compiler import compile as compile_pipeline
from .compiler import wasm_run_binary


@dataclass
class RunResult:
    """A finished run: its id, state, and per task the state and outputs."""

    run_id: str
    state: str
    tasks: List[Dict[str, Any]] = field(default_factory=list)
    metrics: List[Dict[str, Any]] = field(default_factory=list)
    artifacts: List[Dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_summary(cls, summary: Dict[str, Any]) -> "RunResult":
        tasks = summary.get("tasks", [])
        return cls(summary.get("run_id") or summary.get("id"), summary.get("state"), tasks,
                   summary.get("metrics", []), summary.get("artifacts", []))

    @classmethod
    def from_pipeline_run(cls, run: Dict[str, Any]) -> "RunResult":
        """A PipelineRun as the operator reports it: per task its state, message and output
        artifact digests (output parameters stay in the run's store)."""
        status = run.get("status") or {}
        tasks = [{"name": name, "state": t.get("state"), "error": t.get("message"),
                  "artifacts": t.get("artifacts", {})} for name, t in sorted((status.get("tasks") or {}).items())]
        artifacts = [{"task": t["name"], "name": a, "digest": d, "direction": "output"}
                     for t in tasks for a, d in sorted(t["artifacts"].items())]
        return cls(run["metadata"]["name"], status.get("state") or "PENDING", tasks, [], artifacts)

    def outputs(self, task: str) -> Dict[str, Any]:
        """The output parameters of `task` as plain values."""
        for t in self.tasks:
            if t.get("name") == task:
                raw = json.loads(t.get("outputs_json") or "{}")
                return {k: v.get("value") for k, v in raw.items()}
        raise KeyError(f"no task {task} in run {self.run_id}")


    def _repr_html_(self) -> str:
        """In a notebook: state, outputs, artifacts and metrics (series plotted)."""
        from .notebook import run_html

        return run_html(self)


class RunFailed(RuntimeError):
    def __init__(self, result: RunResult, message: str):
        super().__init__(message)
        self.result = result


class Client:
    """`Client()` runs pipelines locally with `wasm-run` (home: `home`, else `$WEFT_HOME`,
    else wasm-run's default); the runs it starts are the CLI's runs.

    `Client(kube=True, namespace="ns", artifact_store="s3://bucket/weft")` submits to the
    cluster of the kubeconfig (`kubeconfig`, else `$KUBECONFIG`, else `~/.kube/config`): the
    components go into the artifact store the operator reads, the Pipeline is applied and a
    PipelineRun created; `create_run_*` then returns at once (state PENDING) and
    `wait_for_run_completion` waits. Needs the `kubernetes` package."""

    def __init__(self, home: Optional[str] = None, wasm_run: Optional[str] = None,
                 namespace: Optional[str] = None, kube: bool = False,
                 artifact_store: Optional[str] = None, kubeconfig: Optional[str] = None):
        self.home = home
        self.wasm_run = wasm_run
        self._kube = None
        if kube:
            if not artifact_store:
                raise ValueError("Client(kube=True) needs artifact_store: the store the operator "
                                 "reads components from (its chart's artifactStore)")
            from .kube import KubeRuns, put_with

            self._kube = KubeRuns(namespace or "default", artifact_store, put_with(self._cmd(), artifact_store),
                                  kubeconfig)

    def _cmd(self, *args: str) -> List[str]:
        cmd = [wasm_run_binary(self.wasm_run)]
        if self.home:
            cmd += ["--home", self.home]
        return cmd + list(args)

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run(self._cmd(*args), capture_output=True, text=True)
        if check and done.returncode != 0:
            raise RuntimeError(f"wasm-run {' '.join(args)} failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def create_run_from_pipeline_func(self, pipeline_func, arguments: Optional[Dict[str, Any]] = None,
                                      run_name: Optional[str] = None, enable_caching: Optional[bool] = None,
                                      hermetic_seed: Optional[int] = None, package_dir: Optional[str] = None) -> RunResult:
        """Compiles the pipeline (components built once, reused while unchanged) and runs it."""
        directory = package_dir or os.path.join(tempfile.gettempdir(), f"weft-{pipeline_func.name}")
        path = os.path.join(directory, "pipeline.yaml")
        compile_pipeline(pipeline_func, path, wasm_run=self.wasm_run)
        return self.create_run_from_pipeline_package(path, arguments, run_name, enable_caching, hermetic_seed)

    def create_run_from_pipeline_package(self, pipeline_file: str, arguments: Optional[Dict[str, Any]] = None,
                                         run_name: Optional[str] = None, enable_caching: Optional[bool] = None,
                                         hermetic_seed: Optional[int] = None) -> RunResult:
        """Runs a compiled pipeline; returns when it has finished. A failed run raises
        `RunFailed` carrying the result. On a cluster: returns once submitted."""
        if self._kube is not None:
            return self._submit(pipeline_file, arguments or {}, run_name, hermetic_seed)
        args = ["pipeline", "run", pipeline_file, "--json"]
        for k, v in (arguments or {}).items():
            args += ["-p", f"{k}={json.dumps(v) if isinstance(v, (dict, list)) else v}"]
        if run_name:
            args += ["--run-id", run_name]
        if enable_caching is False:
            args.append("--no-cache")
        if hermetic_seed is not None:
            args += ["--hermetic-seed", str(hermetic_seed)]
        done = self._run(*args, check=False)
        try:
            result = RunResult.from_summary(json.loads(done.stdout))
        except json.JSONDecodeError:
            raise RuntimeError(f"wasm-run pipeline run failed ({done.returncode}): {done.stderr.strip()}") from None
        if result.state != "SUCCEEDED":
            failed = [f"{t['name']}: {t.get('error')}" for t in result.tasks if t.get("state") == "FAILED"]
            raise RunFailed(result, f"run {result.run_id} {result.state}: {'; '.join(failed)}")
        return result

    def _submit(self, pipeline_file: str, arguments: Dict[str, Any], run_name: Optional[str],
                hermetic_seed: Optional[int]) -> RunResult:
        from .kube import load_pipeline

        doc = self._kube.stored(load_pipeline(pipeline_file), os.path.dirname(os.path.abspath(pipeline_file)))
        self._kube.apply_pipeline(doc)
        run = self._kube.create_run(doc["metadata"]["name"], arguments, run_name, hermetic_seed)
        return RunResult.from_pipeline_run(run)

    def wait_for_run_completion(self, run_id: str, timeout: float = 3600) -> RunResult:
        """Waits until the run has finished (a cluster run; a local run has finished already)."""
        if self._kube is None:
            return self.get_run(run_id)
        return RunResult.from_pipeline_run(self._kube.wait(run_id, timeout))

    def list_runs(self) -> List[Dict[str, Any]]:
        if self._kube is not None:
            return [{"run_id": r["metadata"]["name"], "pipeline": r["spec"].get("pipelineRef"),
                     "state": (r.get("status") or {}).get("state") or "PENDING"} for r in self._kube.list()]
        return json.loads(self._run("runs", "list", "--output", "json").stdout)

    def get_run(self, run_id: str) -> RunResult:
        if self._kube is not None:
            return RunResult.from_pipeline_run(self._kube.get(run_id))
        return RunResult.from_summary(json.loads(self._run("runs", "show", run_id, "--output", "json").stdout))

    def get_metrics(self, run_id: str) -> Dict[str, Dict[str, float]]:
        """Final metric values per task: `{task: {metric: value}}` (the last value of a series)."""
        out: Dict[str, Dict[str, float]] = {}
        for m in self.get_run(run_id).metrics:
            out.setdefault(m.get("task", ""), {})[m["name"]] = m["value"]
        return out

    def get_metric_history(self, run_id: str, as_frame: bool = False):
        """Every metric value the run's tasks reported, series included: rows of `task`,
        `name`, `step` (None for a single value) and `value`; with `as_frame`, a pandas
        DataFrame when pandas is installed (else the rows)."""
        rows = [{"task": m.get("task", ""), "name": m["name"], "step": m.get("step"), "value": m["value"]}
                for m in self.get_run(run_id).metrics]
        if as_frame:
            from .notebook import to_frame

            return to_frame(rows)
        return rows

    def download_artifact(self, digest: str, to: str) -> str:
        self._run("artifacts", "get", digest, "--to", to)
        return to

    # Tuning (Katib's KatibClient.tune, run here by `wasm-run tune`; see weft.tune).

    def tune(self, name: str, objective, parameters: Dict[str, Any], objective_metric_name: str,
             objective_type: str = "minimize", objective_goal: Optional[float] = None,
             algorithm_name: str = "random", algorithm_settings=None, max_trial_count: Optional[int] = 10,
             parallel_trial_count: int = 3, max_failed_trial_count: Optional[int] = None, early_stopping=None,
             packages_to_install: Optional[List[str]] = None, trial_timeout=None, trial_memory: Optional[str] = None,
             fixed_params: Optional[Dict[str, Any]] = None, additional_metric_names: Optional[List[str]] = None,
             metric_strategies: Optional[Dict[str, str]] = None, inputs: Optional[Dict[str, str]] = None,
             resume_policy: Optional[str] = None, package_dir: Optional[str] = None, wait: bool = True,
             timeout: Optional[float] = None):
        """Tunes `objective` (a `@weft.component`, whose parameters include the tuned names, or
        a `@weft.pipeline`, whose parameters do) over `parameters` (`{"lr": weft.search.double(...)}`):
        builds it, writes the Experiment to `package_dir/experiment.yaml` (default: a
        `weft-tune-NAME` folder in the temp dir) and returns the `weft.tune.ExperimentResult`
        (`.state`, `.trials`, `.best_trial`). Each trial reports `objective_metric_name` with
        `metrics.log_metric`.

        Here it runs with `wasm-run tune`. On a cluster (`Client(kube=True)`) the component (or
        the pipeline, applied as a Pipeline) goes into the artifact store, the Experiment is
        created for the operator to run, and with `wait` (default) this waits up to `timeout`
        seconds (None: as long as it takes) for it to end; `wait=False` returns at once (state
        `Created`; `wait_for_experiment` waits later).

        A file `wasm-run tune` refuses raises `weft.tune.InvalidExperiment` with its located
        error; an experiment that does not succeed raises `weft.tune.ExperimentFailed` carrying
        the result."""
        from . import tune as tuning

        return tuning.tune(self, name, objective, parameters, objective_metric_name, package_dir=package_dir,
                           kube=self._kube, wait=wait, timeout=timeout,
                           objective_type=objective_type, objective_goal=objective_goal,
                           additional_metric_names=additional_metric_names, metric_strategies=metric_strategies,
                           algorithm_name=algorithm_name, algorithm_settings=algorithm_settings,
                           max_trial_count=max_trial_count, parallel_trial_count=parallel_trial_count,
                           max_failed_trial_count=max_failed_trial_count, early_stopping=early_stopping,
                           packages_to_install=packages_to_install, trial_timeout=trial_timeout,
                           trial_memory=trial_memory, fixed_params=fixed_params, inputs=inputs,
                           resume_policy=resume_policy)

    def train(self, name: str, trainer: str, params: Optional[Dict[str, Any]] = None, num_workers: int = 1,
              dataset: Optional[str] = None, model: Optional[str] = None, checkpoint_every: Optional[int] = None,
              backoff_limit: int = 3, timeout: Optional[str] = None, memory: Optional[str] = None,
              num_nodes: int = 1, resources_per_node: Optional[Dict[str, Any]] = None, engine: str = "auto",
              package_dir: Optional[str] = None, on_progress=None, wait: bool = True,
              wait_timeout: Optional[float] = None, schedule_timeout: Optional[int] = None):
        """Trains data-parallel, as Kubeflow's `TrainerClient.train`: `trainer` (a component
        importing `weft:tensor/collective`, such as components/train-mlp; a `.wasm` path or
        `sha256:<hex>`) runs as `num_workers` workers, each on its shard of `dataset` (a path or
        digest, the workers' input `train`), gradients exchanged every step; a checkpoint every
        `checkpoint_every` steps, and up to `backoff_limit` restarts of the whole gang from the
        latest. Writes the TrainJob to `package_dir/trainjob.yaml` and runs it with `wasm-run
        train`, handing `on_progress` a dict per reported step (`step`, `total`, `metric`,
        `value`, `steps_per_second`, `workers`); returns the run (`RunResult`: metrics, the
        model artifact). A job `wasm-run` refuses raises `weft.train.InvalidTrainJob` with its
        located error; one that fails raises `RunFailed`.

        On a cluster (`Client(kube=True)`) the job is checked here, its component and data go
        into the artifact store by digest, and the TrainJob is created for the operator (its
        workers in one pod, or with `num_nodes` > 1 or engine mpi/nccl an MPI gang of worker
        pods, which must all be ready within `schedule_timeout` seconds). With `wait` (default)
        this follows it, handing `on_progress` each new `trainerStatus` as a dict
        (`progress_percentage`, `estimated_remaining_seconds`, `metrics`, `state`), up to
        `wait_timeout` seconds (None: as long as it takes), and returns a
        `weft.train.TrainJobResult`; one that fails raises `weft.train.TrainJobFailed`.
        `wait=False` returns at once (`wait_for_train_job` follows it later)."""
        from . import train as training

        return training.train(self, name, trainer, package_dir=package_dir, on_progress=on_progress,
                              kube=self._kube, wait=wait, wait_timeout=wait_timeout,
                              params=params, num_workers=num_workers, dataset=dataset, model=model,
                              checkpoint_every=checkpoint_every, backoff_limit=backoff_limit,
                              timeout=timeout, memory=memory, num_nodes=num_nodes,
                              resources_per_node=resources_per_node, engine=engine,
                              schedule_timeout=schedule_timeout)

    def get_train_job(self, name: str):
        """The cluster's TrainJob `name` as its status has it (`weft.train.TrainJobResult`)."""
        from .train import TrainJobResult

        if self._kube is None:
            raise ValueError("get_train_job reads a cluster's TrainJob: use Client(kube=True); "
                             "a local training job is a run (get_run)")
        return TrainJobResult.from_resource(self._kube.get(name, "trainjobs"))

    def wait_for_train_job(self, name: str, timeout: Optional[float] = 3600, on_progress=None):
        """Follows the cluster's TrainJob `name` to its end (see `train`)."""
        from . import train as training

        if self._kube is None:
            raise ValueError("wait_for_train_job follows a cluster's TrainJob: use Client(kube=True)")
        return training.wait_train_job(self._kube, name, timeout, on_progress=on_progress)

    def wait_for_experiment(self, name: str, timeout: Optional[float] = 3600):
        """Waits until the cluster's experiment has ended (a local one has ended already)."""
        from . import tune as tuning

        if self._kube is None:
            return self.get_experiment(name)
        return tuning.wait_experiment(self._kube, name, timeout)

    def get_experiment(self, name: str):
        """An experiment with its trials and best trial (`wasm-run experiments show`); on a
        cluster, its Experiment object's status (counters and the best trial)."""
        from .tune import ExperimentResult

        if self._kube is not None:
            return ExperimentResult.from_resource(self._kube.get(name, "experiments"))
        return ExperimentResult.from_summary(json.loads(self._run("experiments", "show", name, "--output", "json").stdout))

    def list_experiments(self):
        """Every experiment in this home (`wasm-run experiments list`), or in the namespace."""
        from .tune import ExperimentResult

        if self._kube is not None:
            return [ExperimentResult.from_resource(o) for o in self._kube.list("experiments")]
        rows = json.loads(self._run("experiments", "list", "--output", "json").stdout)
        return [ExperimentResult.from_summary(r) for r in rows]

    def get_optimal_hyperparameters(self, name: str) -> Dict[str, Any]:
        """Katib's name: the best trial's parameters (`{}` while no trial has succeeded)."""
        return self.get_experiment(name).optimal_hyperparameters
