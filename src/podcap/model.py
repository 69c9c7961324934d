"""The domain: workloads, capture specs, captures and their counters.

Plain dataclasses, free of HTTP, protobuf and Docker. Validation of a capture spec lives here
(against ``podcap.limits``) so every interface refuses the same things with the same words.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from podcap import limits
from podcap.errors import InvalidArgument


class Status(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"
    FAILED = "failed"


class Reason(StrEnum):
    """Why a capture ended. ``error: ...`` reasons carry tcpdump's text and are free strings."""

    DURATION = "duration reached"
    USER = "stopped by user"
    CONTAINER_EXITED = "container exited"
    DISK_BUDGET = "disk budget"
    DISK_FULL = "disk full"  # the file system ran out: stopped before tcpdump loses data
    AGENT_SHUTDOWN = "agent shut down"


@dataclass(frozen=True)
class Workload:
    """A container as the runtime reports it, plus whether podcap may capture it and why not."""

    id: str
    name: str
    runtime: str  # "docker" | "cri"
    node: str
    kind: str = "container"  # "container" | "pod" (a CRI pod sandbox: capture = its netns)
    image: str = ""
    state: str = ""  # "running", "exited", "created", ...
    pid: int | None = None
    pid_start: int | None = None  # /proc/<pid>/stat field 22: binds a capture to one process
    netns: int | None = None  # inode of /proc/<pid>/ns/net
    network_mode: str = ""
    host_network: bool = False
    ips: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict, hash=False)
    pod_name: str = ""
    pod_id: str = ""
    namespace: str = ""  # Kubernetes namespace; NeuVector's "domain"
    container_name: str = ""
    created: float = 0.0
    cap_sniff: bool = False
    cap_sniff_reason: str = ""  # why cap_sniff is false, in words a user understands

    @property
    def running(self) -> bool:
        return self.state == "running" and bool(self.pid)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ips"] = list(self.ips)
        return data


@dataclass(frozen=True)
class CaptureSpec:
    """What the user asked for. Constructing one validates it against ``podcap.limits``."""

    duration: int = limits.DURATION_DEFAULT
    file_number: int = limits.FILE_NUMBER_DEFAULT
    file_size_mb: int = limits.FILE_SIZE_MB_DEFAULT
    filter: str = ""
    snaplen: int = limits.SNAPLEN_DEFAULT
    buffer_kib: int = limits.BUFFER_KIB_DEFAULT

    def __post_init__(self) -> None:
        for name in ("duration", "file_number", "file_size_mb", "snaplen", "buffer_kib"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"{name} must be a whole number, got {value!r}")
        if self.file_number > limits.FILE_NUMBER_MAX:
            raise InvalidArgument(f"Maximum pcap file count is {limits.FILE_NUMBER_MAX}")
        if self.file_number < limits.FILE_NUMBER_MIN:
            raise InvalidArgument(
                f"file_number must be between {limits.FILE_NUMBER_MIN} and "
                f"{limits.FILE_NUMBER_MAX}, got {self.file_number}"
            )
        _in_range("file_size_mb", self.file_size_mb, limits.FILE_SIZE_MB_MIN,
                  limits.FILE_SIZE_MB_MAX, "(1 = 1,000,000 bytes per file)")
        _in_range("duration", self.duration, 0, limits.DURATION_MAX, "seconds (0 = until stopped)")
        _in_range("snaplen", self.snaplen, 0, limits.SNAPLEN_MAX, "bytes (0 = whole packets)")
        _in_range("buffer_kib", self.buffer_kib, limits.BUFFER_KIB_MIN, limits.BUFFER_KIB_MAX,
                  "KiB")
        if not isinstance(self.filter, str):
            raise InvalidArgument("filter must be a string")
        if len(self.filter) > limits.FILTER_MAX_CHARS:
            raise InvalidArgument(
                f"filter is {len(self.filter)} characters; the maximum is "
                f"{limits.FILTER_MAX_CHARS}"
            )
        if "\x00" in self.filter:
            raise InvalidArgument("filter must not contain NUL characters")

    @property
    def max_bytes(self) -> int:
        """Worst-case disk use of this capture: the whole ring full."""
        return self.file_number * self.file_size_mb * limits.BYTES_PER_FILE_SIZE_UNIT

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CaptureSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and v is not None})


def _in_range(name: str, value: int, low: int, high: int, unit: str) -> None:
    if not low <= value <= high:
        raise InvalidArgument(f"{name} must be between {low} and {high} {unit}, got {value}")


@dataclass
class Stats:
    """tcpdump's own counters (``N packets captured / received by filter / dropped by kernel``)
    plus the bytes of the files on disk."""

    captured: int = 0
    received: int = 0
    dropped: int = 0
    bytes: int = 0


@dataclass
class Capture:
    """One capture as the agent knows it. The agent's store persists exactly this."""

    id: str
    agent_id: str
    workload: Workload
    spec: CaptureSpec
    status: Status = Status.RUNNING
    reason: str = ""
    stats: Stats = field(default_factory=Stats)
    files: int = 0
    args: list[str] = field(default_factory=list)
    start_time: float = 0.0
    stop_time: float | None = None
    pid: int | None = None  # tcpdump's pid
    pid_start: int | None = None  # tcpdump's /proc start time, so a reused pid is never adopted
    owner: str = ""  # who started it (the controller's user name): on the agent's log events
    # Only on the answer to a start: ids of the stopped captures the agent deleted to make room
    # for this one (--reclaim oldest), so the controller can audit them. Never stored.
    reclaimed: list[str] = field(default_factory=list)

    @property
    def deadline(self) -> float | None:
        return self.start_time + self.spec.duration if self.spec.duration else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["workload"] = self.workload.to_dict()
        data["status"] = str(self.status)
        del data["reclaimed"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capture:
        wl = dict(data["workload"])
        wl["ips"] = tuple(wl.get("ips", ()))
        return cls(
            id=data["id"],
            agent_id=data["agent_id"],
            workload=Workload(**wl),
            spec=CaptureSpec.from_dict(data["spec"]),
            status=Status(data["status"]),
            reason=data.get("reason", ""),
            stats=Stats(**data.get("stats", {})),
            files=data.get("files", 0),
            args=list(data.get("args", [])),
            start_time=data.get("start_time", 0.0),
            stop_time=data.get("stop_time"),
            pid=data.get("pid"),
            pid_start=data.get("pid_start"),
            owner=data.get("owner", ""),
        )


@dataclass(frozen=True)
class AgentInfo:
    """An agent (NeuVector's "enforcer"): one per node."""

    id: str
    node: str
    runtimes: tuple[str, ...]
    version: str
    started: float
    connected: bool = True
    joined: float = 0.0  # when it joined the cluster (an in-process agent: when it started)
    last_seen: float = 0.0  # last message from it; 0 for the in-process agent (always here)
    disk_budget: int = 0  # its --disk-budget in bytes (0: not known yet: it never connected)
    reclaim: str = ""  # its --reclaim policy ("" while not known)
