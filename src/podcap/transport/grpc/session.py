"""The controller's end of one agent's open streams: its Session, and its downloads.

A command is a ``Command`` with a sequence number put on the session's stream; the caller waits
for the ``Reply`` with the same number, at most a deadline. A download is a ``Download`` command
that the agent answers by opening an ``Upload`` call of its own; its chunks reach the reader
through a small bounded queue, so a slow reader slows the agent (HTTP/2 flow control) and a
reader that goes away ends the agent's read.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from podcap import limits
from podcap.errors import NotFound, PermissionDenied, PodcapError, Unavailable
from podcap.transport.grpc.agent_proto import agent_pb2 as pb

_END = object()


class AgentSession:
    """One open Session stream: what the controller sends, and the replies it waits for."""

    def __init__(self, cancel: Callable[[], None], wake: Callable[[], None] = lambda: None
                 ) -> None:
        self.outbox: queue.Queue[pb.ControllerMessage | None] = queue.Queue()
        self._cancel = cancel
        self._wake = wake  # tells the stream's writer (on the gateway's event loop) to look
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
        self.send(pb.ControllerMessage(command=command))
        try:
            return future.result(timeout)
        except FutureTimeout:
            raise Unavailable(f"no answer within {timeout:g} s") from None
        finally:
            with self._lock:
                self._pending.pop(command.seq, None)

    def send(self, message: pb.ControllerMessage | None) -> None:
        """From any thread; None ends the stream."""
        self.outbox.put(message)
        self._wake()

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
        self.send(None)
        self._cancel()


class IncomingUpload:
    """One download on its way from an agent: the header's size, then chunks, then the end.

    The gateway's Upload thread puts; the reader takes, either from a thread (``chunks``) or
    on the event loop (``achunks``: an HTTP response awaits each chunk where it runs, with no
    worker-thread round trip per chunk; issue 23, figure 6). At most
    ``limits.UPLOAD_QUEUE_CHUNKS`` wait here: a slow reader slows the agent."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.id = secrets.token_hex(16)
        self.size: int | None = None
        self.started = threading.Event()
        self.cancelled = threading.Event()
        self._items: collections.deque[object] = collections.deque()
        self._cond = threading.Condition()
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Future[None]] | None = None

    # -- the gateway's Upload handler feeds it --
    def begin(self, size: int) -> None:
        self.size = None if size < 0 else size
        self.started.set()

    def put(self, item: object) -> bool:
        """Blocks while the reader is behind; False once the reader is gone."""
        deadline = time.monotonic() + limits.UPLOAD_IDLE_S
        with self._cond:
            while len(self._items) >= limits.UPLOAD_QUEUE_CHUNKS:
                if self.cancelled.is_set():
                    return False
                if not self._cond.wait(0.2) and time.monotonic() > deadline:
                    self.cancelled.set()
            if self.cancelled.is_set():
                return False
            self._items.append(item)
            self._cond.notify_all()
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            loop, future = waiter
            loop.call_soon_threadsafe(_wake, future)
        return True

    def finish(self, error: PodcapError | None = None) -> None:
        self.put(error if error is not None else _END)
        self.started.set()

    # -- the reader drains it --
    def chunks(self, node: str) -> Iterator[bytes]:
        """While nothing comes, ``b""`` every quarter second: a quiet live follow then holds
        no server thread between reads (api/live.py); readers skip empty chunks."""
        idle_since = time.monotonic()
        while True:
            with self._cond:
                if not self._items:
                    self._cond.wait(limits.FOLLOW_POLL_S * 5)
                item = self._take()
            if item is _NOTHING:
                _idle(node, idle_since)
                yield b""
                continue
            idle_since = time.monotonic()
            if item is _END:
                return
            yield _chunk(item)

    async def achunks(self, node: str) -> AsyncIterator[bytes]:
        """``chunks`` read on the event loop: it waits for the gateway's thread to wake it."""
        loop = asyncio.get_running_loop()
        idle_since = time.monotonic()
        while True:
            future: asyncio.Future[None] = loop.create_future()
            with self._cond:
                item = self._take()
                if item is _NOTHING:
                    self._waiter = (loop, future)
            if item is _NOTHING:
                try:
                    await asyncio.wait_for(future, limits.FOLLOW_POLL_S * 5)
                except TimeoutError:
                    with self._cond:
                        self._waiter = None
                    _idle(node, idle_since)
                    yield b""
                continue
            idle_since = time.monotonic()
            if item is _END:
                return
            yield _chunk(item)

    def _take(self) -> object:
        """The next item, or ``_NOTHING``; the caller holds ``_cond``."""
        if not self._items:
            return _NOTHING
        item = self._items.popleft()
        self._cond.notify_all()
        return item

    def first_error(self) -> PodcapError | None:
        """An error the agent sent before any byte (e.g. the capture vanished)."""
        with self._cond:
            head = self._items[0] if self._items else None
        return head if isinstance(head, PodcapError) else None


_NOTHING = object()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _idle(node: str, since: float) -> None:
    if time.monotonic() - since > limits.UPLOAD_IDLE_S:
        raise Unavailable(f"node {node} sent nothing for {limits.UPLOAD_IDLE_S:g} s during a "
                          "download")


def _chunk(item: object) -> bytes:
    if isinstance(item, PodcapError):
        raise item
    assert isinstance(item, bytes)
    return item


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
