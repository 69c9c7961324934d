"""Quotas: what one user, one namespace and one node may hold at once.

Per user and per namespace: running captures, disk (a running capture counts its whole ring,
a stopped one the bytes it kept) and kernel capture buffer (``-B``, RAM the kernel pins while
a capture runs). Per node: kernel buffer of all running captures, by default a quarter of the
controller host's RAM (the same budget applies to every node). A start that would pass a limit
is refused with 429 naming it and its setting; 0 turns a limit off.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from podcap import limits
from podcap.errors import ResourceExhausted
from podcap.model import CaptureSpec, Status


@dataclass(frozen=True)
class Usage:
    captures: int = 0
    disk_bytes: int = 0
    buffer_bytes: int = 0

    def plus(self, spec: CaptureSpec) -> Usage:
        return Usage(self.captures + 1, self.disk_bytes + spec.max_bytes,
                     self.buffer_bytes + spec.buffer_kib * 1024)


@dataclass(frozen=True)
class Held:
    """One capture as the quotas see it."""

    owner: str
    namespace: str
    agent_id: str
    spec: CaptureSpec
    status: str
    bytes: int
    # Placed by this controller (an owner row names its agent). A capture a node reports on
    # its own counts against that node only: a node cannot fill a user's or a namespace's quota.
    placed: bool = True


@dataclass(frozen=True)
class Quotas:
    user_captures: int = limits.QUOTA_USER_CAPTURES
    user_disk_bytes: int = limits.QUOTA_USER_DISK_BYTES
    user_buffer_bytes: int = limits.QUOTA_USER_BUFFER_BYTES
    namespace_captures: int = limits.QUOTA_NAMESPACE_CAPTURES
    namespace_disk_bytes: int = limits.QUOTA_NAMESPACE_DISK_BYTES
    namespace_buffer_bytes: int = limits.QUOTA_NAMESPACE_BUFFER_BYTES
    node_buffer_bytes: int = 0  # 0 here: filled from RAM by default_node_buffer()

    def as_dict(self) -> dict[str, int]:
        return {f"quota_{k}": v for k, v in asdict(self).items()}

    def check(self, owner: str, namespace: str, agent_id: str, spec: CaptureSpec,
              held: Iterable[Held]) -> None:
        user, space, node = Usage(), Usage(), Usage()
        for h in held:
            running = h.status == Status.RUNNING
            add = Usage(int(running), h.spec.max_bytes if running else h.bytes,
                        h.spec.buffer_kib * 1024 if running else 0)
            if h.placed and h.owner == owner:
                user = _sum(user, add)
            if h.placed and h.namespace == namespace:
                space = _sum(space, add)
            if h.agent_id == agent_id:
                node = _sum(node, add)
        user, space, node = user.plus(spec), space.plus(spec), node.plus(spec)
        who, where = f"user {owner}", f"namespace {namespace or '(none)'}"
        for have, limit, setting, what in (
                (user.captures, self.user_captures, "user_captures", f"{who}: running captures"),
                (user.disk_bytes, self.user_disk_bytes, "user_disk_bytes", f"{who}: disk"),
                (user.buffer_bytes, self.user_buffer_bytes, "user_buffer_bytes",
                 f"{who}: kernel buffer"),
                (space.captures, self.namespace_captures, "namespace_captures",
                 f"{where}: running captures"),
                (space.disk_bytes, self.namespace_disk_bytes, "namespace_disk_bytes",
                 f"{where}: disk"),
                (space.buffer_bytes, self.namespace_buffer_bytes, "namespace_buffer_bytes",
                 f"{where}: kernel buffer"),
                (node.buffer_bytes, self.node_buffer_bytes, "node_buffer_bytes",
                 "this node: kernel buffer of running captures")):
            if limit and have > limit:
                raise ResourceExhausted(
                    f"quota reached: {what} would be {have} with this capture, limit {limit} "
                    f"(quota_{setting}, PODCAP_QUOTA_{setting.upper()}); stop or delete a "
                    "capture, or ask for less (buffer_kib, file_size_mb, file_number)")


def _sum(a: Usage, b: Usage) -> Usage:
    return Usage(a.captures + b.captures, a.disk_bytes + b.disk_bytes,
                 a.buffer_bytes + b.buffer_bytes)


def default_node_buffer() -> int:
    """A quarter of this host's RAM (``MemTotal``), or 1 GiB when it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 // limits.NODE_BUFFER_RAM_DIVISOR
    except (OSError, ValueError, IndexError):
        pass
    return 1024**3
