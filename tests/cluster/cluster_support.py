"""Real cluster parts for tests and benchmarks: a `podcap controller` process and `podcap agent`
processes (on loopback, or inside a test node's network namespace), joined with real tokens.

Every process started here carries ``PODCAP_TEST_OWNER=<pid of the test process>`` in its
environment, so one whose test process was killed outright is found and ended by the next
``running_cluster`` (agents run in sessions of their own and would outlive it)."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from podcap.runtime.base import processes
from tests.support import PODCAP, Server, free_port, stop_process, wait_for

Launcher = Callable[[list[str], Path], subprocess.Popen]
OWNER = "PODCAP_TEST_OWNER"


def local_launch(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env={**os.environ, OWNER: str(os.getpid())})


def sweep_orphans() -> list[int]:
    """SIGKILL the processes of test runs that are gone; the pids it ended."""
    ended = []
    for pid, env in processes("environ"):
        owner = next((v.split(b"=", 1)[1] for v in env if v.startswith(OWNER.encode() + b"=")),
                     None)
        if owner is None or not owner.isdigit() or Path(f"/proc/{int(owner)}").exists():
            continue
        try:
            os.kill(pid, signal.SIGKILL)
            ended.append(pid)
        except ProcessLookupError:
            pass
    return ended


@dataclass
class Cluster:
    """A controller whose agent listeners are on ``host`` (loopback or a test bridge)."""

    server: Server
    host: str
    agent_port: int
    join_port: int
    data_port: int = 0

    @property
    def agent_address(self) -> str:
        return f"{self.host}:{self.agent_port}"

    @property
    def join_address(self) -> str:
        return f"{self.host}:{self.join_port}"

    def join_token(self, ttl_s: int = 600, uses: int = 1) -> str:
        with self.server.client() as c:
            r = c.post("/api/agent-tokens", json={"ttl_s": ttl_s, "uses": uses})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def agents(self) -> list[dict]:
        with self.server.client() as c:
            r = c.get("/api/agents")
        assert r.status_code == 200, r.text
        return r.json()["agents"]

    def agent(self, node: str) -> dict | None:
        return next((a for a in self.agents() if a["node"] == node), None)

    def wait_connected(self, node: str, connected: bool = True, timeout: float = 20.0) -> dict:
        return wait_for(lambda: (a := self.agent(node)) is not None
                        and a["connected"] is connected and a,
                        timeout=timeout, interval=0.2,
                        what=f"node {node} {'connected' if connected else 'disconnected'}")


@dataclass
class AgentProc:
    """One `podcap agent`; ``launch`` runs it where its node is (a netns, or here)."""

    cluster: Cluster
    node: str
    data_dir: Path
    runtime_args: list[str] = field(default_factory=lambda: ["--runtime", "docker"])
    launch: Launcher = local_launch
    proc: subprocess.Popen | None = None

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"agent-{self.node}.log"

    def argv(self, token: str | None) -> list[str]:
        return [PODCAP, "agent", "--controller", self.cluster.agent_address,
                "--join-address", self.cluster.join_address, "--data-dir", str(self.data_dir),
                "--node-name", self.node, *self.runtime_args,
                *(["--join-token", token] if token else [])]

    def start(self, token: str | None = None, wait: bool = True) -> AgentProc:
        self.proc = self.launch(self.argv(token), self.log_path)
        if wait:
            self.cluster.wait_connected(self.node)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextmanager
def running_cluster(tmp_path: Path, host: str = "127.0.0.1", database_url: str | None = None,
                    env: dict[str, str] | None = None) -> Iterator[Cluster]:
    sweep_orphans()
    agent_port, join_port, data_port = free_port(), free_port(), free_port()
    env = {**(env or {}), OWNER: str(os.getpid()),
           **({"PODCAP_DATABASE_URL": database_url} if database_url else {})}
    server = Server(data_dir=tmp_path / "controller", port=free_port(),
                    password=secrets.token_urlsafe(12), command="controller", env=env,
                    extra_args=["--agent-listen", f"{host}:{agent_port}",
                                "--join-listen", f"{host}:{join_port}",
                                "--data-listen", f"{host}:{data_port}"])
    server.start()
    try:
        yield Cluster(server, host, agent_port, join_port, data_port)
    finally:
        server.stop()
