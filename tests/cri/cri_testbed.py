"""A private containerd with its CRI plugin, per ../shared/TESTBED_CRI.md, for real pods in tests.

Own root, state, socket, runc root, CNI bridge (``podcap-cri0``) and subnet (10.88.77.0/24, a
private bridge on this machine only). One test bed at a time per machine (a file lock), so a
stale one left by a killed run can be swept safely before the next starts. Usable alone:
``python -m tests.cri.cri_testbed`` (from the repository root) starts one, prints its socket
and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from podcap.runtime.cri_proto import api_pb2 as pb
from podcap.runtime.cri_proto import api_pb2_grpc as pb_grpc
from tests.cri import cri_cleanup as cleanup
from tests.support import Unusable

BRIDGE = "podcap-cri0"
NETWORK = "podcap-cri-test"
SUBNET = "10.88.77.0/24"
NAMESPACE = "k8s.io"  # the containerd namespace the CRI plugin uses
BUSYBOX_DOCKER = "podcap-test/busybox:1"
PAUSE_DOCKER = "podcap-test/pause:1"
BUSYBOX = "docker.io/" + BUSYBOX_DOCKER
PAUSE = "docker.io/" + PAUSE_DOCKER
LOCK = Path("/run/lock/podcap-cri-testbed.lock")
DIR_PREFIX = "podcap-cri-"
TIMEOUT = 20.0


@dataclass
class Pod:
    name: str
    namespace: str
    sandbox_id: str
    container_id: str
    ip: str
    config: pb.PodSandboxConfig = field(repr=False)


@dataclass
class Pods:
    """The session's standing pods: web serves HTTP, client fetches it 5 times a second."""

    bed: CriTestbed
    web: Pod
    client: Pod
    hostnet: Pod


@dataclass
class CriTestbed:
    dir: Path
    proc: subprocess.Popen | None = None
    channel: grpc.Channel | None = None
    cgroup_parent: str = ""
    sandbox_ids: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.dir / "containerd.sock"

    @property
    def runtime(self) -> pb_grpc.RuntimeServiceStub:
        assert self.channel is not None
        return pb_grpc.RuntimeServiceStub(self.channel)

    def log(self) -> str:
        path = self.dir / "containerd.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    # ---- pods -------------------------------------------------------------------------

    def run_pod(self, name: str, command: list[str], namespace: str = "podcap-test",
                host_network: bool = False, pod_labels: dict[str, str] | None = None) -> Pod:
        """A pod with one busybox container named after the pod, running ``command``;
        ``pod_labels`` go on the pod only (the container has ``app`` alone)."""
        mode = pb.NODE if host_network else pb.POD
        config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=str(uuid.uuid4()),
                                           namespace=namespace),
            hostname="" if host_network else name,
            log_directory=str(self.dir / "logs" / name),
            labels={"app": name, **(pod_labels or {})},
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=self.cgroup_parent,
                security_context=pb.LinuxSandboxSecurityContext(
                    namespace_options=pb.NamespaceOption(network=mode))),
        )
        sandbox_id = self.runtime.RunPodSandbox(
            pb.RunPodSandboxRequest(config=config), timeout=TIMEOUT).pod_sandbox_id
        self.sandbox_ids.append(sandbox_id)
        container_id = self.runtime.CreateContainer(pb.CreateContainerRequest(
            pod_sandbox_id=sandbox_id, sandbox_config=config,
            config=pb.ContainerConfig(
                metadata=pb.ContainerMetadata(name=name), image=pb.ImageSpec(image=BUSYBOX),
                command=command, log_path=f"{name}.log", labels={"app": name},
                linux=pb.LinuxContainerConfig(security_context=pb.LinuxContainerSecurityContext(
                    namespace_options=pb.NamespaceOption(network=mode))))),
            timeout=TIMEOUT).container_id
        self.runtime.StartContainer(pb.StartContainerRequest(container_id=container_id),
                                    timeout=TIMEOUT)
        status = self.runtime.PodSandboxStatus(
            pb.PodSandboxStatusRequest(pod_sandbox_id=sandbox_id), timeout=TIMEOUT).status
        return Pod(name, namespace, sandbox_id, container_id, status.network.ip, config)

    def remove_pod(self, sandbox_id: str) -> None:
        """What the kubelet does when a pod is deleted: stop, then remove the sandbox."""
        self.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=sandbox_id),
                                    timeout=TIMEOUT)
        self.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=sandbox_id),
                                      timeout=TIMEOUT)

    # ---- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self.cgroup_parent = f"/{self.dir.name}"  # sweep() finds its cgroups by this name
        _write_config(self.dir)
        out = open(self.dir / "containerd.log", "ab")  # noqa: SIM115 - lives as long as the proc
        self.proc = subprocess.Popen(
            ["containerd", "--config", str(self.dir / "config.toml")],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        self.channel = grpc.insecure_channel(f"unix://{self.socket}")
        deadline = time.monotonic() + TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"containerd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                self.runtime.Version(pb.VersionRequest(), timeout=1)
                break
            except grpc.RpcError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"CRI did not answer: {exc}\n{self.log()}") from exc
                time.sleep(0.1)
        for image in (self.dir / "busybox.tar", self.dir / "pause.tar"):
            subprocess.run(["ctr", "-a", str(self.socket), "-n", NAMESPACE, "images", "import",
                            str(image)], check=True, capture_output=True, timeout=60)

    def close(self) -> None:
        """Tear everything down; every step runs even when an earlier one fails."""
        if self.channel is not None and self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(grpc.RpcError):
                items = self.runtime.ListPodSandbox(pb.ListPodSandboxRequest(), timeout=5).items
                self.sandbox_ids += [s.id for s in items if s.id not in self.sandbox_ids]
            for sandbox_id in self.sandbox_ids:
                with contextlib.suppress(grpc.RpcError):
                    self.remove_pod(sandbox_id)
        if self.channel is not None:
            self.channel.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        sweep(self.dir, self.sandbox_ids)


def sweep(directory: Path, ids: list[str] | None = None) -> None:
    """Remove what a test bed in ``directory`` left: shims, container processes, mounts,
    cgroups, the bridge, libcni's cache, shim sockets, then the directory itself."""
    parent = f"/{directory.name}"
    socket = str(directory / "containerd.sock")
    ids = sorted(set(ids or []) | _ids_in(directory))
    cleanup.kill_pids(cleanup.pids_with_arg(str(directory / "config.toml")), "containerd")
    cleanup.kill_pids(cleanup.pids_with_arg(socket), "containerd shim")
    cleanup.kill_pids(cleanup.cgroup_pids(parent), "container process")
    cleanup.unmount_all(directory)
    cleanup.remove_cgroups(parent)
    cleanup.delete_link(BRIDGE)
    cleanup.remove_bridge_forwarding(BRIDGE)
    cleanup.remove_cni_results(NETWORK)
    cleanup.remove_cni_results("cni-loopback", ids)
    cleanup.remove_shim_sockets(socket, NAMESPACE, ids)
    cleanup.remove_tree(directory)


def _ids_in(directory: Path) -> set[str]:
    """Sandbox and container ids a test bed's containerd knew, read from its own dirs: after
    a crash they are the only record of which shim sockets and CNI cache entries are ours."""
    ids: set[str] = set()
    for sub in ("root/io.containerd.grpc.v1.cri/sandboxes",
                "root/io.containerd.grpc.v1.cri/containers",
                f"state/io.containerd.runtime.v2.task/{NAMESPACE}"):
        with contextlib.suppress(OSError):
            ids.update(p.name for p in (directory / sub).iterdir())
    return ids


def _write_config(d: Path) -> None:
    (d / "cni" / "net.d").mkdir(parents=True)
    (d / "cni" / "net.d" / "10-podcap.conflist").write_text(json.dumps({
        "cniVersion": "0.4.0", "name": NETWORK,
        "plugins": [{"type": "bridge", "bridge": BRIDGE, "isGateway": True, "ipMasq": False,
                     "hairpinMode": True,
                     "ipam": {"type": "host-local", "dataDir": str(d / "cni" / "ipam"),
                              "ranges": [[{"subnet": SUBNET}]]}}]}))
    cri = '[plugins."io.containerd.grpc.v1.cri"'
    (d / "config.toml").write_text(f"""version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[ttrpc]
  address = "{d}/containerd.sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"
{cri}]
  sandbox_image = "{PAUSE}"
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
{cri}.containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
{cri}.containerd.runtimes.runc.options]
  SystemdCgroup = false
  Root = "{d}/runc"
  BinaryName = "/usr/sbin/runc"
{cri}.cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "{d}/cni/net.d"
""")


def _images(d: Path) -> None:
    """docker-save the busybox image and a pause image built from it (no registry here)."""
    docker_env = dict(os.environ, DOCKER_BUILDKIT="0")
    probe = subprocess.run(["docker", "image", "inspect", PAUSE_DOCKER], capture_output=True)
    if probe.returncode != 0:
        dockerfile = f'FROM {BUSYBOX_DOCKER}\nENTRYPOINT ["/bin/sleep", "2147483647"]\n'
        subprocess.run(["docker", "build", "-q", "-t", PAUSE_DOCKER, "-"],
                       input=dockerfile.encode(),
                       env=docker_env, check=True, capture_output=True, timeout=120)
    for image, tar in ((BUSYBOX_DOCKER, "busybox.tar"), (PAUSE_DOCKER, "pause.tar")):
        subprocess.run(["docker", "save", "-o", str(d / tar), image], check=True,
                       capture_output=True, timeout=60)


def _check_usable() -> None:
    """Only a reason outside the project makes the bed ``Unusable`` (a skip); what
    scripts/setup.sh should have installed is a failure, so a broken set-up never hides."""
    if os.geteuid() != 0:
        raise Unusable(f"this run is uid {os.geteuid()}, not root, and the CRI test bed needs "
                       "root (network namespaces, mounts, cgroups)")
    for tool in ("containerd", "ctr", "runc", "ip", "iptables", "docker"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise RuntimeError(f"{tool} is not installed (scripts/setup.sh installs it)")
    if not Path("/usr/lib/cni/bridge").exists():
        raise RuntimeError("CNI plugins missing in /usr/lib/cni (containernetworking-plugins)")
    probe = subprocess.run(["docker", "image", "inspect", BUSYBOX_DOCKER], capture_output=True)
    if probe.returncode != 0:
        raise RuntimeError(f"{BUSYBOX_DOCKER} is not in Docker (scripts/build-test-image.sh)")


@contextlib.contextmanager
def cri_testbed() -> Iterator[CriTestbed]:
    """A running private containerd with images imported; always torn down on exit."""
    _check_usable()
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for stale in Path(tempfile.gettempdir()).glob(DIR_PREFIX + "*"):
            sweep(stale)  # we hold the lock: any other test bed dir is a dead run's
        cleanup.delete_link(BRIDGE)
        cleanup.remove_bridge_forwarding(BRIDGE)
        cleanup.remove_cni_results(NETWORK)
        bed = CriTestbed(Path(tempfile.mkdtemp(prefix=DIR_PREFIX + secrets.token_hex(3) + "-",
                                               dir=tempfile.gettempdir())))
        try:
            _images(bed.dir)
            cleanup.allow_bridge_forwarding(BRIDGE)
            bed.start()
            yield bed
        finally:
            bed.close()


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the context manager's teardown


if __name__ == "__main__":
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)  # a background job starts with SIGINT ignored
    with cri_testbed() as bed:
        print(f"containerd CRI socket: {bed.socket}  (Ctrl-C or SIGTERM tears it down)",
              flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
    sys.exit(0)
