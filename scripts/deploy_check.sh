#!/usr/bin/env bash
# Renders the Helm chart with the real `helm` and validates every rendered manifest and
# k8s/ against the Kubernetes schemas (`kubernetes-validate --strict`, which ships them:
# nothing is fetched at run time). Also checks that the chart refuses settings weaker
# than the README recommends, and that the Strimzi KafkaUsers of k8s/ and of the chart
# grant exactly deploy/kafka/acls.tsv.
#
# helm is built once from the Go module proxy (`go install`, cached in
# ~/.cache/registrar/bin); kubernetes-validate lives in .local/deploy-venv.
set -euo pipefail
cd "$(dirname "$0")/.."

HELM_VERSION=v4.3.2
KUBERNETES_VALIDATE=kubernetes-validate==1.37.0
CACHE=${REGISTRAR_CACHE:-$HOME/.cache/registrar}
BIN=$CACHE/bin
VENV=.local/deploy-venv
log() { echo "[deploy-check] $*"; }

helm=$BIN/helm-$HELM_VERSION
if [[ ! -x $helm ]]; then
    command -v go > /dev/null || { echo "go is needed to build helm" >&2; exit 1; }
    log "building helm $HELM_VERSION with go install (once; a few minutes cold)"
    mkdir -p "$BIN"
    tmp=$(mktemp -d)
    GOBIN=$tmp GOFLAGS=-mod=mod go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
    mv "$tmp/helm" "$helm"
    rmdir "$tmp"
fi
validate=$VENV/bin/kubernetes-validate
if ! "$validate" --version 2>/dev/null | grep -q "${KUBERNETES_VALIDATE#*==}"; then
    log "installing $KUBERNETES_VALIDATE into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "$KUBERNETES_VALIDATE"
fi

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
chart=helm/registrar
secrets=$chart/ci/secrets-values.yaml

log "helm lint"
"$helm" lint --strict "$chart" -f "$secrets" > "$out/lint.log" || { cat "$out/lint.log"; exit 1; }

render() { # name, extra helm arguments...
    local name=$1; shift
    "$helm" template registrar "$chart" --namespace registrar -f "$secrets" "$@" > "$out/$name.yaml"
    log "rendered $name: $(grep -c '^kind:' "$out/$name.yaml") objects"
}
render default
render tls-sasl -f "$chart/ci/tls-values.yaml"

# Weaker than recommended: refused unless explicitly allowed.
refused() { # what, helm arguments...
    local what=$1; shift
    if "$helm" template registrar "$chart" -f "$secrets" "$@" > /dev/null 2> "$out/refused.log"; then
        echo "the chart rendered $what" >&2; exit 1
    fi
    log "refused $what: $(grep -o 'execution error.*' "$out/refused.log" | cut -c1-120)"
}
refused "an unauthenticated Kafka listener" --set kafka.securityProtocol=plaintext
refused "a DATABASE_URL without sslmode=verify-full" \
    --set secrets.DATABASE_URL=postgres://u:p@db:5432/registrar?sslmode=require
render plaintext-allowed --set kafka.securityProtocol=plaintext --set kafka.allowUnauthenticated=true

log "kubernetes-validate --strict (Kubernetes $("$validate" --version | awk '{print $NF}') schemas)"
# Custom resources (Strimzi, KEDA, Prometheus Operator) have no schema there: reported
# and skipped (listed below); every built-in kind must validate.
"$validate" --strict --quiet --no-warn "$out"/default.yaml "$out"/tls-sasl.yaml "$out"/plaintext-allowed.yaml k8s/*.yaml

log "custom resources not schema-checked: $(cat "$out"/*.yaml k8s/*.yaml | grep -h '^kind:' | sort -u | awk '{print $2}' | grep -E 'KafkaUser|ScaledObject|TriggerAuthentication|ServiceMonitor|PrometheusRule' | tr '\n' ' ')"
log "KafkaUser ACLs of k8s/ and of the chart = deploy/kafka/acls.tsv"
"$VENV/bin/python" scripts/kafka_acls.py deploy/kafka/acls.tsv k8s/kafka-users.yaml "$out/default.yaml"
log "ok"
