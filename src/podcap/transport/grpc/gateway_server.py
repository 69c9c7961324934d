"""The gateway's listeners (gateway.py) on one gRPC asyncio server, in a thread of its own.

Sessions are coroutines of its event loop (gateway_session.py): at 500 nodes the threaded
server held 1,000 threads, and every message woke two of them (bench figure 11). Join is
written for a thread (it signs a certificate and writes the database): each call runs on a
pool thread, given the servicer context it was written for (``ThreadedCall``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any, TypeVar

import grpc

from podcap import limits
from podcap.errors import InvalidArgument
from podcap.pki.listener import server_pair
from podcap.transport.grpc.agent_proto import agent_pb2_grpc as pb_grpc
from podcap.transport.grpc.gateway import Gateway

T = TypeVar("T")

log = logging.getLogger("podcap.controller.gateway")

SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", limits.GRPC_MESSAGE_MAX_BYTES),
    ("grpc.max_send_message_length", limits.GRPC_MESSAGE_MAX_BYTES),
    # Agents ping every few seconds to find a dead link; allow it without strikes.
    ("grpc.keepalive_time_ms", 5000),
    ("grpc.keepalive_timeout_ms", 5000),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.keepalive_permit_without_calls", 1),
]


class ThreadedCall:
    """A unary call of the asyncio server as a handler written for a thread sees it: its peer,
    its trailers, and an abort that raises what grpc expects back."""

    def __init__(self, context: grpc.aio.ServicerContext, loop: asyncio.AbstractEventLoop
                 ) -> None:
        self._context, self._loop = context, loop

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        asyncio.run_coroutine_threadsafe(self._context.abort(code, details), self._loop).result()
        raise AssertionError("unreachable: abort raises")

    def peer(self) -> str:
        return self._context.peer()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._context.set_trailing_metadata(metadata)


def threaded(method: Callable[[Any, Any], T], pool: ThreadPoolExecutor
             ) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[T]]:
    """``method(request, context)`` run on ``pool`` for the asyncio server."""
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, method, request, ThreadedCall(context, loop))
    return handler


class GatewayServer:
    """The agent port (and the join port) served by one event loop thread."""

    def __init__(self, gateway: Gateway, agent_listen: str, join_listen: str | None) -> None:
        self._pool = ThreadPoolExecutor(limits.GRPC_WORKERS, thread_name_prefix="podcap-grpc")
        self._loop = asyncio.new_event_loop()
        self._loop.set_default_executor(self._pool)  # what a session does that blocks
        self._thread = threading.Thread(target=self._loop.run_forever, name="podcap-gateway",
                                        daemon=True)
        self._thread.start()
        try:
            self.agent_port = self._run(self._start(gateway, agent_listen, join_listen))
        except BaseException:
            self._end()
            raise

    def _run(self, coro: Awaitable[T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()  # type: ignore[arg-type]

    async def _start(self, gateway: Gateway, agent_listen: str, join_listen: str | None
                     ) -> int:
        self._server = grpc.aio.server(options=SERVER_OPTIONS)
        pb_grpc.add_AgentGatewayServicer_to_server(SimpleNamespace(  # type: ignore[arg-type]
            Join=threaded(gateway.Join, self._pool), Session=gateway.Session), self._server)
        key, cert = server_pair(gateway.ca)
        mtls = grpc.ssl_server_credentials([(key, cert)], root_certificates=gateway.ca.cert_pem,
                                           require_client_auth=True)
        port = self._server.add_secure_port(agent_listen, mtls)
        if port == 0:
            raise InvalidArgument(f"cannot listen for agents on {agent_listen}")
        if join_listen:
            ca_key, ca_cert = gateway.ca.join_pair()
            if self._server.add_secure_port(join_listen, grpc.ssl_server_credentials(
                    [(ca_key, ca_cert)])) == 0:
                raise InvalidArgument(f"cannot listen for joins on {join_listen}")
        await self._server.start()
        return port

    def stop(self, grace: float | None) -> None:
        """Open calls get ``grace`` seconds, then are cancelled."""
        with contextlib.suppress(Exception):
            self._run(self._server.stop(grace))
        self._end()

    def _end(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)


def start_gateway(gateway: Gateway, agent_listen: str, join_listen: str | None
                  ) -> GatewayServer:
    """Both listeners on one gRPC server; join_listen None means no new agents may join."""
    server = GatewayServer(gateway, agent_listen, join_listen)
    log.info("listening for agents on %s (mutual TLS)%s", agent_listen,
             f", joins on {join_listen}" if join_listen else "")
    return server
