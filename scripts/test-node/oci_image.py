#!/usr/bin/env python3
"""Builds a one-layer OCI image archive from files on this machine, without a Docker daemon
(none runs here and no registry is reachable), for `ctr -n k8s.io images import`.

    oci_image.py --name ghcr.io/archlab/archlab:0.1.0 --out trainer.tar \
        --binary target/release/archlab:/usr/local/bin/archlab --user 65532:65532 \
        --entrypoint archlab --cmd train --cmd --help

--binary SRC:DEST copies an executable and, when it is dynamically linked, the shared libraries
`ldd` resolves for it (at the paths the loader looks in), as distroless/cc gives glibc and
libgcc. --file SRC:DEST copies a plain file. Every image gets /etc/passwd and /etc/group with
root and nonroot (65532), as distroless has them, and a world-writable /tmp. The layer is an
uncompressed tar with fixed times, owners and order, so the same inputs give the same digest.
"""
import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

PASSWD = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"


def shared_libraries(path):
    """The absolute paths of the libraries `ldd` resolves for PATH (none when static)."""
    result = subprocess.run(["ldd", path], capture_output=True, text=True)
    if result.returncode != 0:  # "not a dynamic executable"
        return []
    libraries = []
    for line in result.stdout.splitlines():
        line = line.strip()
        if "not found" in line:
            sys.exit(f"oci_image.py: {path} needs {line.split()[0]}, which ldd cannot find")
        candidate = line.split("=>")[-1].strip().split(" (")[0].strip()
        if candidate.startswith("/"):
            libraries.append(candidate)
    return libraries


class Layer:
    def __init__(self):
        self.buffer = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buffer, mode="w", format=tarfile.PAX_FORMAT)
        self.entries = {}

    def directory(self, path, mode=0o755):
        parts = path.strip("/").split("/")
        for end in range(1, len(parts) + 1):
            name = "/".join(parts[:end])
            if name not in self.entries:
                info = tarfile.TarInfo(name)
                info.type = tarfile.DIRTYPE
                info.mode = mode if end == len(parts) else 0o755
                self.entries[name] = (info, None)

    def file(self, path, data, mode=0o644, uid=0):
        name = path.strip("/")
        parent = os.path.dirname(name)
        if parent:
            self.directory(parent)
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mode = mode
        info.uid = info.gid = uid
        self.entries[name] = (info, data)

    def bytes(self):
        for name in sorted(self.entries):
            info, data = self.entries[name]
            info.mtime = 0
            info.uname = info.gname = ""
            self.tar.addfile(info, io.BytesIO(data) if data is not None else None)
        self.tar.close()
        return self.buffer.getvalue()


def blob(archive, data, media_type):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo("blobs/sha256/" + digest.split(":")[1])
    info.size = len(data)
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def split(pair, flag):
    if ":" not in pair:
        sys.exit(f"oci_image.py: {flag} {pair!r}: expected SRC:DEST")
    source, destination = pair.rsplit(":", 1)
    if not os.path.isfile(source):
        sys.exit(f"oci_image.py: {flag} {pair!r}: {source} is not a file")
    return source, destination


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", required=True, help="the image reference ctr imports it as")
    parser.add_argument("--out", required=True, help="the OCI archive to write")
    parser.add_argument("--binary", action="append", default=[], metavar="SRC:DEST")
    parser.add_argument("--file", action="append", default=[], metavar="SRC:DEST")
    parser.add_argument("--user", default="65532:65532")
    parser.add_argument("--entrypoint", action="append", default=[])
    parser.add_argument("--cmd", action="append", default=[])
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    args = parser.parse_args()

    layer = Layer()
    layer.file("etc/passwd", PASSWD.encode())
    layer.file("etc/group", GROUP.encode())
    layer.directory("tmp", 0o1777)
    layer.directory("home/nonroot", 0o700)
    layer.entries["home/nonroot"][0].uid = layer.entries["home/nonroot"][0].gid = 65532
    for pair in args.binary:
        source, destination = split(pair, "--binary")
        with open(source, "rb") as f:
            layer.file(destination, f.read(), 0o755)
        for library in shared_libraries(source):
            with open(os.path.realpath(library), "rb") as f:
                layer.file(library, f.read(), 0o755)
    for pair in args.file:
        source, destination = split(pair, "--file")
        with open(source, "rb") as f:
            layer.file(destination, f.read())
    layer_bytes = layer.bytes()
    diff_id = "sha256:" + hashlib.sha256(layer_bytes).hexdigest()

    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *args.env]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"User": args.user, "Env": env, "Entrypoint": args.entrypoint or None,
                   "Cmd": args.cmd or None, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": "scripts/test-node/oci_image.py"}],
    }
    with tarfile.open(args.out, "w", format=tarfile.PAX_FORMAT) as archive:
        layout = json.dumps({"imageLayoutVersion": "1.0.0"}).encode()
        info = tarfile.TarInfo("oci-layout")
        info.size = len(layout)
        archive.addfile(info, io.BytesIO(layout))
        layer_descriptor = blob(archive, layer_bytes, "application/vnd.oci.image.layer.v1.tar")
        config_descriptor = blob(archive, json.dumps(config, sort_keys=True).encode(),
                                 "application/vnd.oci.image.config.v1+json")
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": config_descriptor, "layers": [layer_descriptor]}
        manifest_descriptor = blob(archive, json.dumps(manifest, sort_keys=True).encode(),
                                   "application/vnd.oci.image.manifest.v1+json")
        manifest_descriptor["annotations"] = {
            "io.containerd.image.name": args.name,
            "org.opencontainers.image.ref.name": args.name.rsplit(":", 1)[-1],
        }
        manifest_descriptor["platform"] = {"architecture": "amd64", "os": "linux"}
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": [manifest_descriptor]}).encode()
        info = tarfile.TarInfo("index.json")
        info.size = len(index)
        archive.addfile(info, io.BytesIO(index))
    print(f"{args.name}: {args.out} ({len(layer_bytes) / 1e6:.1f} MB layer)")


if __name__ == "__main__":
    main()
