"""Real parts for tests: a `podcap serve` process, Docker containers, pcap read-back.

Shared by every test folder. Everything started here is ended here, by PID or by exact name.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn, TypeVar

import docker
import dpkt
import httpx

ROOT = Path(__file__).resolve().parent.parent
PODCAP = str(Path(sys.executable).parent / "podcap")
IMAGE = "podcap-test/busybox:1"
ARTIFACTS = ROOT / "test-artifacts"
T = TypeVar("T")


# Ports for servers under test. A port the kernel picks for bind(("", 0)) comes from the
# ephemeral range (32768-60999), where every outgoing connection and every other test process
# also takes its ports: between free_port() and the server's own bind, another pytest-xdist
# worker, or a client's connect(), could be given the same one. So each process hands out ports
# from a block of its own below that range: one block per xdist worker (PYTEST_XDIST_WORKER
# gw0, gw1, ...) and one for a run without workers, starting at a random offset (two suites at
# once on one machine rarely meet), each checked free on every address, none handed out twice
# until the block wraps.
PORT_FIRST, PORT_BLOCK, PORT_BLOCKS = 20000, 1500, 8  # 20000-31999, below 32768


def _port_block() -> range:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    index = int(worker[2:]) + 1 if worker[:2] == "gw" and worker[2:].isdigit() else 0
    first = PORT_FIRST + (index % PORT_BLOCKS) * PORT_BLOCK
    return range(first, first + PORT_BLOCK)


_port_counter = itertools.count(random.randrange(PORT_BLOCK))
_ports_handed_out: list[int] = []
_port_watchers: list[Callable[[int], None]] = []


def free_port() -> int:
    """A TCP port no socket is bound to, on any address, and not handed out before by this
    process (until its block of 1,500 wraps)."""
    block = _port_block()
    for _ in range(PORT_BLOCK):
        port = block[next(_port_counter) % PORT_BLOCK]
        with socket.socket() as s:
            try:
                s.bind(("", port))
            except OSError:
                continue
        _ports_handed_out.append(port)
        for watcher in _port_watchers:
            watcher(port)
        return port
    raise RuntimeError(f"no free port in {block.start}-{block.stop - 1}")


@contextmanager
def watching_ports(watcher: Callable[[int], None]) -> Iterator[None]:
    """Calls ``watcher`` with every port free_port has handed out, and every one it hands out
    while the block lasts (the UI's relay listens on each: tests/ui/browser_netns.py)."""
    for port in list(_ports_handed_out):
        watcher(port)
    _port_watchers.append(watcher)
    try:
        yield
    finally:
        _port_watchers.remove(watcher)


def unique(prefix: str) -> str:
    """Container names unique per test run: several suites may share one Docker engine."""
    return f"podcap-t-{prefix}-{secrets.token_hex(3)}"


@dataclass
class Server:
    """A real `podcap serve` (or `podcap controller`) process on loopback over plain HTTP."""

    data_dir: Path
    port: int
    password: str
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    command: str = "serve"  # or "controller" (tests/cluster)
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    _token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def argv(self) -> list[str]:
        return [PODCAP, self.command, "--insecure-http", "--listen", f"127.0.0.1:{self.port}",
                "--data-dir", str(self.data_dir), *self.extra_args]

    @property
    def pid(self) -> int:
        assert self.proc is not None, "not started"
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> Server:
        """Start it and wait until /healthz answers; a server that exits or does not answer
        in ``timeout`` seconds is stopped and its log raised."""
        self.log_path = self.data_dir.parent / f"serve-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, PODCAP_ADMIN_PASSWORD=self.password, **self.env)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)
        self._token = None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"podcap {self.command} exited early:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"podcap {self.command} did not answer in {timeout}s:\n"
                           f"{self.log()[-3000:]}")

    def log(self) -> str:
        path = self.log_path
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
        stop_process(self.proc, sig, grace)

    def login(self, username: str = "admin", password: str | None = None) -> str:
        r = httpx.post(self.url + "/v1/auth", json={"password": {
            "username": username, "password": password or self.password}}, timeout=30)
        r.raise_for_status()
        return r.json()["token"]["token"]

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.login()
        return self._token

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"X-Auth-Token": token or self.token})

    # NeuVector's sniffer routes, as its clients call them; each asserts success.

    def sniff(self, workload: str, **sniffer: object) -> str:
        with self.client() as c:
            r = c.post("/v1/sniffer", params={"f_workload": workload},
                       json={"sniffer": sniffer})
        assert r.status_code == 200, r.text
        return r.json()["result"]["id"]

    def sniffer(self, cid: str) -> dict:
        with self.client() as c:
            r = c.get(f"/v1/sniffer/{cid}")
        assert r.status_code == 200, r.text
        return r.json()["sniffer"]

    def stop_sniffer(self, cid: str) -> None:
        with self.client() as c:
            r = c.patch(f"/v1/sniffer/stop/{cid}")
        assert r.status_code == 200 and r.content == b"", r.text

    def pcap(self, cid: str) -> bytes:
        """The native raw download."""
        with self.client() as c:
            r = c.get(f"/api/captures/{cid}/pcap")
        assert r.status_code == 200, r.text
        return r.content

    def v1_pcap(self, cid: str) -> bytes:
        """The file inside NeuVector's multipart answer (one part named ``pcap``)."""
        with self.client() as c:
            r = c.get(f"/v1/sniffer/{cid}/pcap")
        assert r.status_code == 200, r.text
        boundary = r.headers["content-type"].split("boundary=")[1].encode()
        body = r.content
        start_at = body.index(b"\r\n\r\n") + 4
        end_at = body.rindex(b"\r\n--" + boundary + b"--")
        assert b'name="pcap"' in body[:start_at]
        return body[start_at:end_at]

    def ended(self, cid: str, timeout: float = 10.0) -> dict:
        """The sniffer once it is no longer running."""
        return wait_for(lambda: (s := self.sniffer(cid))["status"] != "running" and s,
                        timeout=timeout, what=f"capture {cid} to end")


def stop_process(proc: subprocess.Popen | None, sig: int = signal.SIGTERM,
                 grace: float = 15.0) -> None:
    """``sig``, then SIGKILL if it has not ended within ``grace`` seconds."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextmanager
def running_server(tmp_path: Path, extra_args: list[str] | None = None,
                   env: dict[str, str] | None = None) -> Iterator[Server]:
    data = tmp_path / "data"
    server = Server(data_dir=data, port=free_port(), password=secrets.token_urlsafe(12),
                    extra_args=extra_args or [], env=env or {})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def docker_client() -> docker.DockerClient:
    return docker.from_env()


def run_container(name: str, command: list[str], **kwargs) -> docker.models.containers.Container:
    client = docker_client()
    try:
        return client.containers.run(IMAGE, command, name=name, detach=True, **kwargs)
    except docker.errors.APIError:
        # run = create + start: a start that fails would leave the created container behind
        try:
            client.containers.get(name).remove(force=True)
        except docker.errors.NotFound:
            pass
        raise


def container_ip(container) -> str:
    container.reload()
    nets = container.attrs["NetworkSettings"]["Networks"]
    return next(iter(nets.values()))["IPAddress"]


def remove_container(container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


@dataclass
class WebPair:
    web: object
    client: object
    web_ip: str
    client_ip: str


@contextmanager
def web_pair(prefix: str = "web") -> Iterator[WebPair]:
    """An httpd container and a client container fetching from it five times a second."""
    web = run_container(unique(prefix + "-srv"), ["httpd", "-f", "-p", "80", "-h", "/www"])
    cli = None
    try:
        web_ip = container_ip(web)
        cli = run_container(unique(prefix + "-cli"), [
            "sh", "-c", f"while true; do wget -q -O /dev/null http://{web_ip}/; sleep 0.2; done"])
        yield WebPair(web, cli, web_ip, container_ip(cli))
    finally:
        for c in (cli, web):
            if c is not None:
                remove_container(c)


def read_pcap(path_or_bytes: Path | bytes) -> tuple[int, list[tuple[float, bytes]]]:
    """(link type, [(timestamp, packet bytes)]) of a classic pcap file."""
    import io
    data = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes).read_bytes()
    reader = dpkt.pcap.Reader(io.BytesIO(data))
    return reader.datalink(), [(ts, buf) for ts, buf in reader]


def tcp_flows(packets: list[tuple[float, bytes]], port: int = 80) -> set[tuple[str, str]]:
    """(src, dst) of the IPv4 TCP packets to or from ``port`` in a LINUX_SLL2 capture."""
    found = set()
    for _, buf in packets:
        ip = dpkt.sll2.SLL2(buf).data
        if isinstance(ip, dpkt.ip.IP) and isinstance(ip.data, dpkt.tcp.TCP) and port in (
                ip.data.sport, ip.data.dport):
            found.add((".".join(map(str, ip.src)), ".".join(map(str, ip.dst))))
    return found


class Unusable(Exception):
    """A test bed (tests/cri's containerd, tests/cluster's network namespaces) cannot run on
    this machine for a reason outside the project, such as root or a kernel feature; raised
    only after checking that fact, and saying which. A missing install step is a failure in the
    beds (RuntimeError), never this."""


def fail_for(lack: Unusable) -> NoReturn:
    """This machine lacks what a test bed needs (root, a kernel feature), a fact outside the
    project that ``lack`` names. The test fails rather than skips: a suite that could not run a
    bed has not proven what the bed tests, and must not look green."""
    import pytest
    pytest.fail(f"this machine cannot host the test bed (a reason outside the project): {lack}")


@contextmanager
def enter_bed(bed: AbstractContextManager[T]) -> Iterator[T]:
    """Enter a test bed (``with enter_bed(netbed.net_bed()) as b:``), failing the test with the
    reason when this machine cannot host it. Only entering is guarded: what the test raises
    inside is its own."""
    with ExitStack() as stack:
        try:
            entered = stack.enter_context(bed)
        except Unusable as lack:
            fail_for(lack)
        yield entered


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def netns_addresses(pid: int) -> dict[str, list[tuple[str, int]]]:
    """The global addresses with their prefix lengths in the network namespace of ``pid``,
    by interface, as `ip -j addr` there says (what /v1/workload's interfaces must show)."""
    out = subprocess.run(["nsenter", "-t", str(pid), "-n", "ip", "-j", "addr"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    found: dict[str, list[tuple[str, int]]] = {}
    for link in json.loads(out):
        for a in link.get("addr_info", []):
            if link["ifname"] != "lo" and a.get("scope") == "global":
                found.setdefault(link["ifname"], []).append((a["local"], a["prefixlen"]))
    return found
