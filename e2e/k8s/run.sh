#!/usr/bin/env bash
# The Kubernetes end-to-end suite (e2e/k8s/suite) on this machine's local control plane
# (../shared/k8s: a real API server and controller-manager, pods run as processes): builds
# the release binaries, maps the images to them, starts the control plane, runs every
# journey with the operator in-cluster, and stops everything it started, whatever happens.
#
#   e2e/k8s/run.sh              (as root, from anywhere)
# Environment:
#   K8S_KIT   the local control plane kit (default: ../shared/k8s beside the repository)
#   KEEP=1    leave the control plane running afterwards (for a look around)
#   STRAND_E2E_JOURNEYS=secure,scale   run only the journeys whose names hold one of the words
# Against another cluster (kind, k3d), with images loaded into it and KUBECONFIG set:
#   STRAND_BIN=target/release/strand cargo test -p strand-e2e --test k8s
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
kit=${K8S_KIT:-$root/../shared/k8s}
[[ -x $kit/up.sh ]] || { echo "no local control plane kit at $kit (set K8S_KIT)" >&2; exit 1; }
export K8S_LOCAL=${K8S_LOCAL:-/var/tmp/strand-k8s}

echo "==> building release binaries"
cargo build --release --locked -p strand -p strand-operator
cargo test --locked -p strand-e2e --test k8s --no-run

work=$(mktemp -d)
stop() {
    local status=$?
    if [[ -z ${KEEP:-} ]]; then
        "$kit/down.sh" --purge >/dev/null 2>&1 || "$kit/down.sh" --purge || true
    fi
    rm -rf "$work"
    exit "$status"
}
trap stop EXIT

# Images are executables here: the broker image runs `strand`, the operator image
# `strand-operator`, with the paths their Dockerfiles give them.
cat > "$work/image-map.yaml" <<YAML
images:
  ghcr.io/strand-dev/strand:
    entrypoint: [$root/target/release/strand]
    paths: {/usr/local/bin/strand: $root/target/release/strand}
  ghcr.io/strand-dev/strand-operator:
    entrypoint: [$root/target/release/strand-operator]
  edenhill/kcat: {entrypoint: [/usr/bin/kcat]}
YAML

echo "==> starting the control plane"
"$kit/up.sh" "$work/image-map.yaml"
export KUBECONFIG=$K8S_LOCAL/kubeconfig
export STRAND_BIN=$root/target/release/strand
export STRAND_E2E_PKUBELET="$K8S_LOCAL/venv/bin/python $kit/pkubelet/pkubelet.py"

echo "==> journeys"
cargo test --locked -p strand-e2e --test k8s
