#!/usr/bin/env bash
# A real node for scripts/test-cluster.sh's control plane: the kubelet of the same
# k8s.io/kubernetes module, containerd and runc, on this machine's cgroup v1. Trainer pods sent
# to it run as real containers (the pod's security context, memory limit, termination message
# and logs are the kubelet's), where the stand-in scripts/e2e/node_agent.py only imitates them.
#   kubelet 1.37.2                         <- scripts/test-cluster.sh build (same module)
#   containerd 2.4.2 (CRI), its runc shim  <- Go module github.com/containerd/containerd/v2
#   runc, the CNI plugins (bridge)         <- Debian's runc and containernetworking-plugins
#   the pause image, the archlab images    <- built here as OCI archives (scripts/test-node/),
#                                             imported with `ctr images import`: no registry
#
#   scripts/test-node.sh build     fetch and build (cached)
#   scripts/test-node.sh start     (cluster running, KUBECONFIG set) start containerd and the
#                                  kubelet, import the images, wait for node archlab-node-0 Ready
#   scripts/test-node.sh stop      stop the kubelet, its containers and containerd; delete its files
#   scripts/test-node.sh kubelet-stop / kubelet-start
#                                  kill the kubelet alone (its containers run on: the node goes
#                                  silent, as a node cut off), and bring it back
#
# The node is labelled and tainted `archlab.dev/test-node=kubelet`: only pods that select and
# tolerate it run there (tests/e2e.rs's real-node scenario); the others stay with the stand-in.
# Images: `archlab:e2e` (= docker.io/library/archlab:e2e) and the operator's and trainer's
# release names, all the release binary ARCHLAB_BINARY (default
# $CARGO_TARGET_DIR/release/archlab) on glibc, user 65532, as docker/*.Dockerfile build them.
#
# ARCHLAB_NODE_CACHE (default ~/.cache/archlab-node) holds the build; ARCHLAB_NODE_RUN (default
# /tmp/archlab-test-node) the running node's files. Needs root: the kubelet creates cgroups,
# mounts and network namespaces.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${ARCHLAB_NODE_CACHE:-$HOME/.cache/archlab-node}
CLUSTER_CACHE=${ARCHLAB_CLUSTER_CACHE:-$HOME/.cache/archlab-kubernetes}
RUN=${ARCHLAB_NODE_RUN:-/tmp/archlab-test-node}
BIN=$CACHE/bin
CONTAINERD_VERSION=v2.4.2
NODE=archlab-node-0
# Not 10250: the stand-in node agent serves its logs there on 127.0.0.1.
KUBELET_PORT=${KUBELET_PORT:-10350}
POD_SUBNET=10.244.0.0/24
PAUSE_IMAGE=registry.k8s.io/pause:3.10.2
T0=$(date +%s)
log() { echo "== [$(($(date +%s) - T0))s] $*" >&2; }
mkdir -p "$BIN"

build() {
  if ! command -v runc > /dev/null || [ ! -x /usr/lib/cni/bridge ]; then
    flock /tmp/archlab-apt.lock apt-get update -qq -o DPkg::Lock::Timeout=600
    DEBIAN_FRONTEND=noninteractive flock /tmp/archlab-apt.lock apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
      --no-install-recommends runc containernetworking-plugins > /dev/null
  fi
  bash "$HERE/test-cluster.sh" build
  if [ "$(cat "$BIN/.containerd" 2>/dev/null)" != "$CONTAINERD_VERSION" ]; then
    local started
    started=$(date +%s)
    # `go install module@version` verifies the module against the checksum database.
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-modcacherw -trimpath -buildvcs=false" GOBIN="$BIN" \
      GOMODCACHE="$CACHE/gomod" GOCACHE="$CACHE/gocache" nice -n 10 go install \
      "github.com/containerd/containerd/v2/cmd/"{containerd,containerd-shim-runc-v2,ctr}"@$CONTAINERD_VERSION"
    echo "$CONTAINERD_VERSION" > "$BIN/.containerd"
    log "built containerd $CONTAINERD_VERSION in $(($(date +%s) - started)) s"
  fi
  if [ ! -x "$BIN/pause" ] || [ "$HERE/test-node/pause.c" -nt "$BIN/pause" ]; then
    gcc -static -O2 -Wall -Wextra -Werror -o "$BIN/pause" "$HERE/test-node/pause.c"
  fi
}

ctr() { "$BIN/ctr" --address "$RUN/containerd.sock" -n k8s.io "$@"; }

images() {
  local binary=${ARCHLAB_BINARY:-${CARGO_TARGET_DIR:-$HERE/../target}/release/archlab} name
  if [ ! -x "$binary" ]; then
    echo "test-node.sh: no archlab binary at $binary (build it: scripts/build-release.sh, or set ARCHLAB_BINARY)" >&2
    exit 1
  fi
  mkdir -p "$RUN/images"
  python3 "$HERE/test-node/oci_image.py" --name "$PAUSE_IMAGE" --out "$RUN/images/pause.tar" \
    --binary "$BIN/pause:/pause" --user 65535:65535 --entrypoint /pause > /dev/null
  ctr images import "$RUN/images/pause.tar" > /dev/null
  for name in docker.io/library/archlab:e2e=train ghcr.io/archlab/archlab:0.1.0-cpu=train \
      ghcr.io/archlab/archlab-operator:0.1.0=operator; do
    python3 "$HERE/test-node/oci_image.py" --name "${name%=*}" --out "$RUN/images/archlab.tar" \
      --binary "$binary:/usr/local/bin/archlab" --entrypoint archlab --cmd "${name#*=}" > /dev/null
    ctr images import "$RUN/images/archlab.tar" > /dev/null
  done
  rm -rf "$RUN/images"
  log "imported $(ctr images ls -q | grep -vc '^sha256:') images"
}

node_ip() {
  # The address of the default route's interface: the API server dials the kubelet there (it
  # refuses a loopback node IP).
  ip -4 route get 192.0.2.255 2> /dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -1
}

start() {
  build
  : "${KUBECONFIG:?test-node.sh: start the cluster first: eval \"\$(scripts/test-cluster.sh env)\"}"
  if [ -f "$RUN/kubelet.pid" ] && kill -0 "$(cat "$RUN/kubelet.pid")" 2> /dev/null; then
    log "already running"; return 0
  fi
  local ip runc
  ip=$(node_ip)
  runc=$(command -v runc)
  mkdir -p "$RUN/cni" "$RUN/pod-logs" "$RUN/kubelet"
  cat > "$RUN/containerd.toml" <<TOML
version = 3
root = "$RUN/containerd-root"
state = "$RUN/containerd-state"
[grpc]
  address = "$RUN/containerd.sock"
[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '$PAUSE_IMAGE'
[plugins.'io.containerd.cri.v1.runtime']
  # Root here lacks CAP_SYS_RESOURCE (a sandboxed VM): the kubelet's negative oom_score_adj
  # for the sandbox would be refused ("failed to update /proc/self/oom_score_adj").
  restrict_oom_score_adj = true
  # Network namespaces under this node's directory, so stop removes them.
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '$runc'
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['/usr/lib/cni']
    conf_dir = '$RUN/cni'
TOML
  cat > "$RUN/cni/10-archlab.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "archlab-test-node", "plugins": [
  {"type": "bridge", "bridge": "archlab0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_SUBNET"}]],
            "routes": [{"dst": "0.0.0.0/0"}], "dataDir": "$RUN/cni-ipam"}}]}
JSON
  PATH=$BIN:$PATH "$BIN/containerd" --config "$RUN/containerd.toml" > "$RUN/containerd.log" 2>&1 &
  echo $! > "$RUN/containerd.pid"
  for _ in $(seq 1 100); do [ -S "$RUN/containerd.sock" ] && break; sleep 0.1; done
  images
  cat > "$RUN/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# The build machines run cgroup v1, which kubelets since 1.35 refuse unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://$RUN/containerd.sock
podLogsDir: $RUN/pod-logs
address: $ip
port: $KUBELET_PORT
healthzPort: $((KUBELET_PORT - 2))
readOnlyPort: 0
# The test API server reaches the kubelet without a client certificate.
authentication: {anonymous: {enabled: true}, webhook: {enabled: false}}
authorization: {mode: AlwaysAllow}
serializeImagePulls: false
# The imported images cannot be pulled again: never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "200Mi", nodefs.available: "1%", imagefs.available: "1%", nodefs.inodesFree: "1%"}
resolvConf: /etc/resolv.conf
registerWithTaints:
- {key: archlab.dev/test-node, value: kubelet, effect: NoSchedule}
YAML
  start_kubelet "$ip"
  log "$NODE Ready at $ip: kubelet $("$CLUSTER_CACHE/bin/kubelet" --version | cut -d' ' -f2), containerd $CONTAINERD_VERSION, $("$(command -v runc)" --version | head -1)"
}

# The kubelet alone, with the configuration start wrote; waits until the node is Ready.
start_kubelet() {
  local ip=$1
  "$CLUSTER_CACHE/bin/kubelet" --config "$RUN/kubelet.yaml" --kubeconfig "$KUBECONFIG" \
    --root-dir "$RUN/kubelet" --hostname-override "$NODE" --node-ip "$ip" \
    --node-labels archlab.dev/test-node=kubelet >> "$RUN/kubelet.log" 2>&1 &
  echo $! > "$RUN/kubelet.pid"
  local kubectl=$CLUSTER_CACHE/bin/kubectl ready=0
  for _ in $(seq 1 120); do
    if [ "$("$kubectl" get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2> /dev/null)" = True ]; then
      ready=1; break
    fi
    kill -0 "$(cat "$RUN/kubelet.pid")" 2> /dev/null || break
    sleep 0.5
  done
  if [ "$ready" != 1 ]; then grep '^E' "$RUN/kubelet.log" | tail -20 >&2; stop; exit 1; fi
  # Registered with not-ready:NoSchedule; the node lifecycle controller lifts it within its
  # monitor period, this at once.
  "$kubectl" taint node "$NODE" node.kubernetes.io/not-ready:NoSchedule- > /dev/null 2>&1 || true
}

# The node's kubelet dies while its containers run on (containerd keeps them): to the control
# plane the node goes silent, as when a node is cut off. kubelet-start brings it back.
kubelet_stop() {
  [ -f "$RUN/kubelet.pid" ] || { log "no kubelet runs"; return 0; }
  kill -9 "$(cat "$RUN/kubelet.pid")" 2> /dev/null || true
  rm -f "$RUN/kubelet.pid"
  log "kubelet killed; containers run on"
}

kubelet_start() {
  : "${KUBECONFIG:?test-node.sh: start the cluster first}"
  [ -f "$RUN/kubelet.yaml" ] || { echo "test-node.sh: start the node first" >&2; exit 1; }
  start_kubelet "$(node_ip)"
  log "kubelet back; $NODE Ready"
}

stop() {
  if [ -f "$RUN/kubelet.pid" ]; then
    kill "$(cat "$RUN/kubelet.pid")" 2> /dev/null || true
    rm -f "$RUN/kubelet.pid"
  fi
  if [ -S "$RUN/containerd.sock" ]; then
    local task
    for task in $(ctr tasks ls -q 2> /dev/null); do ctr tasks kill -s SIGKILL "$task" > /dev/null 2>&1 || true; done
  fi
  pkill -f "containerd-shim-runc-v2 .*-address $RUN/containerd.sock" 2> /dev/null || true
  if [ -f "$RUN/containerd.pid" ]; then
    kill "$(cat "$RUN/containerd.pid")" 2> /dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$RUN/containerd.pid")" 2> /dev/null || break; sleep 0.1; done
    rm -f "$RUN/containerd.pid"
  fi
  # Volumes, rootfs overlays and network namespaces, deepest first.
  awk -v run="$RUN" 'index($2, run) == 1 {print $2}' /proc/mounts | sort -r | xargs -r umount -l 2> /dev/null || true
  ip link delete archlab0 2> /dev/null || true
  rm -rf "$RUN"
  log "stopped"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  kubelet-stop) kubelet_stop ;;
  kubelet-start) kubelet_start ;;
  *) echo "usage: $0 build|start|stop|kubelet-stop|kubelet-start" >&2; exit 2 ;;
esac
