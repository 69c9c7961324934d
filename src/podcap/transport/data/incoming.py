"""The controller's downloads in flight: one-time tickets, and each download's connection.

A ``Download`` command names a fresh ticket (``download_id``: 128 random bits) issued to one
agent; the agent presents it on a data connection of its own (``listener.py``), once, within
``limits.COMMAND_TIMEOUT_S``, with a certificate of that same agent. Its frames (``wire.py``)
are then read by whoever reads the download: on the event loop (``achunks``: the HTTP
response awaits each chunk where it runs) or from a thread (``chunks``: a group's merge, a
paced follow), which borrows the loop for each read. Nothing is queued: a slow reader leaves
the bytes in the socket, and TCP slows the agent.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from podcap import limits
from podcap.errors import NotFound, PermissionDenied, Unavailable
from podcap.transport.data import wire
from podcap.transport.data.conn import AsyncTLS, Closed, Idle

log = logging.getLogger("podcap.controller.data")


class IncomingUpload:
    """One download the controller asked an agent for: issued, then attached to its
    connection by the listener, then read."""

    def __init__(self, agent_id: str, ttl_s: float) -> None:
        self.agent_id = agent_id
        self.id = secrets.token_hex(16)
        self.expires = time.monotonic() + ttl_s
        self.size: int | None = None
        self.started = threading.Event()
        self._conn: AsyncTLS | None = None
        self._release: Callable[[], None] | None = None
        self._lock = threading.Lock()
        self._cancelled = False
        self._ended = False  # the agent's END or ERROR came: nothing was cut off

    def attach(self, conn: AsyncTLS, size: int | None, release: Callable[[], None]) -> bool:
        """On the loop; False when the reader has gone already."""
        with self._lock:
            if self._cancelled:
                return False
            self._conn, self.size, self._release = conn, size, release
        self.started.set()
        return True

    def cancel(self) -> None:
        """The reader is done (any thread, twice is fine): the connection closes, which ends
        the agent's read."""
        with self._lock:
            self._cancelled = True
            conn, self._conn = self._conn, None
            release, self._release = self._release, None
        if conn is not None:
            if not self._ended:
                log.info("agent %s: download %s cancelled by its reader", self.agent_id,
                         self.id)
            conn.close_soon()
        if release is not None:
            release()

    async def achunks(self, node: str) -> AsyncIterator[bytes]:
        """The download's bytes, one frame's worth at a time (a ``memoryview`` of the buffer
        the frame was read into: no copy on the way to the response)."""
        conn = self._conn
        if conn is None:
            raise Unavailable(f"node {node}: the download is closed")
        idle = limits.UPLOAD_IDLE_S
        try:
            while True:
                kind, n = wire.FRAME.unpack(await conn.read_exactly(wire.FRAME.size, idle))
                if kind == wire.DATA and n <= limits.UPLOAD_CHUNK_BYTES:
                    if n:  # an empty frame: a quiet follow stream's keepalive
                        # A bytes-like view: Starlette, h11 and the audit's count take it as
                        # it is; ``bytes()`` of it would copy every megabyte once more.
                        yield memoryview(await conn.read_exactly(n, idle))  # type: ignore[misc]
                elif kind == wire.END and n == 0:
                    self._ended = True
                    return
                elif kind == wire.ERROR and n <= wire.ERROR_MAX_BYTES:
                    payload = await conn.read_exactly(n, idle)
                    self._ended = True
                    raise wire.error_from(bytes(payload))
                else:
                    raise Unavailable(f"node {node} sent an invalid frame ({kind!r}, {n} "
                                      "bytes) in a download")
        except Closed:
            self._ended = True
            raise Unavailable(f"node {node}: the download broke off") from None
        except Idle:
            self._ended = True
            raise Unavailable(f"node {node} sent nothing for {idle:g} s during a "
                              "download") from None
        finally:
            self.cancel()

    def chunks(self, node: str) -> Iterator[bytes]:
        """``achunks`` for a reader on a thread. While nothing comes, ``b""`` every quarter
        second: a quiet live follow then holds no server thread between reads (api/live.py);
        readers skip empty chunks."""
        conn = self._conn
        if conn is None:
            raise Unavailable(f"node {node}: the download is closed")
        source = self.achunks(node)
        pending: Future[bytes] | None = None
        try:
            while True:
                if pending is None:
                    pending = asyncio.run_coroutine_threadsafe(_next(source), conn.loop)
                try:
                    chunk = pending.result(limits.FOLLOW_POLL_S * 5)
                except FutureTimeout:
                    yield b""
                    continue
                except StopAsyncIteration:
                    return
                pending = None
                yield bytes(chunk)
        finally:
            if pending is not None:
                pending.cancel()
            self.cancel()


async def _next(source: AsyncIterator[bytes]) -> bytes:
    return await source.__anext__()


class Uploads:
    """The tickets issued and not yet presented, by id; ``port``: where agents present them
    (the data listener's, 0 until it listens)."""

    def __init__(self, ttl_s: float = limits.COMMAND_TIMEOUT_S) -> None:
        self._open: dict[str, IncomingUpload] = {}
        self._lock = threading.Lock()
        self.ttl_s = ttl_s
        self.port = 0

    def expect(self, agent_id: str) -> IncomingUpload:
        upload = IncomingUpload(agent_id, self.ttl_s)
        with self._lock:
            now = time.monotonic()
            for gone in [u for u in self._open.values() if u.expires < now]:
                del self._open[gone.id]
            self._open[upload.id] = upload
        return upload

    def claim(self, upload_id: str, agent_id: str) -> IncomingUpload:
        """Only the agent that was asked may answer, once, in time."""
        with self._lock:
            upload = self._open.get(upload_id)
            if upload is None:
                raise NotFound(f"no download {upload_id[:40]!r} is expected")
            if upload.agent_id != agent_id:
                raise PermissionDenied(f"download {upload_id} was asked of another agent")
            del self._open[upload_id]
        if upload.expires < time.monotonic():
            raise NotFound(f"download {upload_id} expired before the agent came")
        return upload

    def forget(self, upload: IncomingUpload) -> None:
        with self._lock:
            self._open.pop(upload.id, None)
