"""What one joined agent pushes (its inventory), as the controller receives it: the view it
feeds (views.py), whether this session's first snapshot is in, and the repair of a view that
missed an update (a ``resync`` asked once, until the snapshot comes).

``RemoteAgent`` checks each message's entries (transport/grpc/remote.py) and hands the update
here; the session reader (gateway_session.py) calls in message order, so no lock is needed
beyond the view's own.
"""

from __future__ import annotations

from collections.abc import Callable

from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.session import AgentSession
from podcap.views import InventoryUpdate, NodeView


class Pushed:
    def __init__(self, note: Callable[[str], None]) -> None:
        self.note = note  # logs at a bounded rate (transport/rejects.py): a node may lie often
        self.view = NodeView()
        self.ready = False  # this session's first snapshot is in (or was refused whole)
        self.refused = ""  # why its last snapshot was refused (over a cap), shown in lists
        self.resyncs = 0  # snapshots asked for after a gap (metrics, tests)
        self._awaiting = False  # a snapshot was asked for and has not come yet

    def new_session(self) -> None:
        """A session opened: it begins with a snapshot."""
        self.view.unsynced()
        self._awaiting = self.ready = False

    def refuse(self, why: str) -> None:
        """A snapshot refused whole: the node answered (connected), its view is not right."""
        self.refused, self.ready = why, True
        self.view.unsynced()

    def receive(self, session: AgentSession, node: str, update: InventoryUpdate) -> None:
        if update.snapshot:
            self._awaiting, self.refused = False, ""
        applied = self.view.apply(update)
        if applied and update.snapshot:
            self.ready = True
        if not applied and not self._awaiting:
            self.note(f"node {node}: inventory update {update.seq} does not follow the last "
                      "one; asking for a snapshot")
            self._resync(session)

    def heartbeat(self, session: AgentSession, node: str, last_sent: int) -> None:
        """A heartbeat names the agent's last update: a synced view at another number lost
        one (the last delta of a quiet spell), so it asks for a snapshot."""
        if last_sent and self.view.state().synced and self.view.seq != last_sent:
            self.note(f"node {node}: its last inventory update is {last_sent}, its view's "
                      f"{self.view.seq}; asking for a snapshot")
            self.view.unsynced()
            self._resync(session)

    def _resync(self, session: AgentSession) -> None:
        self._awaiting = True
        self.resyncs += 1
        session.send(pb.ControllerMessage(resync=pb.Empty()))
