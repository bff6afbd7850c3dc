"""Cluster runs for `weft.Client(kube=True)`: a compiled pipeline goes to the cluster the way
`operator/e2e/kind.sh` sends one by hand. Its components (and default input files) are put into
the shared artifact store by digest (`wasm-run --artifact-store URL artifacts put`), the Pipeline
is applied with those digests as sources, and a PipelineRun naming it is created; the operator
does the rest, and its status (state, per-task reports) is read back from the PipelineRun.

Needs the `kubernetes` package (which brings PyYAML), as kubectl needs a kubeconfig."""

import copy
import os
import subprocess
import time
from typing import Any, Dict, List, Optional

GROUP, VERSION = "weft.dev", "v1alpha1"
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def _api(kubeconfig: Optional[str]):
    try:
        from kubernetes import client, config  # type: ignore
    except ImportError as e:
        raise RuntimeError("Client(kube=True) needs the kubernetes package: pip install kubernetes") from e
    api_client = config.new_client_from_config(config_file=kubeconfig)
    return client.CustomObjectsApi(api_client), client.exceptions.ApiException


def load_pipeline(path: str) -> Dict[str, Any]:
    import yaml  # PyYAML: a dependency of the kubernetes package

    with open(path) as f:
        doc = yaml.safe_load(f)
    if not isinstance(doc, dict) or doc.get("kind") != "Pipeline":
        raise ValueError(f"{path}: not a Pipeline (kind: {doc.get('kind') if isinstance(doc, dict) else None!r})")
    return doc


class KubeRuns:
    """PipelineRuns in `namespace` of the kubeconfig's cluster, components through `store`."""

    def __init__(self, namespace: str, store: str, put, kubeconfig: Optional[str] = None):
        self.namespace = namespace
        self.store = store
        self._put = put  # path -> digest, through wasm-run with --artifact-store
        self.api, self._error = _api(kubeconfig)

    def stored(self, doc: Dict[str, Any], base: str) -> Dict[str, Any]:
        """`doc` with every local component and default input file replaced by its digest."""
        doc = copy.deepcopy(doc)
        spec = doc["spec"]
        for decl in list(spec.get("components", {}).values()) + list(spec.get("artifacts", {}).values()):
            key = "source" if "source" in decl else "path"
            value = decl.get(key)
            if isinstance(value, str) and not value.startswith("sha256:"):
                decl[key] = self._put(os.path.join(base, value))
        return doc

    def apply_pipeline(self, doc: Dict[str, Any]) -> None:
        name = doc["metadata"]["name"]
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Pipeline",
                "metadata": {"name": name}, "spec": doc["spec"]}
        try:
            self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "pipelines", body)
        except self._error as e:
            if e.status != 409:
                raise
            current = self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "pipelines", name)
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            self.api.replace_namespaced_custom_object(GROUP, VERSION, self.namespace, "pipelines", name, body)

    def create_run(self, pipeline: str, params: Dict[str, Any], run_name: Optional[str],
                   hermetic_seed: Optional[int]) -> Dict[str, Any]:
        meta = {"name": run_name} if run_name else {"generateName": f"{pipeline}-"}
        spec: Dict[str, Any] = {"pipelineRef": pipeline, "params": params}
        if hermetic_seed is not None:
            spec["hermeticSeed"] = hermetic_seed
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "PipelineRun", "metadata": meta, "spec": spec}
        return self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, "pipelineruns", body)

    def get(self, name: str) -> Dict[str, Any]:
        return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, "pipelineruns", name)

    def list(self) -> List[Dict[str, Any]]:
        return self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, "pipelineruns")["items"]

    def wait(self, name: str, timeout: float, poll: float = 1.0) -> Dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(name)
            if (run.get("status") or {}).get("state") in TERMINAL:
                return run
            if time.monotonic() >= deadline:
                raise TimeoutError(f"PipelineRun {self.namespace}/{name} not finished after {timeout:.0f}s "
                                   f"(state {(run.get('status') or {}).get('state')})")
            time.sleep(poll)


def put_with(cmd_prefix: List[str], store: str):
    """A `put(path) -> digest` that stores through `wasm-run --artifact-store store`."""

    def put(path: str) -> str:
        done = subprocess.run(cmd_prefix + ["--artifact-store", store, "artifacts", "put", path],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"storing {path} in {store} failed: {done.stderr.strip()}")
        return done.stdout.strip().splitlines()[-1]

    return put
