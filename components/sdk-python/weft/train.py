"""`weft.Client().train(...)`: data-parallel training as a Kubeflow Trainer `TrainJob`, run with
`wasm-run train` (the trainer component as a gang of workers with collectives and
checkpoints). Like the Trainer SDK's `TrainerClient.train`, it writes the job, starts it and
follows its progress; the result is the job's run. On a cluster (`Client(kube=True)`) the
component and data go into the artifact store by digest, the TrainJob is created for the
operator, and its progress is read from the `trainerStatus` the job writes as it runs."""

import json
import os
import subprocess
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional

from . import yaml


class InvalidTrainJob(ValueError):
    """`wasm-run train` refused the job file: the located error, and the file."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.path = path


def build_train_job(name: str, trainer: str, params: Optional[Dict[str, Any]] = None,
                    num_workers: int = 1, num_nodes: int = 1, dataset: Optional[str] = None,
                    model: Optional[str] = None, checkpoint_every: Optional[int] = None,
                    backoff_limit: int = 3, timeout: Optional[str] = None,
                    memory: Optional[str] = None, resources_per_node: Optional[Dict[str, Any]] = None,
                    engine: str = "auto", schedule_timeout: Optional[int] = None) -> Dict[str, Any]:
    """The TrainJob document. `trainer`: a `.wasm` component (absolute, or relative to where
    the file is written) or `sha256:<hex>` of a stored one; `dataset`/`model`: a path or a
    `sha256:` digest, given to every worker as input `train`/`model`."""
    t: Dict[str, Any] = {"component": trainer, "numNodes": num_nodes, "numProcPerNode": num_workers,
                         "engine": engine}
    if params:
        t["params"] = dict(params)
    if timeout:
        t["timeout"] = timeout
    if memory:
        t["memory"] = memory
    if resources_per_node:
        t["resourcesPerNode"] = dict(resources_per_node)
    spec: Dict[str, Any] = {"trainer": t, "runPolicy": {"backoffLimit": backoff_limit}}
    if schedule_timeout is not None:
        spec["runPolicy"]["scheduleTimeoutSeconds"] = schedule_timeout
    init = {}
    for key, ref in (("dataset", dataset), ("model", model)):
        if ref is not None:
            init[key] = {"digest": ref} if str(ref).startswith("sha256:") else {"path": os.path.abspath(ref)}
    if init:
        spec["initializer"] = init
    if checkpoint_every:
        spec["checkpoint"] = {"everySteps": checkpoint_every}
    return {"apiVersion": "weft.dev/v1alpha1", "kind": "TrainJob", "metadata": {"name": name}, "spec": spec}


def _progress(line: str) -> Optional[Dict[str, Any]]:
    """`step 40/200  loss 0.1334  481.1 steps/s  4 workers` as a dict; None for other lines."""
    parts = line.split()
    if len(parts) < 3 or parts[0] != "step":
        return None
    step, _, total = parts[1].partition("/")
    out: Dict[str, Any] = {"step": int(step), "total": int(total) if total else None,
                           "metric": parts[2], "value": float(parts[3]) if len(parts) > 3 else None}
    for i, p in enumerate(parts):
        if p == "steps/s" and i > 0:
            out["steps_per_second"] = float(parts[i - 1])
        if p == "workers" and i > 0:
            out["workers"] = int(parts[i - 1])
    return out


def run_train_job(cmd: List[str], path: str, workers: Optional[int] = None,
                  on_progress: Optional[Callable[[Dict[str, Any]], None]] = None):
    """Runs `wasm-run train PATH --json` (`cmd`: wasm-run and its global options), handing each
    progress line to `on_progress` as it comes; returns the run (`weft.RunResult`)."""
    from .client import RunFailed, RunResult

    args = cmd + ["train", path, "--json"] + (["--workers", str(workers)] if workers else [])
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors: List[str] = []
    assert proc.stderr is not None and proc.stdout is not None
    for line in proc.stderr:
        errors.append(line.rstrip("\n"))
        update = _progress(line)
        if update is not None and on_progress is not None:
            on_progress(update)
    stdout = proc.stdout.read()
    code = proc.wait()
    try:
        summary = json.loads(stdout)
    except json.JSONDecodeError:
        summary = None
    if summary is None:
        error = next((e[len("error: "):] for e in reversed(errors) if e.startswith("error: ")), "\n".join(errors[-5:]))
        if code == 2:
            raise InvalidTrainJob(error, path)
        raise RuntimeError(f"wasm-run train {path} failed ({code}): {error}")
    result = RunResult.from_summary(summary)
    if result.state != "SUCCEEDED":
        why = "; ".join(t.get("error") or "" for t in result.tasks if t.get("error"))
        raise RunFailed(result, f"train job run {result.run_id} {result.state}: {why}")
    return result


class TrainJobResult:
    """A TrainJob on the cluster as its status has it: `state` (`Created`, `Running`,
    `Suspended`, `Complete`, `Failed`), `message`, `conditions`, and Trainer's progress
    (`progress_percentage`, `estimated_remaining_seconds`, `metrics`: the latest value of
    each)."""

    def __init__(self, name: str, status: Dict[str, Any]):
        self.name = name
        self.state = status.get("state") or "Created"
        self.message = status.get("message")
        self.conditions = status.get("conditions") or []
        trainer = status.get("trainerStatus") or {}
        self.progress_percentage = trainer.get("progressPercentage")
        self.estimated_remaining_seconds = trainer.get("estimatedRemainingSeconds")
        self.metrics = {m["name"]: float(m["value"]) for m in trainer.get("metrics") or []}
        self.updated = trainer.get("lastUpdatedTime")

    @classmethod
    def from_resource(cls, obj: Dict[str, Any]) -> "TrainJobResult":
        return cls(obj["metadata"]["name"], obj.get("status") or {})

    def __repr__(self):
        return f"TrainJobResult({self.name!r}, state={self.state!r}, progress={self.progress_percentage})"


class TrainJobFailed(RuntimeError):
    """A TrainJob on the cluster that ended `Failed`: its message, and the result."""

    def __init__(self, result: TrainJobResult):
        super().__init__(f"TrainJob {result.name} Failed: {result.message}")
        self.result = result


def wait_train_job(kube, name: str, timeout: Optional[float], poll: float = 1.0,
                   on_progress: Optional[Callable[[Dict[str, Any]], None]] = None) -> TrainJobResult:
    """Follows the cluster's TrainJob until it ends, handing `on_progress` each new
    `trainerStatus` (`progress_percentage`, `estimated_remaining_seconds`, `metrics`, `state`);
    a job that fails raises `TrainJobFailed`, one still going after `timeout` seconds
    `TimeoutError`."""
    from .kube import TRAINJOB_TERMINAL

    deadline = None if timeout is None else time.monotonic() + timeout
    last = None
    while True:
        result = TrainJobResult.from_resource(kube.get(name, "trainjobs"))
        seen = (result.updated, result.progress_percentage, result.state)
        if on_progress is not None and result.updated is not None and seen != last:
            on_progress({"progress_percentage": result.progress_percentage, "state": result.state,
                         "estimated_remaining_seconds": result.estimated_remaining_seconds,
                         "metrics": dict(result.metrics)})
        last = seen
        if result.state in TRAINJOB_TERMINAL:
            if result.state == "Failed":
                raise TrainJobFailed(result)
            return result
        if deadline is not None and time.monotonic() >= deadline:
            raise TimeoutError(f"TrainJob {kube.namespace}/{name} not finished after {timeout:.0f}s "
                               f"(state {result.state}: {result.message})")
        time.sleep(poll)


def train(client, name: str, trainer: str, package_dir: Optional[str] = None,
          on_progress: Optional[Callable[[Dict[str, Any]], None]] = None, kube=None, wait: bool = True,
          wait_timeout: Optional[float] = None, **options):
    """`Client.train`'s body: write the TrainJob to `package_dir/trainjob.yaml`, checked by
    `wasm-run train --validate`; run it here, or (`kube`, a `weft.kube.KubeRuns`) submit it to
    the cluster and, with `wait`, follow it to its end."""
    directory = os.path.abspath(package_dir or os.path.join(tempfile.gettempdir(), f"weft-train-{name}"))
    os.makedirs(directory, exist_ok=True)
    if not str(trainer).startswith("sha256:"):
        trainer = os.path.abspath(trainer)
    doc = build_train_job(name, trainer, **options)
    path = os.path.join(directory, "trainjob.yaml")
    with open(path, "w") as f:
        f.write(f"# Written by the weft Python SDK (weft.Client().train); run it with `wasm-run train {os.path.basename(path)}`.\n")
        f.write(yaml.dumps(doc))
    if kube is None:
        return run_train_job(client._cmd(), path, on_progress=on_progress)
    # Refused here, with its located error, before anything reaches the cluster.
    checked = subprocess.run(client._cmd() + ["train", path, "--validate", "--for-cluster"],
                             capture_output=True, text=True)
    if checked.returncode != 0:
        errors = checked.stderr.strip().splitlines()
        error = next((e[len("error: "):] for e in reversed(errors) if e.startswith("error: ")), checked.stderr)
        raise InvalidTrainJob(error, path)
    created = kube.create_train_job(kube.stored_train_job(doc, directory))
    if not wait:
        return TrainJobResult.from_resource(created)
    return wait_train_job(kube, name, wait_timeout, on_progress=on_progress)
