"""The controller's side of a remote agent: an ``AgentTransport`` over the agent's session,
and the view its pushed inventory feeds (views.py).

The agent dialled in and holds one gRPC stream open (``gateway_session.py`` serves it;
``session.py`` carries commands over it; a download's bytes come on the data port,
``transport/data/``). Each method of the interface is one command and the check of its answer
(``codec.py``): a lying node's entries are dropped and counted, never believed.

While the agent is away, every command answers ``Unavailable`` naming the node, and the last
state seen of each capture stays available (``known_captures``), marked stale by the service.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import TypeVar

from podcap import limits
from podcap.errors import InvalidArgument, PodcapError, Unavailable
from podcap.ids import capture_id, workload_id
from podcap.model import AgentInfo, Capture, CaptureSpec, Recording, Workload
from podcap.streams import PcapRequest, PcapStream
from podcap.transport import rejects
from podcap.transport.base import AgentHello
from podcap.transport.data.incoming import Uploads
from podcap.transport.grpc import codec
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.errors import from_wire
from podcap.transport.grpc.pushed import Pushed
from podcap.transport.grpc.session import AgentSession
from podcap.transport.rejects import RESYNC, Rejects
from podcap.views import InventoryUpdate, NodeView

log = logging.getLogger("podcap.controller.agents")

M = TypeVar("M")
T = TypeVar("T")


class RemoteAgent:
    """An agent that joined: connected (a session is open) or not (last known state)."""

    def __init__(self, info: AgentInfo, uploads: Uploads, rejects: Rejects | None = None
                 ) -> None:
        self._info = dataclasses.replace(info, connected=False)
        self._uploads = uploads
        self.rejects = rejects or Rejects()
        self._session: AgentSession | None = None
        self._known: dict[str, Capture] = {}
        self._lock = threading.Lock()
        self.last_seen = info.last_seen
        self.pushed = Pushed(  # its inventory as received (pushed.py)
            lambda message: self.rejects.note(info.id, RESYNC, message))
        self.commands: Counter[str] = Counter()  # commands sent, by operation (metrics)
        self._shown: tuple[tuple[AgentInfo, float, bool], AgentInfo] | None = None

    # ---- the session's life (called by the gateway and the registry) ---------------------

    def attach(self, session: AgentSession, hello: AgentHello) -> None:
        with self._lock:
            old, self._session = self._session, session
            self._info = dataclasses.replace(
                self._info, node=hello.node or self._info.node, version=hello.version,
                runtimes=tuple(hello.runtimes), started=hello.started, connected=True,
                disk_budget=hello.disk_budget, reclaim=hello.reclaim)
            self.last_seen = time.time()
        if old is not None:
            old.close()
        self.pushed.new_session()

    def detach(self, session: AgentSession, why: str) -> None:
        with self._lock:
            if self._session is not session:
                return
            self._session = None
            self._info = dataclasses.replace(self._info, connected=False)
        session.close()
        self.pushed.view.unsynced()  # its view is kept, marked stale, until a snapshot
        log.warning("agent %s on node %s disconnected: %s", self._info.id, self._info.node, why)

    def seen(self) -> None:
        self.last_seen = time.time()

    @property
    def session(self) -> AgentSession | None:
        return self._session

    # ---- AgentTransport --------------------------------------------------------------

    def info(self) -> AgentInfo:
        """Connected once its session is open and its first snapshot in (never "connected"
        and empty). Made again only when something in it changed: every list reads every
        node's (500 copies a list took 2 ms of the 2.3 an ``f_name`` list cost, figure 11)."""
        key = (self._info, self.last_seen, self.pushed.ready)
        shown = self._shown
        if shown is None or shown[0] != key:
            shown = self._shown = (key, dataclasses.replace(
                self._info, last_seen=self.last_seen,
                connected=self._info.connected and self.pushed.ready))
        return shown[1]

    def list_workloads(self) -> list[Workload]:
        """Invalid entries are dropped (logged, counted); more than the cap is refused whole:
        no real node runs that many, and reading them all slowed every list."""
        reply = self._call(pb.Command(list_workloads=pb.Empty()), limits.FANOUT_DEADLINE_S)
        self._cap(rejects.WORKLOADS, len(reply.workloads.items), limits.AGENT_WORKLOADS_MAX)
        return self._workloads(reply.workloads.items)

    def _workloads(self, items: Iterable[pb.Workload]) -> list[Workload]:
        node = self._info.node
        return [dataclasses.replace(w, node=node) if w.node != node else w  # speaks for itself
                for w in self._valid(codec.workload_from_pb, items, "workload")]

    def check_filter(self, expression: str) -> None:
        self._call(pb.Command(check_filter=expression), limits.COMMAND_TIMEOUT_S)

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        command = pb.Command(start=pb.StartCapture(workload_id=workload_id,
                                                   spec=codec.spec_to_pb(spec), owner=owner))
        return self._remember(self._call(command, limits.COMMAND_TIMEOUT_S))

    def record(self, workload_id: str, spec: CaptureSpec, owner: str,
               recording: Recording) -> Capture:
        command = pb.Command(record=pb.RecordCapture(
            start=pb.StartCapture(workload_id=workload_id, spec=codec.spec_to_pb(spec),
                                  owner=owner),
            recorder=recording.recorder, window=recording.window))
        return self._remember(self._call(command, limits.COMMAND_TIMEOUT_S))

    def freeze(self, capture_id: str, trigger: str, after: float) -> Capture:
        command = pb.Command(freeze=pb.Freeze(capture_id=capture_id, trigger=trigger,
                                              after_s=after))
        return self._remember(self._call(command, limits.COMMAND_TIMEOUT_S))

    def stop(self, capture_id: str) -> Capture:
        return self._remember(self._call(pb.Command(stop=capture_id), limits.COMMAND_TIMEOUT_S))

    def remove(self, capture_id: str) -> None:
        self._call(pb.Command(remove=capture_id), limits.COMMAND_TIMEOUT_S)
        with self._lock:
            self._known.pop(capture_id, None)

    def list_captures(self) -> list[Capture]:
        reply = self._call(pb.Command(list_captures=pb.Empty()), limits.FANOUT_DEADLINE_S)
        self._cap(rejects.CAPTURES, len(reply.captures.items), limits.AGENT_CAPTURES_MAX)
        captures = self._captures(reply.captures.items)
        with self._lock:
            self._known = {c.id: c for c in captures}
        return captures

    def get_capture(self, capture_id: str) -> Capture:
        return self._remember(self._call(pb.Command(get_capture=capture_id),
                                         limits.FANOUT_DEADLINE_S))

    def known_captures(self) -> list[Capture]:
        with self._lock:
            return list(self._known.values())

    def view(self) -> NodeView:
        return self.pushed.view

    def sync(self) -> None:
        self._call(pb.Command(sync=pb.Empty()), limits.INVENTORY_SYNC_S)

    # ---- the inventory it pushes (views.py; the gateway's session reader calls these) -----

    def on_inventory(self, session: AgentSession, m: pb.Inventory) -> None:
        """Checked as a list's answer was: invalid entries dropped and counted, its node's
        name put on its workloads, another agent's captures refused; a snapshot over the caps
        refused whole. A delta after a gap asks for a snapshot."""
        try:
            self._inventory(session, m)
        except Exception as exc:  # a message that breaks a rule no check foresaw: this one
            self.rejects.drop(self._info.id, self._info.node, rejects.INVALID,
                              f"invalid inventory: {type(exc).__name__}: {exc}"[:300])

    def _inventory(self, session: AgentSession, m: pb.Inventory) -> None:
        if m.snapshot:
            over = []
            for what, n, high in (
                    (rejects.WORKLOADS, len(m.workloads), limits.AGENT_WORKLOADS_MAX),
                    (rejects.CAPTURES, len(m.captures), limits.AGENT_CAPTURES_MAX)):
                try:
                    self._cap(what, n, high)
                except Unavailable as exc:
                    over.append(exc.message)
            if over:
                self.pushed.refuse(over[0])
                return
        self.pushed.receive(session, self._info.node, InventoryUpdate(
            m.seq, m.snapshot, tuple(self._workloads(m.workloads)),
            tuple(self._valid(workload_id, m.workloads_gone, "workload id")),
            tuple(self._captures(m.captures)),
            tuple(self._valid(capture_id, m.captures_gone, "capture id")),
            tuple(self._valid(codec.counters_from_pb, m.counters, "counters"))))

    def on_heartbeat(self, session: AgentSession, m: pb.Heartbeat) -> None:
        self.pushed.heartbeat(session, self._info.node, m.inventory_seq)

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        command = pb.Command(document=pb.DocumentRequest(capture_id=capture_id, name=name,
                                                         params=params or {}))
        data = self._call(command, limits.COMMAND_TIMEOUT_S).document
        return self._one(codec.document_from_wire, data, "document")

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        """The command names a one-time ticket; the agent brings the bytes on the data port
        (``transport/data/``) and the stream reads them from that connection."""
        upload = self._uploads.expect(self._info.id)
        try:
            download = codec.download_to_pb(capture_id, request, upload.id)
            download.data_port = self._uploads.port
            self._call(pb.Command(download=download), limits.COMMAND_TIMEOUT_S)
            if not upload.started.wait(limits.COMMAND_TIMEOUT_S):
                raise Unavailable(f"node {self._info.node} did not start the download within "
                                  f"{limits.COMMAND_TIMEOUT_S:g} s")
        except BaseException:
            upload.cancel()
            self._uploads.forget(upload)
            raise
        return PcapStream(upload.chunks(self._info.node), upload.size, on_close=upload.cancel,
                          achunks=upload.achunks(self._info.node))

    def close(self) -> None:
        session = self._session
        if session is not None:
            self.detach(session, "controller shutting down")

    # ---- internals -------------------------------------------------------------------

    def _call(self, command: pb.Command, timeout: float) -> pb.Reply:
        session = self._session
        node = self._info.node
        if session is None:
            ago = f"; last seen {time.time() - self.last_seen:.0f} s ago" if self.last_seen \
                else ""
            raise Unavailable(f"node {node} is disconnected{ago}")
        self.commands[command.WhichOneof("op") or ""] += 1
        try:
            reply = session.call(command, timeout)
        except Unavailable as exc:
            raise Unavailable(f"node {node}: {exc.message}") from None
        if reply.WhichOneof("result") == "error":
            raise from_wire(reply.error)
        return reply

    def _captures(self, items: Iterable[pb.Capture]) -> list[Capture]:
        return self._valid(lambda m: self._own(codec.capture_from_pb(m)), items, "capture")

    def _own(self, capture: Capture) -> Capture:
        """An agent speaks for its own captures only."""
        if capture.agent_id != self._info.id:
            raise InvalidArgument(f"node {self._info.node} reported capture {capture.id} of "
                                  f"agent {capture.agent_id!r}")
        return capture

    def _valid(self, convert: Callable[[M], T], messages: Iterable[M], what: str) -> list[T]:
        """The entries that pass their checks; the others are dropped, logged and counted."""
        kept: list[T] = []
        bad: list[str] = []
        for m in messages:
            try:
                kept.append(convert(m))
            except PodcapError as exc:
                bad.append(exc.message)
        if bad:
            self.rejects.drop(self._info.id, self._info.node, rejects.INVALID,
                              f"invalid {what}: {bad[0]}", len(bad))
        return kept

    def _one(self, convert: Callable[[M], T], message: M, what: str) -> T:
        """The answer of one command: an invalid one fails this request only, as a node that
        could not answer (503 naming it), never as the user's mistake."""
        try:
            return convert(message)
        except PodcapError as exc:
            self.rejects.drop(self._info.id, self._info.node, rejects.INVALID,
                              f"invalid {what}: {exc.message}")
            raise Unavailable(f"node {self._info.node} sent an invalid {what}: "
                              f"{exc.message}") from None

    def _cap(self, what: str, n: int, high: int) -> None:
        if n > high:
            self.rejects.limit(self._info.id, self._info.node, what,
                               f"reported {n} {what}; at most {high} are read")
            raise Unavailable(f"node {self._info.node} reported {n} {what}; at most {high} "
                              f"(limits.AGENT_{what.upper()}_MAX)")

    def _remember(self, reply: pb.Reply) -> Capture:
        capture = self._one(lambda m: self._own(codec.capture_from_pb(m)), reply.capture,
                            "capture")
        with self._lock:
            self._known[capture.id] = capture
        return capture
