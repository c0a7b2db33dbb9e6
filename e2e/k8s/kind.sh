#!/usr/bin/env bash
# Strand on a real Kubernetes cluster (kind): builds and loads the broker and operator images,
# installs the chart, applies a Cluster and Topics, produces and consumes with kcat from a pod,
# deletes a broker pod and checks the cluster heals.
#
# Needs docker, kind, kubectl and helm. Run from anywhere:
#   e2e/k8s/kind.sh
# Environment:
#   KIND_CLUSTER=strand-e2e   name of the kind cluster (created if missing)
#   KEEP_CLUSTER=1            leave the kind cluster running afterwards
#   SKIP_BUILD=1              use the images already loaded (strand:e2e, strand-operator:e2e)
#   TIMEOUT=300s              how long each wait may take
set -euo pipefail
cd "$(dirname "$0")/../.."

KIND_CLUSTER=${KIND_CLUSTER:-strand-e2e}
TIMEOUT=${TIMEOUT:-300s}
NS=streaming
BROKER_IMAGE=strand:e2e
OPERATOR_IMAGE=strand-operator:e2e

step() { printf '\n==> %s\n' "$*"; }
fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }

for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || fail "$tool is not installed"
done

created_cluster=0
cleanup() {
    local status=$?
    if ((status != 0)); then
        echo "--- diagnostics ---" >&2
        kubectl get strand,statefulsets,pods -n "$NS" -o wide >&2 || true
        kubectl describe topics -n "$NS" >&2 || true
        kubectl logs -n strand-system deploy/strand-operator --tail=100 >&2 || true
    fi
    if ((created_cluster)) && [[ -z ${KEEP_CLUSTER:-} ]]; then
        kind delete cluster --name "$KIND_CLUSTER"
    fi
    exit "$status"
}
trap cleanup EXIT

if ! kind get clusters | grep -qx "$KIND_CLUSTER"; then
    step "creating kind cluster $KIND_CLUSTER"
    kind create cluster --name "$KIND_CLUSTER" --wait 120s
    created_cluster=1
fi
kubectl config use-context "kind-$KIND_CLUSTER" >/dev/null

if [[ -z ${SKIP_BUILD:-} ]]; then
    step "building images"
    docker build -f images/broker.Dockerfile -t "$BROKER_IMAGE" .
    docker build -f images/operator.Dockerfile -t "$OPERATOR_IMAGE" .
fi
step "loading images into kind"
kind load docker-image --name "$KIND_CLUSTER" "$BROKER_IMAGE" "$OPERATOR_IMAGE"

step "installing the chart"
helm upgrade --install strand-operator charts/strand-operator \
    --namespace strand-system --create-namespace \
    --set image.repository="${OPERATOR_IMAGE%%:*}" \
    --set image.tag="${OPERATOR_IMAGE##*:}" \
    --set image.pullPolicy=Never \
    --wait --timeout "$TIMEOUT"
# Helm installs CRDs only on first install; apply them so a re-run picks up changes.
kubectl apply --server-side -f charts/strand-operator/crds/ >/dev/null

step "applying a Cluster and Topics"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl apply -f - <<YAML
apiVersion: strand.dev/v1alpha1
kind: Cluster
metadata:
  name: events
  namespace: $NS
spec:
  replicas: 3
  # A tag other than latest is pulled only if not present, so the loaded image is used.
  image: $BROKER_IMAGE
  storage:
    size: 1Gi
---
apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: orders
  namespace: $NS
spec:
  clusterRef:
    name: events
  partitions: 6
  replicationFactor: 3
  config:
    retention.ms: 604800000
---
apiVersion: strand.dev/v1alpha1
kind: Topic
metadata:
  name: customers
  namespace: $NS
spec:
  clusterRef:
    name: events
  topicName: Customers_v1
  partitions: 3
  replicationFactor: 3
  config:
    cleanup.policy: compact
  deletionPolicy: Retain
YAML

step "waiting for the Cluster and Topics to be Ready"
kubectl wait -n "$NS" cluster/events --for=condition=Ready --timeout "$TIMEOUT"
kubectl wait -n "$NS" topic/orders topic/customers --for=condition=Ready --timeout "$TIMEOUT"
kubectl get strand -n "$NS"

step "producing and consuming with kcat"
bootstrap=$(kubectl get -n "$NS" cluster/events -o jsonpath='{.status.bootstrapServers}')
[[ -n $bootstrap ]] || fail "the Cluster reports no bootstrap servers"
kubectl run kcat -n "$NS" --rm -i --restart=Never --image=edenhill/kcat:1.7.1 \
    --command -- sh -c "
        set -e
        printf 'one\ntwo\nthree\n' | kcat -b $bootstrap -t orders -P -p 0
        out=\$(kcat -b $bootstrap -t orders -C -p 0 -o beginning -c 3 -e -q)
        test \"\$out\" = \"\$(printf 'one\ntwo\nthree')\" || { echo \"consumed: \$out\"; exit 1; }
        echo 'consumed the three records'
    " || fail "kcat could not produce and consume through $bootstrap"

step "deleting a broker pod and waiting for the cluster to heal"
kubectl delete pod -n "$NS" events-1 --wait=true
kubectl wait -n "$NS" pod/events-1 --for=condition=Ready --timeout "$TIMEOUT"
healed=0
for _ in $(seq 1 60); do
    ready=$(kubectl get -n "$NS" cluster/events \
        -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')
    under=$(kubectl get -n "$NS" cluster/events -o jsonpath='{.status.underReplicatedPartitions}')
    leaderless=$(kubectl get -n "$NS" cluster/events -o jsonpath='{.status.leaderlessPartitions}')
    if [[ $ready == True && ${under:-0} == 0 && ${leaderless:-0} == 0 ]]; then
        healed=1
        break
    fi
    sleep 5
done
((healed)) || fail "the cluster did not heal: Ready=$ready underReplicated=$under leaderless=$leaderless"
kubectl get strand -n "$NS"

step "deleting the Topics: orders is deleted, Customers_v1 is retained"
kubectl delete -n "$NS" topic/orders topic/customers --wait=true --timeout "$TIMEOUT"

echo
echo "PASSED"
