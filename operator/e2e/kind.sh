#!/usr/bin/env bash
# End to end on a real cluster (kind or k3d), run by hand: needs docker, kind (or a current
# kubectl context), kubectl and helm. CI cannot run it (no container engine, no cluster);
# `cargo test -p weft-operator --test cluster -- --ignored` runs it from the test suite.
#
# It builds the image, loads it into kind, installs the chart with MinIO as the artifact store,
# stores the example's components and data by digest, runs the iris pipeline as a PipelineRun,
# serves the model it trains as an InferenceService, queries it over V2, and trains the iris
# MLP as a TrainJob of 2 worker pods of 2 MPI ranks each (engine mpi: the MPI image's launcher
# and workers, reached over ssh through a headless Service).
set -euo pipefail
cd "$(dirname "$0")/../.."
CLUSTER=${CLUSTER:-weft-e2e}
IMAGE=${IMAGE:-weft:e2e}
NS=weft-e2e

step() { printf '\n== %s\n' "$*"; }

step "cluster"
if [[ -z "${USE_CURRENT_CONTEXT:-}" ]]; then
  kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
  kubectl config use-context "kind-$CLUSTER"
fi

step "image"
docker build -t "$IMAGE" .
# The chart's default MPI image is the image's tag with `-mpi`.
docker build -f Dockerfile.mpi -t "$IMAGE-mpi" .
if [[ -z "${USE_CURRENT_CONTEXT:-}" ]]; then
  kind load docker-image "$IMAGE" "$IMAGE-mpi" --name "$CLUSTER"
fi

step "MinIO (the S3-compatible artifact store)"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" apply -f operator/e2e/minio.yaml
kubectl -n "$NS" rollout status deploy/minio --timeout=180s
kubectl -n "$NS" create secret generic weft-s3 --dry-run=client -o yaml \
  --from-literal=AWS_ACCESS_KEY_ID=weft --from-literal=AWS_SECRET_ACCESS_KEY=weftweft \
  --from-literal=AWS_REGION=us-east-1 --from-literal=AWS_ENDPOINT_URL=http://minio:9000 \
  --from-literal=AWS_ALLOW_HTTP=true | kubectl apply -f -

step "operator"
helm upgrade --install weft operator/chart -n "$NS" \
  --set image.repository="${IMAGE%%:*}" --set image.tag="${IMAGE##*:}" --set image.pullPolicy=Never \
  --set artifactStore=s3://weft/artifacts --set storeSecret=weft-s3
kubectl -n "$NS" rollout status deploy/weft-operator --timeout=120s

step "components and data into the store, by digest"
kubectl -n "$NS" port-forward svc/minio 9000:9000 >/dev/null 2>&1 &
PF=$!
trap 'kill $PF' EXIT
sleep 2
cargo xtask components >/dev/null
export AWS_ACCESS_KEY_ID=weft AWS_SECRET_ACCESS_KEY=weftweft AWS_REGION=us-east-1 \
  AWS_ENDPOINT_URL=http://127.0.0.1:9000 AWS_ALLOW_HTTP=true
WASM_RUN="cargo run -q --release -p wasm-run --features s3 -- --artifact-store s3://weft/artifacts"
declare -A DIGEST
for c in csv-transform split standardize train-logreg evaluate publish iris-predictor train-mlp; do
  DIGEST[$c]=$($WASM_RUN artifacts put "target/wasm-guests/components/$c.wasm")
done
sed -e "s#source: ../../../target/wasm-guests/components/\(.*\)\.wasm#source: COMPONENT_\1#" \
  examples/pipelines/iris/pipeline.yaml > /tmp/weft-iris.yaml
for c in "${!DIGEST[@]}"; do sed -i "s#COMPONENT_$c\$#${DIGEST[$c]}#" /tmp/weft-iris.yaml; done
DATA=$($WASM_RUN artifacts put examples/data/iris.csv)
sed -i "s#path: ../../data/iris.csv#path: $DATA#" /tmp/weft-iris.yaml
# train asks for resources of its own (as a GPU task would): it runs in a pod of its own.
sed -i 's#^      memory: 128MiB$#      memory: 128MiB\n      resources: {cpu: 500m, memory: 256Mi}#' /tmp/weft-iris.yaml
grep -q 'resources: {cpu: 500m' /tmp/weft-iris.yaml

step "the pipeline, as a PipelineRun"
kubectl -n "$NS" apply -f /tmp/weft-iris.yaml
kubectl -n "$NS" apply -f - <<YAML
apiVersion: weft.dev/v1alpha1
kind: PipelineRun
metadata: {name: iris-e2e}
spec: {pipelineRef: iris-classifier}
YAML
kubectl -n "$NS" wait pipelinerun/iris-e2e --for=jsonpath='{.status.state}'=SUCCEEDED --timeout=300s
kubectl -n "$NS" get pipelinerun iris-e2e -o jsonpath='{.status.tasks}'; echo
kubectl -n "$NS" get jobs -l weft.dev/pipelinerun=iris-e2e,weft.dev/task=train -o name | grep -q . \
  || { echo "train did not run in a pod of its own"; exit 1; }

step "the trained model, served"
# The runner reported each task's output artifacts: the model is the train task's.
MODEL=$(kubectl -n "$NS" get pipelinerun iris-e2e -o jsonpath='{.status.tasks.train.artifacts.model}')
kubectl -n "$NS" apply -f - <<YAML
apiVersion: weft.dev/v1alpha1
kind: InferenceService
metadata: {name: iris}
spec:
  predictor: {component: "${DIGEST[iris-predictor]}", storageUri: "$MODEL"}
YAML
kubectl -n "$NS" wait inferenceservice/iris --for=condition=Ready --timeout=180s
kubectl -n "$NS" run v2-client --rm -i --restart=Never --image=curlimages/curl -- \
  curl -sf http://iris/v2/models/iris/infer -H 'Content-Type: application/json' \
  -d '{"inputs":[{"name":"input","datatype":"FP32","shape":[1,4],"data":[-0.9,1.0,-1.3,-1.3]}]}'
echo

step "distributed training: a TrainJob on 2 worker pods (engine mpi)"
kubectl -n "$NS" apply -f - <<YAML
apiVersion: weft.dev/v1alpha1
kind: TrainJob
metadata: {name: iris-mpi}
spec:
  trainer:
    component: "${DIGEST[train-mlp]}"
    params: {label: species, epochs: 200, learning_rate: 0.05, optimizer: sgd}
    numNodes: 2
    numProcPerNode: 2
    engine: mpi
    resourcesPerNode: {cpu: 500m, memory: 512Mi}
  initializer:
    dataset: {digest: "$DATA"}
  checkpoint: {everySteps: 20}
  runPolicy: {scheduleTimeoutSeconds: 300}
YAML
kubectl -n "$NS" wait trainjob/iris-mpi --for=jsonpath='{.status.state}'=Complete --timeout=600s
kubectl -n "$NS" get trainjob iris-mpi -o jsonpath='{.status.trainerStatus}'; echo
# The gang's workers are released once it ends; the launcher's log shows all 4 ranks.
kubectl -n "$NS" wait job/iris-mpi-node --for=delete --timeout=60s
kubectl -n "$NS" logs job/iris-mpi-runner | grep -q "4 workers"

step "passed"
