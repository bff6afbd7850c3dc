"""`weft.Client(kube=True)` through the real `kubernetes` client against a stand-in API server
(the weft.dev/v1alpha1 endpoints, kept in memory: `cluster` in conftest.py): components go
into the artifact store by digest, the Pipeline is applied (again: replaced), a PipelineRun is
created and its status, written as the operator writes it, is read back."""

import pytest

import weft
from weft import Dataset, Input, Output


@weft.component
def emit(n: int, rows: Output[Dataset]):
    with open(rows.path, "w") as f:
        f.write("\n".join(str(i) for i in range(n)))


@weft.component
def count(rows: Input[Dataset]) -> int:
    with open(rows.path) as f:
        return len(f.read().split())


@weft.pipeline(name="count-rows")
def count_rows(n: int = 5):
    count(rows=emit(n=n).outputs["rows"])


def test_a_pipeline_is_submitted_as_a_pipeline_run(tmp_path, wasm_run, cluster, schema):
    import jsonschema

    fake, kubeconfig = cluster
    store = tmp_path / "store"
    client = weft.Client(home=str(tmp_path / "home"), wasm_run=wasm_run, kube=True, namespace="ml",
                         artifact_store=f"file://{store}", kubeconfig=kubeconfig)
    run = client.create_run_from_pipeline_func(count_rows, arguments={"n": 7}, package_dir=str(tmp_path / "pkg"),
                                               hermetic_seed=3)
    assert run.state == "PENDING" and run.run_id.startswith("count-rows-"), run

    pipeline = fake.objects[("ml", "pipelines", "count-rows")]
    # As sent (the server added namespace and resourceVersion), it is a valid Pipeline.
    jsonschema.validate({**pipeline, "metadata": {"name": pipeline["metadata"]["name"]}}, schema)
    sources = {n: c["source"] for n, c in pipeline["spec"]["components"].items()}
    assert all(s.startswith("sha256:") for s in sources.values()), sources
    # The digests name the built components, readable from the store by another home.
    for name, digest in sources.items():
        got = tmp_path / "got" / name
        other = weft.Client(home=str(tmp_path / "other-home"), wasm_run=wasm_run)
        other._run("--artifact-store", f"file://{store}", "artifacts", "get", digest, "--to", str(got))
        built = (tmp_path / "pkg" / "components" / f"{name}.wasm").read_bytes()
        assert [p.read_bytes() for p in got.rglob("*") if p.is_file()] == [built], name

    created = fake.objects[("ml", "pipelineruns", run.run_id)]
    assert created["spec"] == {"pipelineRef": "count-rows", "params": {"n": 7}, "hermeticSeed": 3}

    # Submitting again replaces the Pipeline (resourceVersion carried) and makes a second run.
    second = client.create_run_from_pipeline_func(count_rows, run_name="again", package_dir=str(tmp_path / "pkg"))
    assert second.run_id == "again"
    assert ("PUT", "/apis/weft.dev/v1alpha1/namespaces/ml/pipelines/count-rows") in fake.requests
    assert fake.objects[("ml", "pipelines", "count-rows")]["metadata"]["resourceVersion"] == "2"

    # The operator reports; the client reads the state and each task's artifacts.
    digest = "sha256:" + "ab" * 32
    created["status"] = {"state": "SUCCEEDED", "tasks": {
        "emit": {"state": "SUCCEEDED", "artifacts": {"rows": digest}},
        "count": {"state": "SUCCEEDED"}}}
    done = client.wait_for_run_completion(run.run_id, timeout=30)
    assert done.state == "SUCCEEDED"
    assert {t["name"]: t["state"] for t in done.tasks} == {"count": "SUCCEEDED", "emit": "SUCCEEDED"}
    assert done.artifacts == [{"task": "emit", "name": "rows", "digest": digest, "direction": "output"}]
    runs = {r["run_id"]: r["state"] for r in client.list_runs()}
    assert runs == {run.run_id: "SUCCEEDED", "again": "PENDING"}

    # A run still going past the timeout is an error naming it.
    with pytest.raises(TimeoutError, match="ml/again not finished"):
        client.wait_for_run_completion("again", timeout=0)


def test_a_cluster_client_needs_a_store():
    with pytest.raises(ValueError, match="artifact_store"):
        weft.Client(kube=True, wasm_run="wasm-run")
