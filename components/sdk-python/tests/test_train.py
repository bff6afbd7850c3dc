"""`weft.Client().train(...)`: a TrainJob written from Python and run by the real `wasm-run
train` (components/train-mlp as the trainer): progress reported per step, the run read back,
and a refused job raised with its located error."""

import os
import pathlib

import pytest
import yaml

import weft
from weft.train import InvalidTrainJob, build_train_job

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
