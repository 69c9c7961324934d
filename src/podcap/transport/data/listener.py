"""The controller's data port: where agents bring the bytes of the downloads it asked for.

It runs on the HTTP server's event loop (started by the app's lifespan), so a download's
bytes go from this socket to the HTTP response with no thread in between. What it accepts is
today's guarantee of the agent port: mutual TLS against the cluster CA, the agent id from the
verified certificate (``pki/names.py``), a ticket that was issued to that agent, once and in
time. Everything else is refused, counted in ``podcap_agent_streams_refused_total`` (reason
``unauthenticated``, ``bad_header``, ``bad_ticket``, ``no_first_message`` or ``uploads``) and
logged at a bounded rate (``transport/rejects.py``), and no byte of it reaches a reader.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import struct
import threading
from collections import Counter
from collections.abc import Coroutine
from typing import Any

from podcap import limits
from podcap.errors import InvalidArgument, NotFound, PermissionDenied, PodcapError
from podcap.pki.ca import ClusterCA
from podcap.pki.listener import server_pair
from podcap.pki.names import agent_id_of
from podcap.transport import rejects
from podcap.transport.data import wire
from podcap.transport.data.conn import AsyncTLS, Closed, Idle
from podcap.transport.data.incoming import Uploads
from podcap.transport.rejects import Rejects

log = logging.getLogger("podcap.controller.data")


class DataListener:
    """Bound at construction (a port in use fails the start, and ``uploads.port`` is known
    before any agent is asked); accepting from ``start()``, on the running loop."""

    def __init__(self, uploads: Uploads, rejects_: Rejects, ca: ClusterCA, listen: str) -> None:
        self.uploads = uploads
        self.rejects = rejects_
        key, cert = server_pair(ca)
        self.ctx = wire.server_context(key, cert, ca.cert_pem)
        host, _, port = listen.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            self.sock = socket.create_server((host, int(port)), family=family, backlog=128)
        except (OSError, ValueError) as exc:
            raise InvalidArgument(f"cannot listen for agents' data on {listen}: {exc}") from exc
        self.sock.setblocking(False)
        uploads.port = self.sock.getsockname()[1]
        self.address = listen
        self._open: Counter[str] = Counter()  # data connections per agent
        self._lock = threading.Lock()
        self._handshaking = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._spawn(loop, self._serve(loop))
        log.info("listening for agents' data on %s (mutual TLS)", self.address)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.sock.close()

    def open_connections(self, agent_id: str) -> int:
        with self._lock:
            return self._open[agent_id]

    def _spawn(self, loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]) -> None:
        task = loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                raw, peer = await loop.sock_accept(self.sock)
            except OSError as exc:
                log.warning("data port: accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if self._handshaking >= limits.DATA_HANDSHAKES_MAX:
                raw.close()
                self._refuse("", rejects.UNAUTHENTICATED, f"{peer}: {self._handshaking} "
                             "handshakes in progress already (limits.DATA_HANDSHAKES_MAX)")
                continue
            self._spawn(loop, self._one(raw, str(peer[0])))

    async def _one(self, raw: socket.socket, peer: str) -> None:
        self._handshaking += 1
        try:
            await self._admit(raw, peer)
        finally:
            self._handshaking -= 1

    async def _admit(self, raw: socket.socket, peer: str) -> None:
        try:
            conn = await AsyncTLS.accept(raw, self.ctx, limits.STREAM_FIRST_MESSAGE_S)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            self._refuse("", rejects.UNAUTHENTICATED, f"peer {peer}: no TLS with a cluster "
                         f"certificate: {type(exc).__name__}: {exc}"[:300])
            return
        try:
            agent_id = agent_id_of(conn.peer_certificate())
        except PodcapError as exc:
            conn.close()
            self._refuse("", rejects.UNAUTHENTICATED, f"peer {peer}: {exc.message}")
            return
        try:
            raw_header = await conn.read_exactly(wire.HEADER.size,
                                                 limits.STREAM_FIRST_MESSAGE_S)
            ticket, size = wire.parse_header(bytes(raw_header))
            upload = self.uploads.claim(ticket, agent_id)
        except (Closed, Idle) as exc:
            conn.close()
            self._refuse(agent_id, rejects.NO_FIRST_MESSAGE, f"no download header within "
                         f"{limits.STREAM_FIRST_MESSAGE_S:g} s: {exc}")
            return
        except (InvalidArgument, struct.error) as exc:
            conn.close()
            self._refuse(agent_id, rejects.BAD_HEADER, f"peer {peer}: {exc}")
            return
        except (NotFound, PermissionDenied) as exc:
            conn.close()
            self._refuse(agent_id, rejects.BAD_TICKET, exc.message)
            return
        with self._lock:
            over = self._open[agent_id] >= limits.AGENT_UPLOADS_MAX
            if not over:
                self._open[agent_id] += 1
        if over:
            conn.close()
            upload.cancel()
            self._refuse(agent_id, rejects.UPLOADS, f"{limits.AGENT_UPLOADS_MAX} downloads "
                         "open already (limits.AGENT_UPLOADS_MAX)")
            return
        released = threading.Event()

        def release() -> None:
            if not released.is_set():
                released.set()
                with self._lock:
                    self._open[agent_id] -= 1
                    if self._open[agent_id] <= 0:
                        del self._open[agent_id]

        if not upload.attach(conn, size, release):
            conn.close()
            release()

    def _refuse(self, agent_id: str, why: str, detail: str) -> None:
        self.rejects.stream(agent_id, why, detail)
