"""The agent transport: everything the controller may ask of one agent.

The ``Agent`` (agent/manager.py) satisfies it itself, so ``podcap serve`` hands the controller
the agent as it is; ``RemoteAgent`` (``transport/grpc/remote.py``) reaches an agent that
dialled in over gRPC, and the agent's ``Uplink`` (``transport/grpc/uplink.py``) serves any
``AgentTransport`` to the controller. The controller never knows which it holds. The protocol
is structural: anything with these methods is a transport (a test's fake agent included), and
mypy checks the ``Agent`` against it where the controller is given one (server.py). Every
method may raise ``Unavailable`` (naming the node) when a remote agent is away or too slow;
deadlines are the transport's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from podcap.model import AgentInfo, Capture, CaptureSpec, Recording, Workload
from podcap.streams import PcapRequest, PcapStream
from podcap.views import NodeView


@dataclass(frozen=True)
class AgentHello:
    """What an agent says of itself when its session opens: claims, checked field by field on
    the way in (``transport/grpc/codec.py``). Its id is not among them: that comes from the
    certificate it connected with, never from a message."""

    node: str
    version: str = ""
    runtimes: tuple[str, ...] = ()
    started: float = 0.0
    disk_budget: int = 0  # bytes (--disk-budget)
    reclaim: str = ""  # --reclaim policy


class AgentTransport(Protocol):
    def info(self) -> AgentInfo: ...

    def list_workloads(self) -> list[Workload]: ...

    def check_filter(self, expression: str) -> None: ...

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture: ...

    def record(self, workload_id: str, spec: CaptureSpec, owner: str,
               recording: Recording) -> Capture:
        """A recorder's ring for the container (the running one when there is one)."""
        ...

    def freeze(self, capture_id: str, trigger: str, after: float) -> Capture:
        """Freeze a recorder's ring into a snapshot of its window plus ``after`` seconds
        (agent/rings.py); the ring as it is now."""
        ...

    def stop(self, capture_id: str) -> Capture: ...

    def remove(self, capture_id: str) -> None: ...

    def list_captures(self) -> list[Capture]: ...

    def get_capture(self, capture_id: str) -> Capture: ...

    def known_captures(self) -> list[Capture]:
        """The last state seen of each capture, without asking: what a list shows while the
        agent cannot be reached."""
        ...

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        ...

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        """A JSON document the agent keeps or computes beside a capture's files (its
        summary, its network-state snapshot, its rate series): small, so it travels as
        one reply rather than an upload."""
        ...

    def view(self) -> NodeView:
        """This node's inventory as it last pushed it (views.py): every list reads it, and
        none asks the agent."""
        ...

    def sync(self) -> None:
        """Have the agent look now: when this returns, the view holds every change made on
        the node before the call. Asked only when a start names what no view holds."""
        ...

    def close(self) -> None: ...
