"""`weft.Client().train(...)`: a TrainJob written from Python and run by the real `wasm-run
train` (components/train-mlp as the trainer): progress reported per step, the run read back,
and a refused job raised with its located error."""

import os
import pathlib

import pytest
import yaml

import weft
from weft.train import InvalidTrainJob, TrainJobFailed, build_train_job

REPO = pathlib.Path(__file__).resolve().parents[3]
IRIS = REPO / "examples" / "data" / "iris.csv"


@pytest.fixture
def train_mlp(wasm_run):
    """The trainer component, built beside the wasm-run under test (target/wasm-guests)."""
    path = pathlib.Path(wasm_run).resolve().parents[1] / "wasm-guests" / "components" / "train-mlp.wasm"
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI: {path} not built (cargo xtask components)")
        pytest.skip(f"{path} not built")
    return str(path)


def test_train_runs_the_gang_and_reports_progress(tmp_path, wasm_run, train_mlp):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    seen = []
    run = client.train("iris-sdk", train_mlp, params={"label": "species", "epochs": 60, "optimizer": "sgd"},
                       num_workers=2, dataset=str(IRIS), checkpoint_every=20,
                       package_dir=str(tmp_path / "job"), on_progress=seen.append)
    assert run.state == "SUCCEEDED"
    assert [p["step"] for p in seen][:3] == [0, 10, 20], seen
    assert all(p["workers"] == 2 and p["total"] == 60 and p["metric"] == "loss" for p in seen), seen
    losses = [m["value"] for m in run.metrics if m["name"] == "loss"]
    assert losses[-1] < losses[0] * 0.5, losses
    assert any(m["name"] == "rank-1/loss" for m in run.metrics)
    model = [a for a in run.artifacts if a["name"] == "model" and a["direction"] == "output"]
    assert model and model[0]["digest"].startswith("sha256:")
    # The file it wrote is a TrainJob `wasm-run train` runs as it is.
    doc = yaml.safe_load((tmp_path / "job" / "trainjob.yaml").read_text())
    assert doc["kind"] == "TrainJob" and doc["spec"]["trainer"]["numProcPerNode"] == 2
    assert doc["spec"]["checkpoint"] == {"everySteps": 20}
    # The run is the CLI's.
    assert run.run_id in client._run("runs", "list").stdout


def test_a_refused_job_raises_its_located_error(tmp_path, wasm_run, train_mlp):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    with pytest.raises(InvalidTrainJob) as e:
        client.train("bad", train_mlp, num_workers=0, package_dir=str(tmp_path / "job"))
    assert "numProcPerNode must be at least 1" in str(e.value)
    assert e.value.path.endswith("trainjob.yaml")
    with pytest.raises(InvalidTrainJob) as e:
        client.train("two-nodes", train_mlp, num_nodes=2, engine="local", package_dir=str(tmp_path / "job2"))
    assert "engine local runs every worker in one process" in str(e.value)


def test_train_on_the_mpi_engine(tmp_path, wasm_run, train_mlp):
    """engine="mpi": the workers are processes under mpirun (a wasm-run built with `mpi`, as
    `cargo xtask test` builds it; elsewhere the test does not run, in CI it fails)."""
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    try:
        run = client.train("iris-mpi", train_mlp, params={"label": "species", "epochs": 60, "optimizer": "sgd"},
                           num_workers=2, engine="mpi", dataset=str(IRIS), package_dir=str(tmp_path / "job"))
    except InvalidTrainJob as e:
        if "engine mpi is not in this build" not in str(e) or os.environ.get("CI"):
            raise
        pytest.skip(f"{wasm_run} has no MPI engine")
    assert run.state == "SUCCEEDED"
    assert any(m["name"] == "rank-1/loss" for m in run.metrics)
    # Ranks in processes of their own ran the gang's work order (threads never write one).
    orders = pathlib.Path(tmp_path / "home" / "logs" / "orders")
    assert list(orders.glob("*/train.rank-1.log")), list(orders.iterdir())


def test_a_failing_trainer_raises_run_failed(tmp_path, wasm_run, train_mlp):
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run)
    with pytest.raises(weft.client.RunFailed) as e:
        client.train("broken", train_mlp, params={"label": "species", "optimizer": "lbfgs"}, num_workers=2,
                     dataset=str(IRIS), backoff_limit=0, package_dir=str(tmp_path / "job"))
    assert "must be adam or sgd" in str(e.value)
    assert e.value.result.state == "FAILED"


def test_the_document_names_digests_and_paths_as_trainer_v2_does():
    doc = build_train_job("j", "/c.wasm", dataset="sha256:" + "a" * 64, model="m.safetensors", num_nodes=1)
    assert doc["spec"]["initializer"]["dataset"] == {"digest": "sha256:" + "a" * 64}
    assert doc["spec"]["initializer"]["model"]["path"].endswith("m.safetensors")
    assert doc["spec"]["runPolicy"] == {"backoffLimit": 3}


def _stored_bytes(wasm_run, store, digest, to):
    other = weft.Client(home=str(to / "home"), wasm_run=wasm_run)
    other._run("--artifact-store", f"file://{store}", "artifacts", "get", digest, "--to", str(to / "got"))
    return [p.read_bytes() for p in (to / "got").rglob("*") if p.is_file()]


def test_a_cluster_train_job_goes_by_digest_and_its_progress_is_followed(tmp_path, wasm_run, train_mlp, cluster):
    """`Client(kube=True).train`, through the real `kubernetes` client against the stand-in API
    server: checked here first (engine nccl is the cluster's business, not this machine's), the
    trainer and dataset put into the store by digest, the TrainJob created, then followed
    through the `trainerStatus` the job writes, to its end."""
    import json
    import threading

    import jsonschema

    fake, kubeconfig = cluster
    store = tmp_path / "store"
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run, kube=True, namespace="ml",
                         artifact_store=f"file://{store}", kubeconfig=kubeconfig)
    options = dict(params={"label": "species", "epochs": 200}, num_workers=2, num_nodes=2, engine="nccl",
                   dataset=str(IRIS), checkpoint_every=20, resources_per_node={"gpu": 1}, schedule_timeout=120)
    created = client.train("iris-kube", train_mlp, package_dir=str(tmp_path / "job"), wait=False, **options)
    assert created.state == "Created" and created.progress_percentage is None

    job = fake.objects[("ml", "trainjobs", "iris-kube")]
    schema = json.loads((REPO / "schemas" / "trainjob.schema.json").read_text())
    jsonschema.validate({k: job[k] for k in ("apiVersion", "kind", "spec")} | {"metadata": {"name": "iris-kube"}},
                        schema)
    spec = job["spec"]
    assert (spec["trainer"]["numNodes"], spec["trainer"]["engine"]) == (2, "nccl")
    assert spec["runPolicy"] == {"backoffLimit": 3, "scheduleTimeoutSeconds": 120}
    component, dataset = spec["trainer"]["component"], spec["initializer"]["dataset"]
    assert _stored_bytes(wasm_run, store, component, tmp_path / "c") == [pathlib.Path(train_mlp).read_bytes()]
    assert _stored_bytes(wasm_run, store, dataset["digest"], tmp_path / "d") == [IRIS.read_bytes()]
    assert "path" not in dataset

    # The job reports as it runs; the client hands each new report on, then the end.
    job["status"] = {"state": "Running", "trainerStatus": {
        "progressPercentage": 40, "estimatedRemainingSeconds": 12, "lastUpdatedTime": "2026-12-04T10:00:00Z",
        "metrics": [{"name": "loss", "value": "0.5"}]}}

    def finish():
        job["status"] = {"state": "Complete", "message": "Complete: the workers finished training",
                         "trainerStatus": {"progressPercentage": 100, "lastUpdatedTime": "2026-12-04T10:00:09Z",
                                           "metrics": [{"name": "loss", "value": "0.06"}]}}

    timer = threading.Timer(1.5, finish)
    timer.start()
    seen = []
    done = client.wait_for_train_job("iris-kube", timeout=30, on_progress=seen.append)
    timer.join()
    assert done.state == "Complete" and done.metrics == {"loss": 0.06}
    assert seen[0] == {"progress_percentage": 40, "state": "Running", "estimated_remaining_seconds": 12,
                       "metrics": {"loss": 0.5}}, seen
    assert seen[-1]["progress_percentage"] == 100 and len(seen) == 2, seen

    # Still going past the timeout: an error naming it and what it waits for.
    job["status"] = {"state": "Created", "message": "WaitingForWorkers: 1 of 2 worker pods ready"}
    with pytest.raises(TimeoutError, match="ml/iris-kube not finished.*1 of 2 worker pods ready"):
        client.wait_for_train_job("iris-kube", timeout=0)
    # A failed job raises with its message.
    job["status"] = {"state": "Failed", "message": "GangTimeout: 1 of 2 worker pods ready after 300s"}
    with pytest.raises(TrainJobFailed, match="iris-kube Failed: GangTimeout") as failed:
        client.wait_for_train_job("iris-kube", timeout=30)
    assert failed.value.result.state == "Failed"
    assert client.get_train_job("iris-kube").message.startswith("GangTimeout")

    # The same name again is refused by the cluster, named; a bad job never reaches it.
    with pytest.raises(ValueError, match="TrainJob ml/iris-kube already exists"):
        client.train("iris-kube", train_mlp, package_dir=str(tmp_path / "job"), wait=False, **options)
    posts = [r for r in fake.requests if r[0] == "POST"]
    with pytest.raises(InvalidTrainJob, match="numProcPerNode must be at least 1"):
        client.train("bad", train_mlp, num_workers=0, package_dir=str(tmp_path / "bad"))
    assert [r for r in fake.requests if r[0] == "POST"] == posts
