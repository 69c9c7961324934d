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
    # (interface, address, prefix length) of every global address in its network namespace
    # (``ip -j addr``, the agent's listing only; empty from a runtime, a start, a remote agent)
    interfaces: tuple[tuple[str, str, int], ...] = ()
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
        data["interfaces"] = [list(i) for i in self.interfaces]
        return data


def _number(low: int, high: int, unit: str) -> dict[str, Any]:
    """A spec number's field metadata: its range (``limits``) and the unit its errors name."""
    return {"min": low, "max": high, "unit": unit}


@dataclass(frozen=True)
class CaptureSpec:
    """What the user asked for. Constructing one validates it against ``podcap.limits``.

    Each number's range and unit sit in its field's metadata: the API body, the rendering,
    ``GET /api/limits`` (and so the web form) and the CLI options are derived from
    ``dataclasses.fields(CaptureSpec)``, so a new setting is added here and nowhere else."""

    duration: int = field(default=limits.DURATION_DEFAULT, metadata=_number(
        0, limits.DURATION_MAX, "seconds (0 = until stopped)"))
    file_number: int = field(default=limits.FILE_NUMBER_DEFAULT, metadata=_number(
        limits.FILE_NUMBER_MIN, limits.FILE_NUMBER_MAX, ""))
    file_size_mb: int = field(default=limits.FILE_SIZE_MB_DEFAULT, metadata=_number(
        limits.FILE_SIZE_MB_MIN, limits.FILE_SIZE_MB_MAX, "(1 = 1,000,000 bytes per file)"))
    filter: str = field(default="", metadata={"max_chars": limits.FILTER_MAX_CHARS})
    snaplen: int = field(default=limits.SNAPLEN_DEFAULT, metadata=_number(
        0, limits.SNAPLEN_MAX, "bytes (0 = whole packets)"))
    buffer_kib: int = field(default=limits.BUFFER_KIB_DEFAULT, metadata=_number(
        limits.BUFFER_KIB_MIN, limits.BUFFER_KIB_MAX, "KiB"))

    def __post_init__(self) -> None:
        numbers = [f for f in dataclasses.fields(self) if "min" in f.metadata]
        for f in numbers:
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise InvalidArgument(f"{f.name} must be a whole number, got {value!r}")
        if self.file_number > limits.FILE_NUMBER_MAX:  # NeuVector's words
            raise InvalidArgument(f"Maximum pcap file count is {limits.FILE_NUMBER_MAX}")
        for f in sorted(numbers, key=lambda f: _CHECK_ORDER.index(f.name)
                        if f.name in _CHECK_ORDER else len(_CHECK_ORDER)):
            _in_range(f.name, getattr(self, f.name), f.metadata["min"], f.metadata["max"],
                      f.metadata["unit"])
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

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The order in which ranges were always checked: with several bad values, the same one is named.
_CHECK_ORDER = ("file_number", "file_size_mb", "duration", "snaplen", "buffer_kib")


def spec_limits() -> dict[str, Any]:
    """Every spec field's default and range, for ``GET /api/limits``: ``<name>_default``,
    ``<name>_min``, ``<name>_max`` of each number, ``filter_max_chars``, and ``spec_fields``
    (name, kind, default, min, max, unit) from which the web form builds its body."""
    flat: dict[str, Any] = {}
    described: list[dict[str, Any]] = []
    for f in dataclasses.fields(CaptureSpec):
        entry: dict[str, Any] = {"name": f.name, "default": f.default}
        if "min" in f.metadata:
            entry.update(kind="integer", min=f.metadata["min"], max=f.metadata["max"],
                         unit=f.metadata["unit"])
            flat.update({f"{f.name}_default": f.default, f"{f.name}_min": f.metadata["min"],
                         f"{f.name}_max": f.metadata["max"]})
        else:
            entry.update(kind="text", max_chars=f.metadata["max_chars"])
            flat[f"{f.name}_max_chars"] = f.metadata["max_chars"]
        described.append(entry)
    return {**flat, "spec_fields": described}


def _in_range(name: str, value: int, low: int, high: int, unit: str) -> None:
    if not low <= value <= high:
        unit = f" {unit}" if unit else ""
        raise InvalidArgument(f"{name} must be between {low} and {high}{unit}, got {value}")


@dataclass
class Stats:
    """tcpdump's own counters (``N packets captured / received by filter / dropped by kernel``)
    plus the bytes of the files on disk."""

    captured: int = 0
    received: int = 0
    dropped: int = 0
    bytes: int = 0


TRIGGERED = "triggered"  # how a snapshot's reason begins: "triggered by admin", "triggered: ..."


@dataclass
class Recording:
    """What makes a capture a recorder's ring (issue 21, controller/recorders.py): it keeps the
    last ``window`` seconds of its container's packets until a trigger freezes it. A freeze in
    progress has ``triggered`` (its first trigger) and ``until`` (the end of its after period);
    a stopped capture with a ``trigger`` is a snapshot, whose reason that is."""

    recorder: str  # the recorder's id
    window: int  # seconds of history a snapshot keeps from before its trigger
    triggered: float | None = None
    until: float | None = None
    trigger: str = ""  # "triggered by admin", "triggered: alert X", ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recording:
        return cls(recorder=str(data["recorder"]), window=int(data["window"]),
                   triggered=data.get("triggered"), until=data.get("until"),
                   trigger=str(data.get("trigger", "")))


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
    recording: Recording | None = None  # a recorder's ring, or a snapshot frozen from one

    @property
    def recording_now(self) -> bool:
        """A recorder's ring that runs: listed with the status ``recording``."""
        return self.recording is not None and self.status is Status.RUNNING

    @property
    def snapshot(self) -> bool:
        """A recorder's ring frozen by a trigger (or whose freeze is under way)."""
        return self.recording is not None and bool(self.recording.trigger)

    @property
    def shown_status(self) -> str:
        """The status lists show: ``recording`` for a recorder's running ring."""
        return "recording" if self.recording_now else str(self.status)

    @property
    def deadline(self) -> float | None:
        return self.start_time + self.spec.duration if self.spec.duration else None

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["workload"] = self.workload.to_dict()
        data["status"] = str(self.status)
        del data["reclaimed"]
        if self.recording is None:
            del data["recording"]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Capture:
        wl = dict(data["workload"])
        wl["ips"] = tuple(wl.get("ips", ()))
        wl["interfaces"] = tuple((str(n), str(a), int(p)) for n, a, p in wl.get("interfaces", ()))
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
            recording=Recording.from_dict(data["recording"]) if data.get("recording") else None,
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
