"""Shared pieces of the benchmark suite: configuration, statistics, containers, processes.

Everything the suite starts is recorded here and ended here, by PID or by the exact container id:
Docker is shared with other test suites, so nothing is ever ended by name pattern.
"""

from __future__ import annotations

import math
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import docker
import docker.errors

ROOT = Path(__file__).resolve().parent.parent
IMAGE = "podcap-test/busybox:1"
NSENTER = "/usr/bin/nsenter"
TCPDUMP = "/usr/bin/tcpdump"
IPERF3 = "/usr/bin/iperf3"
CURL = "/usr/bin/curl"
NAME_PREFIX = "podcap-bench"


# --------------------------------------------------------------------------------------------
# Configuration


@dataclass
class Config:
    """Sizes and repeats of every figure. ``smoke()`` shrinks them to a few seconds in all."""

    smoke: bool = False
    # 1. capture fidelity
    fid_seconds: int = 10
    fid_repeats: int = 3
    # "<payload>x<senders>": iperf3 UDP clients at once. One sender is the figure; two
    # contend for this machine's cores with tcpdump, which is when buffers and -U matter.
    fid_loads: tuple[str, ...] = ("64x1", "1400x1", "1400x2")
    fid_reference: bool = False  # also one run of iperf3 alone per load
    fid_drain_s: float = 0.5  # after iperf3 ends, before the capture is stopped
    # also podcap with its tcpdump at the workloads' priority (--capture-priority 0: before
    # capture/priority.py), in the same run
    fid_priority_before: bool = True
    sweep: bool = True
    sweep_seconds: int = 4
    sweep_repeats: int = 3
    sweep_loads: tuple[str, ...] = ("1400x2",)  # one sender dropped nothing at any -B here
    sweep_buffers_kib: tuple[int, ...] = (2048, 8192, 32768)
    # "noU": podcap's argv as is (no -U); "U": with -U, at every buffer. "imm": -U plus
    # --immediate-mode, and each snap length other than 0: at the default buffer only.
    sweep_modes: tuple[str, ...] = ("U", "noU", "imm")
    sweep_snaplens: tuple[int, ...] = (128,)
    # 13. flight recorder (bench/recorder.py): repeats of the saturation arms, which parts
    # run, and agents with other priorities the saturation arms also run on, as
    # "capture/ring" nice values, comma-separated ("0/0": every tcpdump at the workloads'
    # priority, as before capture/priority.py; "" for none)
    rec_sat_repeats: int = 5
    rec_window: bool = True
    rec_idle: bool = True
    rec_other_priorities: str = "0/0"
    # 2. start latency
    start_repeats: int = 30
    start_hold_s: float = 1.2  # > tcpdump's 1 s buffer timeout, see latency.py
    probe_hz: int = 1000
    # 3. stop fidelity
    stop_repeats: int = 5
    stop_window_ms: int = 200
    stop_run_s: float = 1.5  # plus a random 0..stop_jitter_s, so stops fall at any phase of
    stop_jitter_s: float = 1.0  # tcpdump's 1 s buffer timeout
    stop_load: bool = True  # also measure with iperf3 UDP load on the captured container
    # 4. download
    download_bytes: int = 1024**3
    download_file_size_mb: int = 100
    download_file_number: int = 11
    download_repeats: int = 3
    download_fill_timeout_s: float = 120.0
    # 5. scale
    scale_containers: int = 100
    scale_requests: int = 200
    scale_settle_s: float = 3.0
    # 8. insight (bench/insight.py)
    insight_packets: int = 1_000_000
    insight_repeats: int = 3
    insight_seconds: int = 8
    insight_capture_repeats: int = 3
    insight_bitrate: str = "400M"  # iperf3 -b: the same load in both arms (bench/insight.py)

    @classmethod
    def smoke_config(cls) -> Config:
        return cls(
            smoke=True, fid_seconds=1, fid_repeats=1, fid_loads=("1400x1",), fid_drain_s=0.2,
            sweep_seconds=1, sweep_buffers_kib=(8192,), sweep_snaplens=(), sweep_modes=("U",),
            start_repeats=1, start_hold_s=1.1, stop_repeats=1, stop_run_s=0.4,
            stop_jitter_s=0.0, stop_load=False,
            download_bytes=3_000_000, download_file_size_mb=1, download_file_number=5,
            download_repeats=1, download_fill_timeout_s=30.0,
            scale_containers=3, scale_requests=10, scale_settle_s=0.5,
            insight_packets=20_000, insight_repeats=1, insight_seconds=1,
            insight_capture_repeats=1,
            rec_other_priorities="",  # the other priorities' beds run the same code again
        )

    def set(self, assignment: str) -> None:
        """``name=value`` from the command line, converted to the field's type."""
        name, _, raw = assignment.partition("=")
        known = {f.name: f for f in fields(self)}
        if name not in known or not raw:
            raise SystemExit(f"--set {assignment!r}: expected one of {sorted(known)} = value")
        current = getattr(self, name)
        value: Any
        if isinstance(current, bool):
            value = raw.lower() in ("1", "true", "yes", "on")
        elif isinstance(current, tuple):
            items = [x for x in raw.split(",") if x]
            value = tuple(x if name.endswith(("_loads", "_modes")) else int(x) for x in items)
        else:
            value = type(current)(raw)
        setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --------------------------------------------------------------------------------------------
# Statistics


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, float]:
    """n, median, min, max, p5, p95, p99 of a sample (NaN when empty)."""
    vals = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not vals:
        nan = math.nan
        return {"n": 0, "median": nan, "min": nan, "max": nan, "p5": nan, "p95": nan, "p99": nan}
    return {"n": len(vals), "median": percentile(vals, 50), "min": min(vals), "max": max(vals),
            "p5": percentile(vals, 5), "p95": percentile(vals, 95), "p99": percentile(vals, 99)}


def ratio(a: float | None, b: float | None) -> float:
    if a is None or b is None or math.isnan(a) or math.isnan(b):
        return math.nan
    if b == 0:
        return 0.0 if a == 0 else math.inf
    return a / b


# --------------------------------------------------------------------------------------------
# Containers


@dataclass
class Box:
    """A running container the suite created."""

    name: str
    id: str
    pid: int
    ip: str

    @property
    def netns(self) -> str:
        return f"/proc/{self.pid}/ns/net"

    def nsenter(self, *argv: str) -> list[str]:
        return [NSENTER, f"--net={self.netns}", "--", *argv]


class Containers:
    """Creates busybox containers with unique names and removes exactly those."""

    def __init__(self) -> None:
        self.client = docker.from_env(timeout=120)
        self.mine: dict[str, str] = {}  # id -> name

    def run(self, role: str, lifetime_s: int = 3600,
            labels: dict[str, str] | None = None) -> Box:
        name = f"{NAME_PREFIX}-{role}-{secrets.token_hex(4)}"
        # `sleep` ends by itself: a container left behind by a crash still goes away.
        c = self.client.containers.run(IMAGE, ["sleep", str(lifetime_s)], name=name,
                                       detach=True, labels={"podcap.bench": "1",
                                                            **(labels or {})})
        self.mine[c.id] = name
        c.reload()
        pid = int(c.attrs["State"]["Pid"])
        nets = c.attrs["NetworkSettings"]["Networks"]
        ip = next(iter(nets.values()))["IPAddress"] if nets else ""
        if not pid or not ip:
            raise RuntimeError(f"container {name} has no pid/ip: {c.attrs['State']}")
        return Box(name=name, id=c.id, pid=pid, ip=ip)

    def remove(self, box_id: str) -> None:
        if box_id not in self.mine:
            return
        try:
            self.client.api.remove_container(box_id, force=True)
        except docker.errors.NotFound:
            pass
        self.mine.pop(box_id, None)

    def remove_all(self) -> None:
        for cid in list(self.mine):
            try:
                self.remove(cid)
            except docker.errors.DockerException:
                self.mine.pop(cid, None)


# --------------------------------------------------------------------------------------------
# Processes


class Procs:
    """Child processes of the suite; ``end_all`` stops the ones still running, by PID."""

    def __init__(self) -> None:
        self.children: list[subprocess.Popen[bytes]] = []

    def spawn(self, argv: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(argv, **kwargs)
        self.children.append(proc)
        return proc

    def end(self, proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM,
            grace: float = 5.0) -> None:
        if proc.poll() is None:
            signal_group(proc.pid, sig)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc in self.children:
            self.children.remove(proc)

    def end_all(self) -> None:
        for proc in list(self.children):
            self.end(proc, grace=2.0)


def signal_group(pid: int, sig: int) -> None:
    """Signal the process group led by ``pid`` (children are started in their own session)."""
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def run(argv: list[str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.01,
               what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Memory of a process


def rss_bytes(pid: int) -> int:
    """VmRSS of one process (0 when it is gone)."""
    return _status_kib(pid, "VmRSS") * 1024


def hwm_bytes(pid: int) -> int:
    return _status_kib(pid, "VmHWM") * 1024


def reset_hwm(pid: int) -> None:
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def _status_kib(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return 0


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


# --------------------------------------------------------------------------------------------
# Work directory


@dataclass
class Workdir:
    path: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="podcap-bench-")))

    def sub(self, name: str) -> Path:
        p = self.path / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def cleanup(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
