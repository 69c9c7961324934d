"""Several cluster "nodes" on one machine: one network namespace per node, joined to the host by
a veth pair on a private test bridge, per ../shared/CLUSTER.md ("On one test machine").

The controller runs on the host and listens on ``controller_ip`` (the bridge's address); an agent
runs inside a node's namespace (``Node.popen``). A node keeps the host's /proc, mounts and unix
sockets (Docker, containerd), so it can still enter container namespaces; only its network is its
own. Traffic only goes between the host and the namespaces: nothing is forwarded or NATed.

Names (all from fixed prefixes, so a dead run's leftovers can be found):

* bridge ``podcap-tb<tag>`` holding 10.231.0.1/24 (clear of Docker's 172.17/16 and the CRI
  bed's 10.88.77.0/24);
* per node a namespace ``podcap-tn-<tag>-<name>`` with ``eth0`` = 10.231.0.(11+i)/24 and a
  default route via the bridge, whose peer ``podcap-tv<tag><i>`` is a bridge port;
* two host ``filter`` rules tagged ``--comment podcap-netbed`` accepting INPUT from / OUTPUT to
  the bridge, so a host firewall with a DROP policy cannot get in the way (Docker's own rules
  only touch FORWARD and NAT, which host<->node traffic never crosses);
* every process started with ``Node.popen`` carries ``PODCAP_NETBED_NS=<netns>`` in its
  environment, so it is found even after it left the namespace or the namespace was unmounted.

One bed per machine at a time: ``net_bed()`` holds a file lock for the bed's whole life, so
whatever carries our prefixes when it starts belongs to a dead run and ``sweep_stale()`` removes
it. Usable alone: ``python -m tests.cluster.netbed a b`` (from the repository root) builds a
bed with those nodes and waits for Ctrl-C.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tests.support import Unusable

log = logging.getLogger("podcap.tests.cluster")

SUBNET = "10.231.0.0/24"
CONTROLLER_IP = "10.231.0.1"
FIRST_NODE_HOST = 11  # node i gets 10.231.0.(11 + i)
MAX_NODES = 40
NETNS_PREFIX = "podcap-tn-"
BRIDGE_PREFIX = "podcap-tb"
VETH_PREFIX = "podcap-tv"
RULE_COMMENT = "podcap-netbed"
CUT_COMMENT = "podcap-netbed-cut"
ENV_MARK = "PODCAP_NETBED_NS"
LOCK = Path("/run/lock/podcap-netbed.lock")
LOCK_WAIT = 120.0
TERM_GRACE = 5.0
CMD_TIMEOUT = 15.0
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")

_active: list[NetBed] = []  # beds open in this process (at most one: see net_bed)


def _ip_bin() -> str:
    return shutil.which("ip") or "/usr/sbin/ip"


def _iptables_bin() -> str:
    return shutil.which("iptables") or "/usr/sbin/iptables"


def _run(argv: list[str], *, check: bool = True, timeout: float = CMD_TIMEOUT
         ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} failed ({done.returncode}): "
                           f"{done.stderr.strip() or done.stdout.strip()}")
    return done


def _step(what: str, fn: Callable[..., object], *args: object) -> None:
    """Run one teardown step; log and go on when it fails, so the next step always runs."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - teardown must reach every step
        log.warning("netbed teardown: %s failed: %s", what, exc)


# ---- nodes --------------------------------------------------------------------------------


@dataclass
class Node:
    name: str
    netns: str
    ip: str
    veth: str = field(default="", repr=False)  # the host-side end, a port of the bridge
    procs: list[subprocess.Popen] = field(default_factory=list, repr=False)
    is_cut: bool = field(default=False, repr=False)

    def _in_ns(self, argv: list[str]) -> list[str]:
        return [_ip_bin(), "netns", "exec", self.netns, *argv]

    def popen(self, argv: list[str], *, env: dict[str, str] | None = None,
              log: Path) -> subprocess.Popen:
        """Start ``argv`` inside the node's namespace (no shell) in a new session, stdout and
        stderr appended to ``log``. ``env`` adds to (and overrides) this process's environment.
        The bed ends the process group at teardown: SIGTERM, then SIGKILL after 5 s."""
        full_env = dict(os.environ)
        full_env.update(env or {})
        full_env[ENV_MARK] = self.netns
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as out:
            out.write(f"--- netbed {self.netns}: {shlex.join(argv)}\n".encode())
            out.flush()
            proc = subprocess.Popen(self._in_ns(argv), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=full_env,
                                    start_new_session=True)
        self.procs.append(proc)
        return proc

    def run(self, argv: list[str], timeout: float = 10) -> subprocess.CompletedProcess:
        """One short command inside the namespace; output captured as text, never raises on
        a non-zero exit (``subprocess.TimeoutExpired`` when it outlives ``timeout``)."""
        env = dict(os.environ)
        env[ENV_MARK] = self.netns
        return subprocess.run(self._in_ns(argv), capture_output=True, text=True,
                              timeout=timeout, check=False, env=env,
                              stdin=subprocess.DEVNULL)

    def cut(self) -> None:
        """Partition the node: iptables DROP of everything but loopback, both directions, in the
        node's own namespace. Packets vanish silently (no RST, no ICMP, no link-down), so an
        established TCP connection just stalls while both kernels retransmit, and a new
        connect() times out, as across a real partition (a TCP send() still succeeds: the data
        waits in the socket buffer; only a UDP/ICMP send inside the node sees EPERM). Chosen
        over ``ip link set eth0 down``, which makes connect() fail at once with ENETUNREACH
        and flushes the node's routes. The rules live in the node's namespace and die with it;
        nothing on the host changes. Idempotent."""
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            spec = [chain, "!", flag, "lo", "-m", "comment", "--comment", CUT_COMMENT, "-j",
                    "DROP"]
            if self.run([_iptables_bin(), "-w", "-C", *spec]).returncode != 0:
                done = self.run([_iptables_bin(), "-w", "-I", *spec])
                if done.returncode != 0:
                    raise RuntimeError(f"cut {self.name}: {done.stderr.strip()}")
        self.is_cut = True

    def heal(self) -> None:
        """Undo cut(): the stalled connections resume at their next retransmission (TCP's
        back-off: up to a few seconds after a long cut). Idempotent."""
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            spec = [chain, "!", flag, "lo", "-m", "comment", "--comment", CUT_COMMENT, "-j",
                    "DROP"]
            for _ in range(10):
                if self.run([_iptables_bin(), "-w", "-D", *spec]).returncode != 0:
                    break
        self.is_cut = False

    def pids(self) -> list[int]:
        """Processes whose network namespace is this node's."""
        return _netns_pids(self.netns)

    def end_processes(self, grace: float = TERM_GRACE) -> None:
        """SIGTERM each started process group, SIGKILL what is left after ``grace`` seconds,
        then SIGKILL anything else still in the namespace."""
        _end_groups(self.procs, grace)
        _kill_in(self.netns)


def _kill_in(netns: str) -> None:
    """SIGKILL whatever is in ``netns`` or was started for it (and its children)."""
    _kill(_netns_pids(netns) + _marked_pids(netns), f"process in {netns}")


def _end_groups(procs: list[subprocess.Popen], grace: float) -> None:
    for proc in procs:
        if proc.poll() is None:
            _killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(max(0.0, deadline - time.monotonic()))
    for proc in procs:
        if proc.poll() is None:  # a group whose leader is gone: its pgid may be reused, so
            _killpg(proc.pid, signal.SIGKILL)  # stragglers are found by their mark instead
    for proc in procs:
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def _killpg(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


# ---- the bed ------------------------------------------------------------------------------


@dataclass
class NetBed:
    tag: str
    controller_ip: str = CONTROLLER_IP
    bridge: str = ""
    nodes: dict[str, Node] = field(default_factory=dict)
    rules: list[list[str]] = field(default_factory=list, repr=False)
    closed: bool = False

    def __post_init__(self) -> None:
        self.bridge = self.bridge or BRIDGE_PREFIX + self.tag

    def start(self) -> None:
        ip = _ip_bin()
        _run([ip, "link", "add", self.bridge, "type", "bridge"])
        _disable_ipv6(self.bridge)
        _run([ip, "addr", "add", f"{self.controller_ip}/24", "dev", self.bridge])
        _run([ip, "link", "set", self.bridge, "up"])
        for chain, flag in (("INPUT", "-i"), ("OUTPUT", "-o")):
            spec = [chain, flag, self.bridge, "-m", "comment", "--comment", RULE_COMMENT,
                    "-j", "ACCEPT"]
            self.rules.append(spec)
            _run([_iptables_bin(), "-w", "-I", *spec])

    def add_node(self, name: str) -> Node:
        """A namespace with eth0 (the node's address, /24) and lo up and a default route via
        the controller's address; eth0's peer is a port of the bridge. Returns once the link
        forwards."""
        if self.closed:
            raise RuntimeError("this NetBed is closed")
        if not _NAME.match(name) or name in self.nodes:
            raise ValueError(f"bad or duplicate node name {name!r}")
        index = len(self.nodes)
        if index >= MAX_NODES:
            raise ValueError(f"at most {MAX_NODES} nodes")
        node = Node(name=name, netns=f"{NETNS_PREFIX}{self.tag}-{name}",
                    ip=f"10.231.0.{FIRST_NODE_HOST + index}",
                    veth=f"{VETH_PREFIX}{self.tag}{index}")
        self.nodes[name] = node  # registered first: close() undoes a half-built node too
        ip = _ip_bin()
        _run([ip, "netns", "add", node.netns])
        _run([ip, "link", "add", node.veth, "type", "veth", "peer", "name", "eth0", "netns",
              node.netns])
        _disable_ipv6(node.veth)
        _run([ip, "link", "set", node.veth, "master", self.bridge])
        _run([ip, "link", "set", node.veth, "up"])
        _run([ip, "-n", node.netns, "link", "set", "lo", "up"])
        _run([ip, "-n", node.netns, "addr", "add", f"{node.ip}/24", "dev", "eth0"])
        _run([ip, "-n", node.netns, "link", "set", "eth0", "up"])
        _run([ip, "-n", node.netns, "route", "add", "default", "via", self.controller_ip])
        _wait_forwarding(node.veth)
        return node

    def node(self, name: str) -> Node:
        return self.nodes[name]

    def close(self) -> None:
        """End processes, delete namespaces, veths, the bridge and our host iptables rules;
        every step runs even when one fails; idempotent."""
        nodes = list(self.nodes.values())
        _step("end processes", _end_groups, [p for n in nodes for p in n.procs], TERM_GRACE)
        for node in nodes:
            _step(f"kill processes in {node.netns}", _kill_in, node.netns)
        for node in nodes:
            _step(f"delete link {node.veth}", _delete_link, node.veth)
        for node in nodes:
            _step(f"delete netns {node.netns}", _delete_netns, node.netns)
        _step(f"delete bridge {self.bridge}", _delete_link, self.bridge)
        for spec in self.rules:
            _step(f"delete rule {spec}", _delete_rule, spec)
        self.closed = True
        if self in _active:
            _active.remove(self)


@contextlib.contextmanager
def net_bed() -> Iterator[NetBed]:
    """A bridge on 10.231.0.1/24 ready for ``add_node``; always torn down on exit. Holds the
    machine-wide lock for its whole life: one bed per machine at a time (the subnet is fixed),
    and not two in one process (that would wait on itself: reuse the open one)."""
    check_usable()
    if _active:
        raise RuntimeError("a NetBed is already open in this process; use that one")
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        _lock(lock)
        _sweep()  # we hold the lock: whatever carries our prefixes is a dead run's
        bed = NetBed(tag=secrets.token_hex(2))
        _active.append(bed)
        try:
            bed.start()
            yield bed
        finally:
            bed.close()


def sweep_stale() -> None:
    """Remove what a dead run (a SIGKILLed test process) left: processes in or started for our
    namespaces, the namespaces, veths, bridges and our host iptables rules. Takes the lock, so
    it never touches a live bed of another process; refuses while this process has one open."""
    if _active:
        raise RuntimeError("a NetBed is open in this process: sweep_stale() would remove it")
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK, "w") as lock:
        _lock(lock)
        _sweep()


def leftovers() -> list[str]:
    """Everything of ours that exists now (empty after a clean teardown or a sweep)."""
    found = [f"netns {n}" for n in _our_netns()]
    found += [f"link {n}" for n in _our_links()]
    found += [f"rule {' '.join(r)}" for r in _our_rules()]
    found += [f"pid {p}" for p in _marked_pids(NETNS_PREFIX, prefix=True)]
    for ns in _our_netns():
        found += [f"pid {p} in {ns}" for p in _netns_pids(ns)]
    return found


# ---- sweeping -------------------------------------------------------------------------------


def _sweep() -> None:
    namespaces = _our_netns()
    pids = _marked_pids(NETNS_PREFIX, prefix=True)
    for ns in namespaces:
        pids += _netns_pids(ns)
    _step("kill stale processes", _kill, pids, "stale netbed process")
    links = _our_links()
    for name in sorted(links, key=lambda n: n.startswith(BRIDGE_PREFIX)):  # veths first
        _step(f"delete stale link {name}", _delete_link, name)
    for ns in namespaces:
        _step(f"delete stale netns {ns}", _delete_netns, ns)
    for spec in _our_rules():
        _step(f"delete stale rule {spec}", _delete_rule, spec)
    if namespaces or links or pids:
        log.info("swept stale netbed: netns %s, links %s, pids %s", namespaces, links, pids)


def _our_netns() -> list[str]:
    done = _run([_ip_bin(), "netns", "list"], check=False)
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    return [n for n in names if n.startswith(NETNS_PREFIX)]


def _our_links() -> list[str]:
    names = []
    with contextlib.suppress(OSError):
        names = [p.name for p in Path("/sys/class/net").iterdir()]
    return sorted(n for n in names if n.startswith((BRIDGE_PREFIX, VETH_PREFIX)))


def _our_rules() -> list[list[str]]:
    """Our host ``filter`` rules, as specs for ``iptables -D`` (from ``iptables -S``)."""
    done = _run([_iptables_bin(), "-w", "-t", "filter", "-S"], check=False)
    specs = []
    for line in done.stdout.splitlines():
        words = shlex.split(line)
        if words[:1] == ["-A"] and RULE_COMMENT in words and CUT_COMMENT not in words:
            specs.append(words[1:])
    return specs


def _delete_rule(spec: list[str]) -> None:
    for _ in range(10):  # the same rule inserted twice needs two deletes
        if _run([_iptables_bin(), "-w", "-D", *spec], check=False).returncode != 0:
            return


def _delete_link(name: str) -> None:
    if Path("/sys/class/net", name).exists():
        _run([_ip_bin(), "link", "delete", name])


def _delete_netns(name: str) -> None:
    if Path("/run/netns", name).exists():
        _run([_ip_bin(), "netns", "delete", name])


def _netns_pids(name: str) -> list[int]:
    done = _run([_ip_bin(), "netns", "pids", name], check=False)
    return [int(w) for w in done.stdout.split() if w.isdigit() and int(w) != os.getpid()]


def _marked_pids(value: str, prefix: bool = False) -> list[int]:
    """PIDs whose environment has ``PODCAP_NETBED_NS=<value>`` (or starting with ``value``):
    what ``Node.popen`` started and those processes' children, wherever they are now."""
    mark = f"{ENV_MARK}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(v.startswith(mark) if prefix else v == mark for v in env):
            found.append(int(entry.name))
    return found


def _kill(pids: list[int], what: str) -> None:
    """SIGKILL ``pids`` and wait (up to 5 s) until none runs any more."""
    live = []
    for pid in sorted(set(pids)):
        try:
            os.kill(pid, signal.SIGKILL)
            live.append(pid)
            log.info("killed %s pid %d", what, pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 5
    while live and time.monotonic() < deadline:
        live = [p for p in live if _running(p)]
        if live:
            time.sleep(0.02)
    if live:
        log.warning("%s pids %s still running after SIGKILL", what, live)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds no namespace and is its parent's to reap)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


# ---- helpers ----------------------------------------------------------------------------------


def _lock(lock: IO[str]) -> None:
    deadline = time.monotonic() + LOCK_WAIT
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() > deadline:
            raise RuntimeError(f"{LOCK} held by another test bed for {LOCK_WAIT:.0f} s")
        time.sleep(0.1)


def _disable_ipv6(name: str) -> None:
    """No IPv6 on our links: no router solicitations or MLD reports in captures or logs."""
    path = Path("/proc/sys/net/ipv6/conf", name, "disable_ipv6")
    with contextlib.suppress(OSError):
        path.write_text("1")


def _wait_forwarding(veth: str, timeout: float = 5.0) -> None:
    """Until the bridge port forwards and the pair has carrier (state 3 = forwarding)."""
    base = Path("/sys/class/net", veth)
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = (base / "brport" / "state").read_text().strip()
            oper = (base / "operstate").read_text().strip()
        except OSError:
            state, oper = "", ""
        if state == "3" and oper == "up":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{veth}: bridge port state {state!r}, operstate {oper!r}")
        time.sleep(0.02)


def check_usable() -> None:
    """Raise ``Unusable`` for a reason outside the project (saying which); a missing tool is a
    failure."""
    if os.geteuid() != 0:
        raise Unusable(f"this run is uid {os.geteuid()}, not root, and the cluster net bed "
                       "needs root (network namespaces, veths, iptables)")
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None and not Path("/usr/sbin", tool).exists():
            raise RuntimeError(f"{tool} is not installed (iproute2, iptables)")
    if not Path("/proc/self/ns/net").exists():
        raise Unusable("this kernel has no network namespaces (/proc/self/ns/net is missing)")


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the context manager's teardown


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _stop)
    with net_bed() as bed, contextlib.suppress(KeyboardInterrupt):
        for node_name in sys.argv[1:] or ["a", "b"]:
            n = bed.add_node(node_name)
            print(f"node {n.name}: {n.ip} in netns {n.netns}", flush=True)
        print(f"controller address {bed.controller_ip} on {bed.bridge}  (Ctrl-C tears down)",
              flush=True)
        signal.pause()
    sys.exit(0)
