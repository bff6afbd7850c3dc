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
#: Katib's ended experiment states.
EXPERIMENT_TERMINAL = ("Succeeded", "Failed")
#: Trainer's ended TrainJob states.
TRAINJOB_TERMINAL = ("Complete", "Failed")


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

    def get(self, name: str, plural: str = "pipelineruns") -> Dict[str, Any]:
        return self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, name)

    def list(self, plural: str = "pipelineruns") -> List[Dict[str, Any]]:
        return self.api.list_namespaced_custom_object(GROUP, VERSION, self.namespace, plural)["items"]

    def wait(self, name: str, timeout: Optional[float], poll: float = 1.0, plural: str = "pipelineruns",
             terminal=TERMINAL) -> Dict[str, Any]:
        """The object once its `status.state` is terminal; `timeout` None waits as long as it takes."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            obj = self.get(name, plural)
            if (obj.get("status") or {}).get("state") in terminal:
                return obj
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"{obj.get('kind', plural)} {self.namespace}/{name} not finished after "
                                   f"{timeout:.0f}s (state {(obj.get('status') or {}).get('state')})")
            time.sleep(poll)

    # Experiments (weft.dev/v1alpha1 Experiment: the operator runs its trials in a runner pod).

    def stored_experiment(self, doc: Dict[str, Any], base: str) -> Dict[str, Any]:
        """`doc` ready for the cluster: a component template's source and inputs become digests
        in the store; a pipeline template's file becomes a Pipeline object (its components
        stored) that `pipelineRef` names, as the operator looks it up."""
        doc = copy.deepcopy(doc)
        template = doc["spec"]["trialTemplate"]
        component = template.get("component")
        if component is not None:
            component["source"] = self._digest(component["source"], base)
            for key, value in (component.get("inputs") or {}).items():
                component["inputs"][key] = self._digest(value, base)
        pipeline = template.get("pipeline")
        if pipeline is not None:
            path = os.path.join(base, pipeline["pipelineRef"])
            stored = self.stored(load_pipeline(path), os.path.dirname(path))
            self.apply_pipeline(stored)
            pipeline["pipelineRef"] = stored["metadata"]["name"]
        return doc

    def _digest(self, value: str, base: str) -> str:
        return value if value.startswith("sha256:") else self._put(os.path.join(base, value))

    def create_experiment(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        return self._create(doc, "experiments")


    # TrainJobs (weft.dev/v1alpha1 TrainJob: the operator runs its workers, in pods of their
    # own when its ranks span nodes).

    def stored_train_job(self, doc: Dict[str, Any], base: str) -> Dict[str, Any]:
        """`doc` ready for the cluster: the trainer component and the initializer's paths
        become digests in the store."""
        doc = copy.deepcopy(doc)
        trainer = doc["spec"]["trainer"]
        trainer["component"] = self._digest(trainer["component"], base)
        for ref in (doc["spec"].get("initializer") or {}).values():
            path = ref.pop("path", None)
            if path is not None:
                ref["digest"] = self._put(os.path.join(base, path))
        return doc

    def create_train_job(self, doc: Dict[str, Any]) -> Dict[str, Any]:
        return self._create(doc, "trainjobs")

    def _create(self, doc: Dict[str, Any], plural: str) -> Dict[str, Any]:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": doc["kind"],
                "metadata": {"name": doc["metadata"]["name"]}, "spec": doc["spec"]}
        try:
            return self.api.create_namespaced_custom_object(GROUP, VERSION, self.namespace, plural, body)
        except self._error as e:
            if e.status == 409:
                raise ValueError(f"{doc['kind']} {self.namespace}/{doc['metadata']['name']} already exists: "
                                 "delete it or choose another name") from None
            raise


def put_with(cmd_prefix: List[str], store: str):
    """A `put(path) -> digest` that stores through `wasm-run --artifact-store store`."""

    def put(path: str) -> str:
        done = subprocess.run(cmd_prefix + ["--artifact-store", store, "artifacts", "put", path],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"storing {path} in {store} failed: {done.stderr.strip()}")
        return done.stdout.strip().splitlines()[-1]

    return put
