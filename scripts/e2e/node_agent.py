#!/usr/bin/env python3
"""A stand-in for the kubelet on scripts/test-cluster.sh's control plane (test code, not product),
for the scenarios that inject what a real node cannot produce on demand (node loss, a GPU
node, a hung trainer); scripts/test-node.sh runs a real kubelet beside it. It

- registers fake-node-0 as Ready with CPU, memory and `nvidia.com/gpu` capacity (--gpus), so the
  real scheduler decides where pods go and refuses pods asking for more GPUs than the node has;
- runs each pod bound to the node as a local process from the pod's command, args and env
  (`archlab` is --archlab; `--device cuda` becomes `cpu`: no GPU here), its termination message
  file redirected to a private path;
- serves the container's log over HTTPS as a kubelet does (`/containerLogs/NS/POD/CONTAINER`,
  with `follow`), so `kubectl logs` and the operator's log stream go through the real API server;
- reports Running, then the termination (exit code, reason, message: the file's last 4096 bytes,
  or the log's last 80 lines within 2048 bytes on a failure without one, as the kubelet does)
  in the pod's status, enforces
  activeDeadlineSeconds, and force-deletes pods marked for deletion (nothing else would);
- injects failures on request: --inject oom=POD (killed, OOMKilled, 137), evict=POD (Failed,
  Evicted), node-lost=POD (Unknown, NodeLost), exit=POD (the trainer exits 1 before training),
  silent=POD (a process that prints nothing and runs on in the trainer's place).

    eval "$(scripts/test-cluster.sh env)"
    python3 scripts/e2e/node_agent.py --archlab target/debug/archlab --gpus 2
"""
import argparse
import datetime
import http.server
import json
import os
import signal
import socketserver
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse

NODE = "fake-node-0"


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def kubectl(*args, stdin=None):
    result = subprocess.run(["kubectl", *args], input=stdin, capture_output=True, text=True)
    if result.returncode != 0 and "NotFound" not in result.stderr:
        print(f"kubectl {' '.join(args[:4])}…: {result.stderr.strip()}", file=sys.stderr, flush=True)
    return result


class Run:
    """One pod's process."""

    def __init__(self, pod, process, log_path, term_path, finished=False):
        self.pod = pod
        self.process = process
        self.log_path = log_path
        self.term_path = term_path
        self.started = time.time()
        self.started_at = now()
        self.finished = finished


class Agent:
    def __init__(self, options):
        self.options = options
        self.work = options.workdir
        os.makedirs(os.path.join(self.work, "logs"), exist_ok=True)
        os.makedirs(os.path.join(self.work, "term"), exist_ok=True)
        self.runs = {}
        self.lock = threading.Lock()
        self.injections = {}
        for item in options.inject:
            kind, _, pod = item.partition("=")
            self.injections[pod] = kind

    # --- the node ---------------------------------------------------------------------------
    def register(self):
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE, "labels": {
            "kubernetes.io/hostname": NODE, "kubernetes.io/os": "linux", "nvidia.com/gpu.present": "true"}}}
        kubectl("apply", "-f", "-", stdin=json.dumps(node))
        kubectl("taint", "node", NODE, "node.kubernetes.io/not-ready:NoSchedule-")
        self.heartbeat()

    def heartbeat(self):
        capacity = {"cpu": "32", "memory": "256Gi", "pods": "110", "nvidia.com/gpu": str(self.options.gpus)}
        status = {"status": {
            "capacity": capacity, "allocatable": capacity,
            # Only an IP: the API server dials the first address type it prefers (Hostname
            # first), and the node's name resolves nowhere.
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.options.port}},
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "archlab's test node agent", "lastHeartbeatTime": now(),
                            "lastTransitionTime": now()}]}}
        kubectl("patch", "node", NODE, "--subresource=status", "--type=merge", "-p", json.dumps(status))

    # --- pods -------------------------------------------------------------------------------
    def patch_status(self, pod, status):
        meta = pod["metadata"]
        kubectl("patch", "pod", meta["name"], "-n", meta["namespace"], "--subresource=status",
                "--type=merge", "-p", json.dumps({"status": status}))

    def container_status(self, pod, state, ready):
        container = pod["spec"]["containers"][0]
        return [{"name": container["name"], "image": container.get("image", ""), "imageID": "",
                 "ready": ready, "restartCount": 0, "state": state}]

    def volume_path(self, pod, argument):
        """A path under a volume's mountPath, as this node stores the volume: an emptyDir per
        pod, a claim per namespace and claim name (it outlives the pod, as a claim does)."""
        spec = pod["spec"]
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for mount in spec["containers"][0].get("volumeMounts", []):
            root = mount["mountPath"].rstrip("/")
            if argument != root and not argument.startswith(root + "/"):
                continue
            volume = volumes.get(mount["name"], {})
            if "emptyDir" in volume:
                local = os.path.join(self.work, "volumes", pod["metadata"]["uid"], mount["name"])
            elif "persistentVolumeClaim" in volume:
                local = os.path.join(self.work, "claims", pod["metadata"]["namespace"],
                                     volume["persistentVolumeClaim"]["claimName"])
            else:
                continue
            os.makedirs(local, exist_ok=True)
            return local + argument[len(root):]
        return argument

    def start(self, pod):
        meta, spec = pod["metadata"], pod["spec"]
        key = meta["uid"]  # a pod of the same name later is another pod
        container = spec["containers"][0]
        command = list(container.get("command", [])) + list(container.get("args", []))
        command = [self.volume_path(pod, a) for a in command]
        if command and command[0] == "archlab":
            command[0] = self.options.archlab
        term_path = os.path.join(self.work, "term", key)
        log_path = os.path.join(self.work, "logs", key)
        command = [term_path if a == container.get("terminationMessagePath", "/dev/termination-log") else a
                   for a in command]
        command = ["cpu" if a == "cuda" else a for a in command]
        if self.injections.get(meta["name"]) == "start-error":
            # The runtime could not start the container (no NVIDIA runtime on the node): exit 128,
            # never started, and the pod fails.
            self.patch_status(pod, {"phase": "Failed", "startTime": now(), "containerStatuses": self.container_status(
                pod, {"terminated": {"exitCode": 128, "reason": "StartError", "finishedAt": now(),
                                     "message": "failed to create containerd task: nvidia-container-cli: initialization error"}},
                False)})
            with self.lock:
                self.runs[key] = Run(pod, None, "", "", finished=True)
            print(f"start error {meta['name']}", flush=True)
            return
        if self.injections.get(meta["name"]) == "silent":
            # A hung trainer: runs on, prints nothing.
            command = ["sleep", "600"]
        if self.injections.get(meta["name"]) == "exit":
            command = [self.options.archlab, "train", "--program-env", "ARCHLAB_INJECTED_MISSING",
                       "--config-env", "ARCHLAB_INJECTED_MISSING"]
        # A new pod is a new container: nothing of an earlier pod of the same name remains.
        if os.path.exists(term_path):
            os.remove(term_path)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": self.work}
        for variable in container.get("env", []):
            env[variable["name"]] = variable.get("value", "")
        log = open(log_path, "wb")
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.work,
                                   start_new_session=True)
        run = Run(pod, process, log_path, term_path)
        with self.lock:
            self.runs[key] = run
        self.patch_status(pod, {
            "phase": "Running", "startTime": run.started_at, "hostIP": "127.0.0.1", "podIP": "127.0.0.1",
            "conditions": [{"type": t, "status": "True", "lastTransitionTime": now()}
                           for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
            "containerStatuses": self.container_status(pod, {"running": {"startedAt": run.started_at}}, True)})
        print(f"started {key}", flush=True)

    def finish(self, run, status):
        run.finished = True
        self.patch_status(run.pod, status)
        print(f"ended {run.pod['metadata']['name']}: {status.get('phase')} {status.get('reason', '')}", flush=True)

    def terminated(self, run, exit_code, reason, message):
        return self.container_status(run.pod, {"terminated": {
            "exitCode": exit_code, "reason": reason, "message": message,
            "startedAt": run.started_at, "finishedAt": now()}}, False)

    def kill(self, run):
        try:
            os.killpg(run.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        run.process.wait()

    def check(self, run):
        name = run.pod["metadata"]["name"]
        injection = self.injections.get(name)
        elapsed = time.time() - run.started
        deadline = run.pod["spec"].get("activeDeadlineSeconds")
        # An injected failure wins over however the process ended (tiny trainers end at once).
        if injection in ("oom", "evict", "node-lost", "disrupt"):
            self.kill(run)
            if injection == "disrupt":
                # Preempted: the pod is marked a disruption target, its trainer killed (137).
                self.finish(run, {"phase": "Failed", "conditions": [{
                    "type": "DisruptionTarget", "status": "True", "reason": "PreemptionByScheduler",
                    "message": f"{NODE}: preempting to accommodate a higher priority pod",
                    "lastTransitionTime": now()}],
                    "containerStatuses": self.terminated(run, 137, "Error", "")})
            elif injection == "oom":
                self.finish(run, {"phase": "Failed", "containerStatuses": self.terminated(run, 137, "OOMKilled", "")})
            elif injection == "evict":
                self.finish(run, {"phase": "Failed", "reason": "Evicted",
                                  "message": "The node was low on resource: memory."})
            else:
                self.finish(run, {"phase": "Unknown", "reason": "NodeLost",
                                  "message": f"Node {NODE} which was running pod {name} is unresponsive"})
            return
        if deadline is not None and elapsed > deadline and run.process.poll() is None:
            self.kill(run)
            self.finish(run, {"phase": "Failed", "reason": "DeadlineExceeded",
                              "message": f"Pod was active on the node longer than the specified deadline"})
            return
        code = run.process.poll()
        if code is None:
            return
        # As the kubelet: the last 4096 bytes of the file (a multibyte character may be cut,
        # and is then replaced); with FallbackToLogsOnError, an empty message after a failure
        # is the log's last 80 lines within 2048 bytes.
        message = ""
        if os.path.exists(run.term_path):
            with open(run.term_path, "rb") as f:
                message = f.read()[-4096:].decode(errors="replace")
        if not message and code != 0:
            with open(run.log_path, "rb") as f:
                message = b"".join(f.readlines()[-80:])[-2048:].decode(errors="replace")
        statuses = self.terminated(run, code, "Completed" if code == 0 else "Error", message)
        if injection == "sidecar":
            # An injected proxy keeps running: the pod stays Running after the trainer ended.
            statuses.append({"name": "istio-proxy", "image": "proxy", "imageID": "", "ready": True,
                             "restartCount": 0, "state": {"running": {"startedAt": run.started_at}}})
            self.finish(run, {"phase": "Running", "containerStatuses": statuses})
            return
        self.finish(run, {"phase": "Succeeded" if code == 0 else "Failed", "containerStatuses": statuses})

    def step(self):
        listed = kubectl("get", "pods", "-A", "--field-selector", f"spec.nodeName={NODE}", "-o", "json")
        try:
            pods = json.loads(listed.stdout or "{}").get("items", [])
        except json.JSONDecodeError:
            return
        for pod in pods:
            meta = pod["metadata"]
            key = meta["uid"]  # a pod of the same name later is another pod
            with self.lock:
                run = self.runs.get(key)
            if meta.get("deletionTimestamp"):
                if run and not run.finished:
                    self.kill(run)
                    run.finished = True
                kubectl("delete", "pod", meta["name"], "-n", meta["namespace"], "--grace-period=0", "--force",
                        "--wait=false")
                continue
            if run is None and pod.get("status", {}).get("phase") in (None, "Pending"):
                self.start(pod)
        with self.lock:
            running = [r for r in self.runs.values() if not r.finished]
        for run in running:
            self.check(run)

    def serve_logs(self):
        agent = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlparse(self.path)
                parts = url.path.strip("/").split("/")
                if len(parts) < 4 or parts[0] != "containerLogs":
                    self.send_error(404)
                    return
                query = urllib.parse.parse_qs(url.query)
                follow = query.get("follow", ["false"])[0] == "true"
                with agent.lock:
                    matching = [r for r in agent.runs.values()
                                if (r.pod["metadata"]["namespace"], r.pod["metadata"]["name"]) == (parts[1], parts[2])]
                run = max(matching, key=lambda r: r.started) if matching else None
                if run is None:
                    self.send_error(404, "no such container")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                with open(run.log_path, "rb") as log:
                    while True:
                        chunk = log.read(65536)
                        if chunk:
                            try:
                                self.wfile.write(chunk)
                                self.wfile.flush()
                            except (BrokenPipeError, ConnectionResetError):
                                return
                            continue
                        if not follow or run.process.poll() is not None:
                            rest = log.read()
                            if rest:
                                self.wfile.write(rest)
                            return
                        time.sleep(0.1)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        cert, key = os.path.join(self.work, "kubelet.crt"), os.path.join(self.work, "kubelet.key")
        if not os.path.exists(cert):
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365",
                            "-subj", f"/CN={NODE}", "-keyout", key, "-out", cert], check=True, capture_output=True)
        server = Server(("127.0.0.1", self.options.port), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archlab", required=True, help="the archlab binary pods run")
    parser.add_argument("--gpus", type=int, default=2, help="nvidia.com/gpu capacity of the node")
    parser.add_argument("--port", type=int, default=10250, help="the log endpoint (a kubelet's port)")
    parser.add_argument("--workdir", default="/tmp/archlab-node-agent")
    parser.add_argument("--inject", action="append", default=[], metavar="KIND=POD",
                        help="oom, evict, node-lost, exit, disrupt, start-error or sidecar for the pod of that name")
    options = parser.parse_args()
    options.archlab = os.path.abspath(options.archlab)
    agent = Agent(options)
    agent.serve_logs()
    agent.register()
    last_heartbeat = time.time()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"node agent: {NODE} Ready with {options.gpus} GPUs, logs on https://127.0.0.1:{options.port}", flush=True)
    while not stop.is_set():
        agent.step()
        if time.time() - last_heartbeat > 10:
            agent.heartbeat()
            last_heartbeat = time.time()
        stop.wait(0.3)
    with agent.lock:
        runs = list(agent.runs.values())
    for run in runs:
        if not run.finished:
            agent.kill(run)


if __name__ == "__main__":
    main()
