"""The controller's end of one agent's open Session.

A command is a ``Command`` with a sequence number put on the session's stream; the caller waits
for the ``Reply`` with the same number, at most a deadline. A download is a ``Download`` command
whose bytes the agent brings on the data port (``transport/data/``).
"""

from __future__ import annotations

import itertools
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from podcap.errors import Unavailable
from podcap.transport.grpc.agent_proto import agent_pb2 as pb


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
