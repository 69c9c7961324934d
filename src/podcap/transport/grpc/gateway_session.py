"""The controller's end of an agent's Session, on the gateway's event loop (gateway_server.py).

A Session was served by a thread of a threaded gRPC server, with a reader thread beside it:
500 nodes held 1,000 threads, and each message (500 counters a second, heartbeats) woke two of
them, each taking the interpreter from the HTTP requests (bench figure 11's p99 and idle CPU).
Here every session is two coroutines of one event loop: a reader, which hands each message to
the agent's ``RemoteAgent`` (transport/grpc/remote.py) as the reader thread did, and a writer,
which sends what ``AgentSession`` was given from any thread (commands, resyncs) and ends the
stream when the session is closed.

The rules are those of the threaded server: the identity from the certificate, at most
``limits.AGENT_SESSIONS_MAX`` sessions per certificate, a Hello within
``limits.STREAM_FIRST_MESSAGE_S`` (else CANCELLED, counted), the registry's checks (run on a
thread: they read the database), and a detach however the stream ends.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import Counter
from typing import TYPE_CHECKING

import grpc

from podcap import limits
from podcap.errors import PodcapError, Unauthenticated
from podcap.pki.names import agent_id_of, fingerprint, node_of
from podcap.transport import rejects
from podcap.transport.grpc import codec
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.errors import abort_async
from podcap.transport.grpc.remote import RemoteAgent
from podcap.transport.grpc.session import AgentSession

if TYPE_CHECKING:
    from podcap.transport.grpc.gateway_needs import Members
    from podcap.transport.rejects import Rejects

log = logging.getLogger("podcap.controller.gateway")


class SessionServing:
    """The Session method of the gateway, and what it shares with Upload (gateway.py's
    ``Gateway`` is one): the identity, the streams each certificate holds."""

    registry: Members
    rejects: Rejects
    _streams: Counter[tuple[str, str]]  # open streams by (agent id, kind)
    _streams_lock: threading.Lock

    @staticmethod
    def _who(context: grpc.ServicerContext | grpc.aio.ServicerContext
             ) -> tuple[str, str, str]:
        """(agent id, certificate fingerprint, node name it was issued for) from the verified
        peer certificate."""
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            raise Unauthenticated("a client certificate is required here (join first)")
        return agent_id_of(pems[0]), fingerprint(pems[0]), node_of(pems[0])

    def _take(self, agent_id: str, kind: str, cap: int) -> bool:
        key = (agent_id, kind)
        with self._streams_lock:
            over = self._streams[key] >= cap
            if not over:
                self._streams[key] += 1
        if over:
            self.rejects.stream(agent_id, kind, f"{cap} {kind} open already "
                                f"(limits.AGENT_{kind.upper()}_MAX)")
        return not over

    def _give_back(self, agent_id: str, kind: str) -> None:
        key = (agent_id, kind)
        with self._streams_lock:
            self._streams[key] -= 1
            if self._streams[key] <= 0:
                del self._streams[key]

    @staticmethod
    def _over(kind: str, cap: int) -> str:
        return f"this agent has {cap} {kind} open already; at most {cap}"

    async def Session(self, request_iterator: object, context: grpc.aio.ServicerContext
                      ) -> None:
        try:
            agent_id, cert_fp, cert_node = self._who(context)
        except PodcapError as exc:
            await abort_async(context, exc)
        if not self._take(agent_id, "sessions", limits.AGENT_SESSIONS_MAX):
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._over(
                "sessions", limits.AGENT_SESSIONS_MAX))
        try:
            await self._session(context, agent_id, cert_fp, cert_node)
        finally:
            self._give_back(agent_id, "sessions")

    async def _session(self, context: grpc.aio.ServicerContext, agent_id: str, cert_fp: str,
                       cert_node: str) -> None:
        first = await self._first_async(context, agent_id, "its Hello")
        if first is None:
            return
        if first.WhichOneof("msg") != "hello":
            log.warning("agent %s: session must begin with hello, got %s", agent_id,
                        first.WhichOneof("msg"))
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a session begins with Hello")
        loop = asyncio.get_running_loop()
        wake = asyncio.Event()

        def woken() -> None:  # from any thread
            loop.call_soon_threadsafe(wake.set)

        session = AgentSession(cancel=lambda: None, wake=woken)
        try:
            hello = codec.hello_from_pb(first.hello)
            attached = loop.run_in_executor(None, self.registry.attach, agent_id, cert_fp,
                                            cert_node, hello, session)  # the database
            remote = await asyncio.shield(attached)
        except PodcapError as exc:
            log.warning("agent %s refused: %s", agent_id, exc.message)
            await abort_async(context, exc)
        except asyncio.CancelledError:  # gone while the registry looked: no session is left
            attached.add_done_callback(lambda done: _detach(done, session))
            raise
        reader = asyncio.create_task(self._read(session, remote, context, agent_id))
        why = "stream broke (CANCELLED)"
        try:
            await context.write(pb.ControllerMessage(welcome=pb.Welcome(agent_id=agent_id)))
            while True:
                wake.clear()
                try:
                    message = session.outbox.get_nowait()
                except queue.Empty:
                    await wake.wait()
                    continue
                if message is None:
                    why = "closed by the controller"
                    break
                await context.write(message)
        finally:
            reader.cancel()
            remote.detach(session, why)
        context.set_code(grpc.StatusCode.CANCELLED)  # as a closed session ended before
        context.set_details(f"the controller closed this session ({why})")

    async def _read(self, session: AgentSession, remote: RemoteAgent,
                    context: grpc.aio.ServicerContext, agent_id: str) -> None:
        node = remote.info().node
        try:
            while True:
                message = await context.read()
                if message is grpc.aio.EOF:
                    break
                remote.seen()
                kind = message.WhichOneof("msg")
                if kind == "reply":  # stray ones are counted; logged at a bounded rate
                    if not session.on_reply(message.reply):
                        self.rejects.drop(agent_id, node, rejects.INVALID,
                                          f"reply {message.reply.seq} answers no open command")
                elif kind == "inventory":
                    remote.on_inventory(session, message.inventory)
                elif kind == "heartbeat":
                    remote.on_heartbeat(session, message.heartbeat)
                else:
                    self.rejects.drop(agent_id, node, rejects.INVALID,
                                      f"unexpected {kind} in a session; ignored")
            why = "the agent ended its session (or its stream broke)"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a malformed message must never take the controller
            why = f"bad message: {exc}"
            log.exception("node %s: session reader failed", node)
        remote.detach(session, why)

    async def _first_async(self, context: grpc.aio.ServicerContext, agent_id: str,
                           what: str) -> pb.AgentMessage | None:
        """``_first`` on the event loop: a silent stream is ended as CANCELLED, as before."""
        try:
            first = await asyncio.wait_for(context.read(), limits.STREAM_FIRST_MESSAGE_S)
        except TimeoutError:
            self.rejects.stream(agent_id, rejects.NO_FIRST_MESSAGE,
                                f"sent no message within {limits.STREAM_FIRST_MESSAGE_S:g} s "
                                f"(expected {what})")
            await context.abort(grpc.StatusCode.CANCELLED, "no message in time")
        return None if first is grpc.aio.EOF else first


def _detach(attached: asyncio.Future[RemoteAgent], session: AgentSession) -> None:
    if not attached.cancelled() and attached.exception() is None:
        attached.result().detach(session, "stream broke while it was attached")
