"""The controller's side of a remote agent: an ``AgentTransport`` over the agent's session.

The agent dialled in and holds one gRPC stream open (``controller/gateway.py`` serves it).
A command is a ``Command`` with a sequence number put on that stream; the caller waits for the
``Reply`` with the same number, at most a deadline. A download is a ``Download`` command that
the agent answers by opening an ``Upload`` call of its own; its chunks reach the reader
through a small bounded queue, so a slow reader slows the agent (HTTP/2 flow control) and a
reader that goes away ends the agent's read.

While the agent is away, every command answers ``Unavailable`` naming the node, and the last
state seen of each capture stays available (``known_captures``), marked stale by the service.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypeVar

from podcap import limits
from podcap.errors import InvalidArgument, NotFound, PermissionDenied, PodcapError, Unavailable
from podcap.model import AgentInfo, Capture, CaptureSpec, Workload
from podcap.streams import PcapRequest, PcapStream
from podcap.transport import codec, rejects
from podcap.transport.agent_proto import agent_pb2 as pb
from podcap.transport.errors import from_wire
from podcap.transport.rejects import Rejects

log = logging.getLogger("podcap.controller.agents")

_END = object()
M = TypeVar("M")
T = TypeVar("T")


class AgentSession:
    """One open Session stream: what the controller sends, and the replies it waits for."""

    def __init__(self, cancel: Callable[[], None]) -> None:
        self.outbox: queue.Queue[pb.ControllerMessage | None] = queue.Queue()
        self._cancel = cancel
        self._pending: dict[int, Future[pb.Reply]] = {}
        self._seq = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = threading.Event()

    def call(self, command: pb.Command, timeout: float) -> pb.Reply:
        future: Future[pb.Reply] = Future()
        with self._lock:
            if self.closed.is_set():
                raise Unavailable("the agent's session closed")
            command.seq = next(self._seq)
            self._pending[command.seq] = future
        command.deadline = time.time() + timeout
        self.outbox.put(pb.ControllerMessage(command=command))
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise Unavailable(f"no answer within {timeout:g} s") from None
        finally:
            with self._lock:
                self._pending.pop(command.seq, None)

    def on_reply(self, reply: pb.Reply) -> bool:
        """False for a reply nobody waits for (late, duplicated or made up)."""
        with self._lock:
            future = self._pending.pop(reply.seq, None)
        if future is None:
            return False
        future.set_result(reply)
        return True

    def close(self) -> None:
        with self._lock:
            if self.closed.is_set():
                return
            self.closed.set()
            pending, self._pending = self._pending, {}
        for future in pending.values():
            future.set_exception(Unavailable("the agent's session closed"))
        self.outbox.put(None)
        self._cancel()


class IncomingUpload:
    """One download on its way from an agent: the header's size, then chunks, then the end."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.id = secrets.token_hex(16)
        self.size: int | None = None
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self._chunks: queue.Queue[object] = queue.Queue(limits.UPLOAD_QUEUE_CHUNKS)

    # -- the gateway's Upload handler feeds it --
    def begin(self, size: int) -> None:
        self.size = None if size < 0 else size
        self.started.set()

    def put(self, item: object) -> bool:
        """Blocks while the reader is behind; False once the reader is gone."""
        deadline = time.monotonic() + limits.UPLOAD_IDLE_S
        while not self.cancelled.is_set():
            try:
                self._chunks.put(item, timeout=0.2)
                return True
            except queue.Full:
                if time.monotonic() > deadline:
                    self.cancelled.set()
        return False

    def finish(self, error: PodcapError | None = None) -> None:
        self.put(error if error is not None else _END)
        self.started.set()

    # -- the reader drains it --
    def chunks(self, node: str) -> Iterator[bytes]:
        """While nothing comes, ``b""`` every quarter second: a quiet live follow then holds
        no server thread between reads (api/live.py); readers skip empty chunks."""
        idle_since = time.monotonic()
        while True:
            try:
                item = self._chunks.get(timeout=limits.FOLLOW_POLL_S * 5)
            except queue.Empty:
                if time.monotonic() - idle_since > limits.UPLOAD_IDLE_S:
                    raise Unavailable(f"node {node} sent nothing for {limits.UPLOAD_IDLE_S:g} "
                                      "s during a download") from None
                yield b""
                continue
            idle_since = time.monotonic()
            if item is _END:
                return
            if isinstance(item, PodcapError):
                raise item
            assert isinstance(item, bytes)
            yield item

    def first_error(self) -> PodcapError | None:
        """An error the agent sent before any byte (e.g. the capture vanished)."""
        with self._chunks.mutex:
            head = self._chunks.queue[0] if self._chunks.queue else None
        return head if isinstance(head, PodcapError) else None


class Uploads:
    """Downloads the controller asked for and waits to receive, by id."""

    def __init__(self) -> None:
        self._open: dict[str, IncomingUpload] = {}
        self._lock = threading.Lock()

    def expect(self, agent_id: str) -> IncomingUpload:
        upload = IncomingUpload(agent_id)
        with self._lock:
            self._open[upload.id] = upload
        return upload

    def claim(self, upload_id: str, agent_id: str) -> IncomingUpload:
        """Only the agent that was asked may answer; each download is answered once."""
        with self._lock:
            upload = self._open.get(upload_id)
            if upload is None:
                raise NotFound(f"no download {upload_id[:40]!r} is expected")
            if upload.agent_id != agent_id:
                raise PermissionDenied(f"download {upload_id} was asked of another agent")
            del self._open[upload_id]
        return upload

    def forget(self, upload: IncomingUpload) -> None:
        with self._lock:
            self._open.pop(upload.id, None)


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

    # ---- the session's life (called by the gateway and the registry) ---------------------

    def attach(self, session: AgentSession, hello: pb.Hello) -> None:
        with self._lock:
            old, self._session = self._session, session
            self._info = dataclasses.replace(
                self._info, node=hello.node or self._info.node, version=hello.version,
                runtimes=tuple(hello.runtimes), started=hello.started, connected=True,
                disk_budget=hello.disk_budget, reclaim=hello.reclaim)
            self.last_seen = time.time()
        if old is not None:
            old.close()

    def detach(self, session: AgentSession, why: str) -> None:
        with self._lock:
            if self._session is not session:
                return
            self._session = None
            self._info = dataclasses.replace(self._info, connected=False)
        session.close()
        log.warning("agent %s on node %s disconnected: %s", self._info.id, self._info.node, why)

    def seen(self) -> None:
        self.last_seen = time.time()

    @property
    def session(self) -> AgentSession | None:
        return self._session

    # ---- AgentTransport --------------------------------------------------------------

    def info(self) -> AgentInfo:
        return dataclasses.replace(self._info, last_seen=self.last_seen)

    def list_workloads(self) -> list[Workload]:
        """Invalid entries are dropped (logged, counted); more than the cap is refused whole:
        no real node runs that many, and reading them all slowed every list."""
        reply = self._call(pb.Command(list_workloads=pb.Empty()), limits.FANOUT_DEADLINE_S)
        self._cap(rejects.WORKLOADS, len(reply.workloads.items), limits.AGENT_WORKLOADS_MAX)
        node = self._info.node
        return [dataclasses.replace(w, node=node) if w.node != node else w  # speaks for itself
                for w in self._valid(codec.workload_from_pb, reply.workloads.items, "workload")]

    def check_filter(self, expression: str) -> None:
        self._call(pb.Command(check_filter=expression), limits.COMMAND_TIMEOUT_S)

    def start(self, workload_id: str, spec: CaptureSpec, owner: str = "") -> Capture:
        command = pb.Command(start=pb.StartCapture(workload_id=workload_id,
                                                   spec=codec.spec_to_pb(spec), owner=owner))
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
        captures = self._valid(lambda m: self._own(codec.capture_from_pb(m)),
                               reply.captures.items, "capture")
        with self._lock:
            self._known = {c.id: c for c in captures}
        return captures

    def get_capture(self, capture_id: str) -> Capture:
        return self._remember(self._call(pb.Command(get_capture=capture_id),
                                         limits.FANOUT_DEADLINE_S))

    def known_captures(self) -> list[Capture]:
        with self._lock:
            return list(self._known.values())

    def document(self, capture_id: str, name: str, params: dict[str, str] | None = None,
                 ) -> dict[str, object]:
        command = pb.Command(document=pb.DocumentRequest(capture_id=capture_id, name=name,
                                                         params=params or {}))
        data = self._call(command, limits.COMMAND_TIMEOUT_S).document
        return self._one(codec.document_from_wire, data, "document")

    def stream_pcap(self, capture_id: str, request: PcapRequest = PcapRequest()) -> PcapStream:
        upload = self._uploads.expect(self._info.id)
        try:
            self._call(pb.Command(download=codec.download_to_pb(capture_id, request, upload.id)),
                       limits.COMMAND_TIMEOUT_S)
            if not upload.started.wait(limits.COMMAND_TIMEOUT_S):
                raise Unavailable(f"node {self._info.node} did not start the download within "
                                  f"{limits.COMMAND_TIMEOUT_S:g} s")
            error = upload.first_error()
            if error is not None:
                raise error
        except BaseException:
            upload.cancelled.set()
            self._uploads.forget(upload)
            raise
        return PcapStream(upload.chunks(self._info.node), upload.size,
                          on_close=upload.cancelled.set)

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
        try:
            reply = session.call(command, timeout)
        except Unavailable as exc:
            raise Unavailable(f"node {node}: {exc.message}") from None
        if reply.WhichOneof("result") == "error":
            raise from_wire(reply.error)
        return reply

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
