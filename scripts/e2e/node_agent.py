#!/usr/bin/env python3
"""A first stand-in for the kubelet on scripts/test-cluster.sh's control plane (run by hand, not
in CI): runs each pod bound to fake-node-0 as a local `archlab train` child from the pod's
args and env (`cuda` becomes `cpu`), reports Running and then the termination (exit code,
reason, message) in the pod's status, and force-deletes pods marked for deletion (nothing
else would: there is no kubelet). FAIL_PODS=name,name makes those pods exit 1.

Not yet what the end-to-end tests need: it serves no logs (the operator then gets progress
only from the termination message), registers no GPU capacity and injects no OOM, eviction
or node loss.

    eval "$(scripts/test-cluster.sh env)"
    python3 scripts/e2e/node_agent.py target/debug/archlab
"""
import json, os, subprocess, sys, time, datetime

ARCHLAB = sys.argv[1]
running = {}
def kubectl(*args, input=None):
    return subprocess.run(["kubectl", *args], input=input, capture_output=True, text=True)
def now():
    return datetime.datetime.utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
def patch_status(ns, name, status):
    r = kubectl("patch", "pod", name, "-n", ns, "--subresource=status", "--type=merge", "-p", json.dumps({"status": status}))
    if r.returncode: print("patch failed", name, r.stderr.strip(), flush=True)
while True:
    out = kubectl("get", "pods", "-A", "-o", "json")
    pods = json.loads(out.stdout or '{"items": []}')["items"]
    for pod in pods:
        meta, spec, status = pod["metadata"], pod["spec"], pod.get("status", {})
        key = (meta["namespace"], meta["name"])
        if meta.get("deletionTimestamp"):
            kubectl("delete", "pod", meta["name"], "-n", meta["namespace"], "--grace-period=0", "--force", "--wait=false")
            if key in running: running.pop(key)[0].kill()
            continue
        if spec.get("nodeName") != "fake-node-0" or status.get("phase") in ("Succeeded", "Failed") or key in running:
            continue
        container = spec["containers"][0]
        env = dict(os.environ)
        for e in container.get("env", []):
            env[e["name"]] = e.get("value", "")
        args = container["args"]
        args = [a if a != "/dev/termination-log" else f"/tmp/term-{meta['name']}" for a in args]
        args = ["cpu" if a == "cuda" else a for a in args]
        if meta["name"] in os.environ.get("FAIL_PODS", "").split(","):
            args = ["train", "--program-env", "NOPE", "--config-env", "NOPE"]
        proc = subprocess.Popen([ARCHLAB, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        running[key] = (proc, now())
        patch_status(*key, {"phase": "Running", "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "trainer", "image": container["image"], "imageID": "", "ready": True, "restartCount": 0,
            "state": {"running": {"startedAt": now()}}}]})
        print("started", key, flush=True)
    for key, (proc, started) in list(running.items()):
        if proc.poll() is None: continue
        running.pop(key)
        out = proc.stdout.read()
        try: message = open(f"/tmp/term-{key[1]}").read()
        except OSError: message = out[-4000:]
        code = proc.returncode
        patch_status(*key, {"phase": "Succeeded" if code == 0 else "Failed",
            "containerStatuses": [{"name": "trainer", "image": "archlab", "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {"exitCode": code, "reason": "Completed" if code == 0 else "Error", "message": message,
                                     "startedAt": started, "finishedAt": now()}}}]})
        print("ended", key, code, flush=True)
    time.sleep(0.5)
