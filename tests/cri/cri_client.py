#!/usr/bin/env python3
"""Kubernetes' side of tests/cri.rs: drives containerd's CRI plugin over the CRI v1 gRPC API
exactly as a kubelet does (RunPodSandbox, CreateContainer, StartContainer, ContainerStatus,
ExecSync, the container log file CRI writes, StopContainer, RemoveContainer, StopPodSandbox,
RemovePodSandbox), with PyPI's container-runtime-interface-api stubs.

    cri_client.py --socket SOCK --handler minibox --image IMG --log-dir DIR \
        --cgroup-parent PARENT {host,cni,bench}

host:  a host-network pod; one container: ExecSync, logs, stop (SIGTERM reaches it), remove.
cni:   a pod with its own network from CNI (bridge + host-local): two containers of the pod,
       one listening on localhost, the other connecting to it; the pod's IP from CNI.
bench: pod + container start-to-running latency, N times; prints the median in ms.

Every step checks what it got; a failure ends the script with status 1 and one line saying
which step, what was expected and what came. At the end nothing of its own is left: no pod,
no container (checked with ListPodSandbox / ListContainers).
"""

import argparse
import json
import os
import statistics
import sys
import time

import grpc
from cri_api.v1 import api_pb2 as pb
from cri_api.v1 import api_pb2_grpc as rpc


class Failed(Exception):
    pass


def check(ok, what):
    if not ok:
        raise Failed(what)


class Deadline:
    """A stub whose every call gives up after `seconds` (a kubelet's runtime-request-timeout),
    so that a call that hangs is named instead of hanging the test."""

    def __init__(self, stub, seconds):
        self.stub = stub
        self.seconds = seconds

    def __getattr__(self, name):
        call = getattr(self.stub, name)
        return lambda request: call(request, timeout=self.seconds)


class Kubelet:
    """The calls a kubelet makes, with its defaults, for one runtime handler."""

    def __init__(self, socket, handler, image, log_dir, cgroup_parent):
        channel = grpc.insecure_channel("unix://" + socket)
        self.rt = Deadline(rpc.RuntimeServiceStub(channel), 60)
        self.img = Deadline(rpc.ImageServiceStub(channel), 60)
        self.handler = handler
        self.image = image
        self.log_dir = log_dir
        self.cgroup_parent = cgroup_parent
        self.serial = 0

    def version(self):
        v = self.rt.Version(pb.VersionRequest(version="v1"))
        return v.runtime_name + " " + v.runtime_version

    def image_present(self):
        st = self.img.ImageStatus(pb.ImageStatusRequest(image=pb.ImageSpec(image=self.image)))
        check(st.image.id != "", f"ImageStatus {self.image}: not there (was it imported?)")

    def pod_config(self, name, host_network):
        self.serial += 1
        uid = f"mbx-uid-{os.getpid()}-{self.serial}"
        mode = pb.NODE if host_network else pb.POD
        log_dir = os.path.join(self.log_dir, f"{name}_{uid}")
        os.makedirs(log_dir, exist_ok=True)
        return pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="default", attempt=0),
            hostname="" if host_network else name,
            log_directory=log_dir,
            labels={"app": name},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"{self.cgroup_parent}/pod{uid}",
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(
                        network=mode, pid=pb.CONTAINER, ipc=pb.POD
                    )
                ),
            ),
        )

    def run_pod(self, config):
        r = self.rt.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config, runtime_handler=self.handler)
        )
        return r.pod_sandbox_id

    def create(self, pod_id, pod_config, name, command):
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=0),
            image=pb.ImageSpec(image=self.image),
            command=command,
            log_path=f"{name}/0.log",
            linux=pb.LinuxContainerConfig(
                security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pod_config.linux.security_context.namespace_options
                )
            ),
        )
        r = self.rt.CreateContainer(
            pb.CreateContainerRequest(
                pod_sandbox_id=pod_id, config=config, sandbox_config=pod_config
            )
        )
        return r.container_id

    def start(self, cid):
        self.rt.StartContainer(pb.StartContainerRequest(container_id=cid))

    def status(self, cid):
        return self.rt.ContainerStatus(pb.ContainerStatusRequest(container_id=cid)).status

    def wait_state(self, cid, state, seconds=20):
        deadline = time.time() + seconds
        while True:
            st = self.status(cid)
            if st.state == state:
                return st
            check(
                time.time() < deadline,
                f"container {cid[:12]}: state {pb.ContainerState.Name(st.state)}, "
                f"expected {pb.ContainerState.Name(state)} ({st.reason} {st.message})",
            )
            time.sleep(0.05)

    def exec_sync(self, cid, cmd):
        return self.rt.ExecSync(pb.ExecSyncRequest(container_id=cid, cmd=cmd, timeout=20))

    def log_of(self, pod_config, name):
        path = os.path.join(pod_config.log_directory, name, "0.log")
        with open(path) as f:
            # CRI's format: TIMESTAMP STREAM TAG MESSAGE
            return [line.rstrip("\n").split(" ", 3) for line in f if line.strip()]

    def wait_log(self, pod_config, name, text, seconds=20):
        deadline = time.time() + seconds
        while True:
            try:
                lines = self.log_of(pod_config, name)
            except FileNotFoundError:
                lines = []
            if any(len(l) == 4 and l[3] == text for l in lines):
                return lines
            check(time.time() < deadline, f"log of {name}: no line {text!r} in {lines}")
            time.sleep(0.05)

    def stop_remove(self, cid, timeout=10):
        self.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=timeout))
        st = self.status(cid)
        self.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        return st

    def stop_remove_pod(self, pod_id):
        self.rt.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
        self.rt.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))

    def nothing_left(self):
        pods = self.rt.ListPodSandbox(pb.ListPodSandboxRequest()).items
        ctrs = self.rt.ListContainers(pb.ListContainersRequest()).containers
        check(not pods and not ctrs, f"left behind: {len(pods)} pod(s), {len(ctrs)} container(s)")


def host_pod(k):
    config = k.pod_config("mbx-host", host_network=True)
    pod = k.run_pod(config)
    st = k.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    check(st.state == pb.SANDBOX_READY, f"pod state {st.state}")
    cid = k.create(pod, config, "app", ["/payload", "trap", "1"])
    k.start(cid)
    k.wait_state(cid, pb.CONTAINER_RUNNING)
    # Its stdout reaches the log file CRI writes, in CRI's format.
    lines = k.wait_log(config, "app", "ready")
    check(lines[0][1] == "stdout" and lines[0][2] == "F", f"log line {lines[0]}")
    r = k.exec_sync(cid, ["/payload", "id"])
    check(r.exit_code == 0 and r.stdout.decode().startswith("uid=0 "), f"ExecSync id: {r}")
    r = k.exec_sync(cid, ["/payload", "exit", "7"])
    check(r.exit_code == 7, f"ExecSync exit 7: exit code {r.exit_code}")
    # The node's network (the test's throwaway namespace: its lo, no CNI eth0).
    r = k.exec_sync(cid, ["/payload", "ifaces"])
    names = [line.split()[0] for line in r.stdout.decode().splitlines()]
    check(names == ["lo"], f"ifaces: {r.stdout!r}")
    # StopContainer: SIGTERM reaches the program, which ends by itself (exit 0).
    st = k.stop_remove(cid)
    check(st.state == pb.CONTAINER_EXITED and st.exit_code == 0, f"after stop: {st}")
    k.wait_log(config, "app", "got TERM")
    k.stop_remove_pod(pod)
    return {"pod": pod[:12], "container": cid[:12]}


def cni_pod(k):
    config = k.pod_config("mbx-cni", host_network=False)
    pod = k.run_pod(config)
    st = k.rt.PodSandboxStatus(pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status
    ip = st.network.ip
    check(ip.startswith("10.88.71."), f"pod IP {ip!r}: not from the CNI range 10.88.71.0/24")
    server = k.create(pod, config, "server", ["/payload", "echo", "7070"])
    k.start(server)
    k.wait_state(server, pb.CONTAINER_RUNNING)
    # The second container shares the pod's network: localhost reaches the first.
    client = k.create(
        pod, config, "client", ["/payload", "later", "0.5", "ask", "127.0.0.1:7070"]
    )
    k.start(client)
    st = k.wait_state(client, pb.CONTAINER_EXITED)
    check(st.exit_code == 0, f"client exit code {st.exit_code}: {k.log_of(config, 'client')}")
    k.wait_log(config, "client", "ask")
    # Its interface is CNI's eth0, with the pod's IP.
    r = k.exec_sync(server, ["/payload", "cat", "/proc/net/fib_trie"])
    check(ip in r.stdout.decode(), f"{ip} not in the pod's addresses")
    k.stop_remove(server, timeout=2)
    k.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=client))
    k.stop_remove_pod(pod)
    return {"pod": pod[:12], "ip": ip}


def bench(k, runs):
    times = []
    for i in range(runs):
        config = k.pod_config(f"mbx-bench{i}", host_network=True)
        t0 = time.perf_counter()
        pod = k.run_pod(config)
        cid = k.create(pod, config, "app", ["/payload", "sleep", "60"])
        k.start(cid)
        k.wait_state(cid, pb.CONTAINER_RUNNING)
        times.append((time.perf_counter() - t0) * 1000)
        print(f"{k.handler} run {i}: {times[-1]:.1f} ms", file=sys.stderr, flush=True)
        k.rt.StopContainer(pb.StopContainerRequest(container_id=cid, timeout=0))
        k.rt.RemoveContainer(pb.RemoveContainerRequest(container_id=cid))
        k.stop_remove_pod(pod)
    return {"runs": runs, "median_ms": round(statistics.median(times), 1),
            "min_ms": round(min(times), 1)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", required=True)
    p.add_argument("--handler", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--cgroup-parent", required=True)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("mode", choices=["host", "cni", "bench"])
    a = p.parse_args()
    k = Kubelet(a.socket, a.handler, a.image, a.log_dir, a.cgroup_parent)
    try:
        k.version()
        k.image_present()
        result = {"host": host_pod, "cni": cni_pod}.get(a.mode, lambda k: bench(k, a.runs))(k)
        k.nothing_left()
    except Failed as e:
        print(f"cri_client {a.mode} ({a.handler}): {e}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        import traceback
        where = traceback.extract_tb(e.__traceback__)[-2]
        print(f"cri_client {a.mode} ({a.handler}): {e.code().name}: {e.details()} "
              f"(at line {where.lineno}: {where.line})", file=sys.stderr)
        return 1
    print(json.dumps({"mode": a.mode, "handler": a.handler, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
