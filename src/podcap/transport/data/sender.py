"""The agent's end of the data channel: one connection per download the controller asked for.

A thread of the uplink's upload pool dials the controller's data port (the host of its
session, the port the ``Download`` command names), presents the ticket and sends the stream's
blocks as frames (``wire.py``). A block over ``UPLOAD_CHUNK_BYTES`` goes as several frames of
views into it, never copied. When the controller closes the connection (its reader went
away), the next send fails and the stream is closed, which ends the agent's read.
"""

from __future__ import annotations

import logging
import socket
import ssl
import time

from podcap import limits
from podcap.errors import PodcapError
from podcap.pki.names import CONTROLLER_NAME
from podcap.streams import PcapStream
from podcap.transport.data import wire

log = logging.getLogger("podcap.agent.data")

_KEEPALIVE = wire.FRAME.pack(wire.DATA, 0)
_END = wire.FRAME.pack(wire.END, 0)


def send(ctx: ssl.SSLContext, host: str, port: int, ticket: str, stream: PcapStream,
         timeout: float = limits.UPLOAD_IDLE_S) -> None:
    """Sends ``stream`` as the download ``ticket`` names; closes the stream however it ends."""
    try:
        with socket.create_connection((host, port), timeout=limits.COMMAND_TIMEOUT_S) as raw, \
                ctx.wrap_socket(raw, server_hostname=CONTROLLER_NAME) as tls:
            tls.settimeout(timeout)  # a controller that stops reading fails the send
            tls.sendall(wire.header(ticket, stream.size))
            _frames(tls, stream)
    except (OSError, ssl.SSLError) as exc:
        log.info("download %s ended early: %s", ticket, exc)
    finally:
        stream.close()


def _frames(tls: ssl.SSLSocket, stream: PcapStream) -> None:
    try:
        sent = time.monotonic()
        for block in stream:  # read in chunk-sized blocks: cut only when over
            if not block:  # a quiet follow stream (pcap/follow.py): a keepalive now and then
                if time.monotonic() - sent >= limits.FOLLOW_KEEPALIVE_S:
                    sent = time.monotonic()
                    tls.sendall(_KEEPALIVE)
                continue
            sent = time.monotonic()
            view = memoryview(block)
            for at in range(0, len(view), limits.UPLOAD_CHUNK_BYTES):
                part = view[at:at + limits.UPLOAD_CHUNK_BYTES]
                tls.sendall(wire.FRAME.pack(wire.DATA, len(part)))
                tls.sendall(part)
    except PodcapError as exc:
        payload = wire.error_payload(exc)
        tls.sendall(wire.FRAME.pack(wire.ERROR, len(payload)) + payload)
        return
    tls.sendall(_END)
