"""Several `podcap controller` replicas on one PostgreSQL behind a real HAProxy (issue 20), for
tests and the bench.

- **Replicas** serve HTTPS with one shared certificate (as replicas behind one name would),
  on loopback ports, and listen for agents on ``host`` (the net bed's bridge address, or
  loopback). Each has its own data dir; everything shared is in the database.
- **HAProxy** (Debian's package, as in production) runs as a child process in TCP mode (TLS
  passes through to the replicas) with an HTTP health check over TLS on ``/readyz`` every
  0.5 s (``fall 2 rise 2``), ``option redispatch 1`` (every retry to another server) and
  ``retries 3`` so a new connection to a dead replica goes to a live one. ``balance first``
  (the default here) sends every connection to the first healthy replica: the replica that
  serves is known, so a test can kill it; ``roundrobin`` spreads them (the bench).
- The leader is read from the ``leases`` row: its holder names the replica's pid.

Every process carries the cluster suite's owner mark (``PODCAP_TEST_OWNER``), so a run killed
outright leaves nothing behind (tests/cluster/cluster_support.py sweeps it).
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

from podcap.tls import ensure_self_signed
from tests.cluster.cluster_support import OWNER, sweep_orphans
from tests.support import PODCAP, Unusable, free_port, stop_process, wait_for

LEASE_TTL_S = 2.0  # short in tests: failover within a few seconds


def haproxy_bin() -> str:
    found = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(found).exists():
        raise RuntimeError("haproxy is not installed (scripts/setup.sh installs Debian's)")
    return found


@dataclass
class Replica:
    name: str
    data_dir: Path
    port: int
    agent_port: int
    join_port: int
    host: str
    cert: Path
    key: Path
    env: dict[str, str]
    data_port: int = field(default_factory=free_port)  # kept across restarts, as the others
    proc: subprocess.Popen | None = None
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def agent_address(self) -> str:
        return f"{self.host}:{self.agent_port}"

    @property
    def join_address(self) -> str:
        return f"{self.host}:{self.join_port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"replica-{self.name}.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, extra_env: dict[str, str] | None = None, wait: bool = True) -> Replica:
        self.extra_env = dict(extra_env or {})
        argv = [PODCAP, "controller", "--listen", f"127.0.0.1:{self.port}",
                "--cert", str(self.cert), "--key", str(self.key),
                "--data-dir", str(self.data_dir),
                "--agent-listen", self.agent_address, "--join-listen", self.join_address,
                "--data-listen", f"{self.host}:{self.data_port}"]
        with open(self.log_path, "ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env, **self.extra_env})
        if wait:
            self.wait_ready()
        return self

    def ready(self) -> bool:
        try:
            return httpx.get(self.url + "/readyz", verify=False, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_ready(self, timeout: float = 40.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"replica {self.name} exited:\n{self.log()[-3000:]}")
            if self.ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"replica {self.name} not ready in {timeout} s:\n"
                           f"{self.log()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL: no release of anything, as a crashed node or an OOM kill."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 15)

    def pause(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)


@dataclass
class HAProxy:
    directory: Path
    port: int
    servers: list[Replica]
    balance: str = "first"
    proc: subprocess.Popen | None = None

    def config(self) -> str:
        lines = [
            "global", "    maxconn 2000",
            f"    stats socket {self.directory / 'haproxy.sock'} mode 600 level user",
            "defaults", "    mode tcp", "    timeout connect 1s", "    timeout client 120s",
            "    timeout server 120s", "    option redispatch 1", "    retries 3",
            "frontend api", f"    bind 127.0.0.1:{self.port}",
            "    default_backend controllers",
            "backend controllers", f"    balance {self.balance}",
            "    option httpchk",
            "    http-check send meth GET uri /readyz ver HTTP/1.1 hdr Host localhost",
            "    http-check expect status 200",
            "    default-server inter 500ms fall 2 rise 2 check-ssl verify none "
            "on-marked-down shutdown-sessions",
        ]
        lines += [f"    server {r.name} 127.0.0.1:{r.port} check" for r in self.servers]
        return "\n".join(lines) + "\n"

    def start(self) -> HAProxy:
        cfg = self.directory / "haproxy.cfg"
        cfg.write_text(self.config())
        check = subprocess.run([haproxy_bin(), "-c", "-f", str(cfg)], capture_output=True,
                               text=True, check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its configuration:\n{check.stdout}"
                               f"{check.stderr}")
        log = open(self.directory / "haproxy.log", "ab")  # noqa: SIM115 - the child's
        self.proc = subprocess.Popen([haproxy_bin(), "-f", str(cfg), "-db"], stdout=log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env={**os.environ, OWNER: str(os.getpid())})
        log.close()
        wait_for(self.answers, timeout=15, interval=0.1, what="haproxy to pass a request")
        return self

    def answers(self) -> bool:
        try:
            return httpx.get(f"https://127.0.0.1:{self.port}/readyz", verify=False,
                             timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def status(self) -> dict[str, str]:
        """Each server's state as HAProxy's health checks have it (UP, DOWN, ...)."""
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(2)
            sock.connect(str(self.directory / "haproxy.sock"))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        found = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "controllers" and row.get("svname") not in (
                    "BACKEND", "FRONTEND"):
                found[row["svname"]] = row.get("status", "")
        return found

    def wait_up(self, name: str, timeout: float = 15.0) -> None:
        wait_for(lambda: self.status().get(name, "").startswith("UP"), timeout=timeout,
                 interval=0.1, what=f"haproxy to see {name} up")

    def stop(self) -> None:
        stop_process(self.proc, signal.SIGTERM, 5)


@dataclass
class HA:
    replicas: list[Replica]
    proxy: HAProxy
    password: str
    database_url: str
    _token: str | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.proxy.port}"

    @property
    def agent_spec(self) -> str:
        """What ``podcap agent --controller`` is given: every replica."""
        return ",".join(r.agent_address for r in self.replicas)

    def login(self, url: str | None = None) -> str:
        r = httpx.post((url or self.url) + "/v1/auth", verify=False, timeout=30, json={
            "password": {"username": "admin", "password": self.password}})
        r.raise_for_status()
        return r.json()["token"]["token"]

    @property
    def token(self) -> str:
        if self._token is None:
            self._token = self.login()
        return self._token

    def client(self, url: str | None = None, timeout: float = 30) -> httpx.Client:
        """Through HAProxy (or straight to ``url``), as admin; a new connection each time."""
        return httpx.Client(base_url=url or self.url, verify=False, timeout=timeout,
                            headers={"X-Auth-Token": self.token})

    def leader(self) -> tuple[Replica | None, int]:
        """(the replica holding the lease now, its epoch); None when none holds it."""
        engine = create_engine(self.database_url)
        try:
            with engine.connect() as conn:
                row = conn.execute(text(
                    "SELECT holder, epoch, expires_at > extract(epoch FROM clock_timestamp()) "
                    "FROM leases WHERE name = 'background'")).first()
        finally:
            engine.dispose()
        if row is None or not row[2]:
            return None, 0 if row is None else int(row[1])
        pid = int(row[0].split(":")[1])
        return next((r for r in self.replicas if r.proc and r.proc.pid == pid), None), \
            int(row[1])

    def wait_leader(self, other_than: Replica | None = None, timeout: float = 15.0
                    ) -> Replica:
        def found() -> Replica | None:
            who, _ = self.leader()
            return who if who is not None and who is not other_than else None
        return wait_for(found, timeout=timeout, interval=0.1, what="a leader")

    def join_token(self, uses: int = 2) -> str:
        with self.client() as c:
            r = c.post("/api/agent-tokens", json={"ttl_s": 600, "uses": uses})
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def connected_everywhere(self, nodes: list[str], replicas: list[Replica] | None = None
                             ) -> bool:
        for replica in replicas or self.replicas:
            try:
                with self.client(replica.url, timeout=5) as c:
                    agents = c.get("/api/agents").json()["agents"]
            except (httpx.HTTPError, ValueError, KeyError):
                return False
            up = {a["node"] for a in agents if a["connected"]}
            if not set(nodes) <= up:
                return False
        return True


def shared_certificate(directory: Path) -> tuple[Path, Path]:
    """One HTTPS certificate for every replica, as behind one name."""
    directory.mkdir(parents=True, exist_ok=True)
    return ensure_self_signed(directory, socket.gethostname(), "127.0.0.1")


@contextmanager
def ha_cluster(tmp: Path, database_url: str, host: str = "127.0.0.1", replicas: int = 2,
               balance: str = "first", env: dict[str, str] | None = None,
               lease_ttl_s: float = LEASE_TTL_S) -> Iterator[HA]:
    """``replicas`` controllers on ``database_url`` behind HAProxy; the first is started first
    (it leads, and makes the admin and the CA the others share)."""
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        raise Unusable("haproxy is not installed: run scripts/setup.sh (make setup)")
    sweep_orphans()
    password = secrets.token_urlsafe(12)
    cert, key = shared_certificate(tmp / "tls")
    common = {**(env or {}), OWNER: str(os.getpid()), "PODCAP_DATABASE_URL": database_url,
              "PODCAP_ADMIN_PASSWORD": password, "PODCAP_LEASE_TTL_S": str(lease_ttl_s)}
    made = [Replica(chr(ord("a") + i), tmp / f"replica-{chr(ord('a') + i)}", free_port(),
                    free_port(), free_port(), host, cert, key, common)
            for i in range(replicas)]
    proxy = HAProxy(tmp, free_port(), made, balance)
    try:
        made[0].start()  # the leader makes the admin and the CA; the others boot together
        for replica in made[1:]:
            replica.start(wait=False)
        for replica in made[1:]:
            replica.wait_ready()
        proxy.start()
        yield HA(made, proxy, password, database_url)
    finally:
        proxy.stop()
        for replica in made:
            if replica.proc is not None and replica.proc.poll() is None:
                if _stopped(replica.pid):
                    replica.resume()
                replica.stop()


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"
    except OSError:
        return False
