"""The controller's end of one agent's open streams: its Session, and its downloads.

A command is a ``Command`` with a sequence number put on the session's stream; the caller waits
for the ``Reply`` with the same number, at most a deadline. A download is a ``Download`` command
that the agent answers by opening an ``Upload`` call of its own; its chunks reach the reader
through a small bounded queue, so a slow reader slows the agent (HTTP/2 flow control) and a
reader that goes away ends the agent's read.
"""

from __future__ import annotations

import itertools
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from podcap import limits
from podcap.errors import NotFound, PermissionDenied, PodcapError, Unavailable
from podcap.transport.grpc.agent_proto import agent_pb2 as pb

_END = object()


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
