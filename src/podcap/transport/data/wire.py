"""What crosses the data channel, and the TLS both ends require.

After the TLS handshake (TLS 1.3, the agent's certificate from the cluster CA, the controller's
listener leaf for ``CONTROLLER_NAME``) the agent sends one header, ``HEADER`` (magic, version,
the download's one-time ticket, the size or -1), then frames: a kind byte and a 4-byte length,
then that many bytes. ``DATA`` carries pcap bytes (at most ``limits.UPLOAD_CHUNK_BYTES``; an
empty one is a follow stream's keepalive), ``END`` ends the download, ``ERROR`` ends it with
the agent's error (``{"kind", "message"}``, as a command's reply carries one). The controller
sends nothing: when the reader goes away it closes the connection, which ends the agent's read.
"""

from __future__ import annotations

import json
import os
import ssl
import struct
import tempfile
from pathlib import Path

from podcap import errors

MAGIC = b"PCDC"
VERSION = 1
TICKET_CHARS = 32  # secrets.token_hex(16)
HEADER = struct.Struct(f">4sB{TICKET_CHARS}sq")
FRAME = struct.Struct(">cI")
DATA, END, ERROR = b"D", b"E", b"X"
ERROR_MAX_BYTES = 64 * 1024


def header(ticket: str, size: int | None) -> bytes:
    return HEADER.pack(MAGIC, VERSION, ticket.encode("ascii"), -1 if size is None else size)


def parse_header(raw: bytes) -> tuple[str, int | None]:
    """(ticket, size); InvalidArgument for anything else."""
    magic, version, ticket, size = HEADER.unpack(raw)
    if magic != MAGIC or version != VERSION:
        raise errors.InvalidArgument("not a podcap data channel header")
    try:
        text = ticket.decode("ascii")
    except UnicodeDecodeError:
        raise errors.InvalidArgument("a ticket is 32 hex characters") from None
    if size < -1:
        raise errors.InvalidArgument(f"download size {size} is neither -1 nor a size")
    return text, None if size < 0 else size


def error_payload(exc: errors.PodcapError) -> bytes:
    body = {"kind": errors.tree_class(exc).__name__, "message": exc.message}
    return json.dumps(body).encode()[:ERROR_MAX_BYTES]


def error_from(payload: bytes) -> errors.PodcapError:
    """The agent's error as the tree's; an unreadable or unknown one is still an error."""
    try:
        body = json.loads(payload)
        kind, message = str(body["kind"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        return errors.Unavailable("the agent ended the download with an unreadable error")
    return errors.KINDS.get(kind, errors.PodcapError)(message)


def _context(protocol: int, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> ssl.SSLContext:
    """ssl loads a key pair from files only: written for the call into a private directory."""
    ctx = ssl.SSLContext(protocol)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem.decode())
    with tempfile.TemporaryDirectory(prefix="podcap-tls-") as tmp:
        key, cert = Path(tmp) / "key.pem", Path(tmp) / "cert.pem"
        fd = os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key_pem)
        cert.write_bytes(cert_pem)
        ctx.load_cert_chain(cert, key)
    return ctx


def server_context(key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> ssl.SSLContext:
    """Mutual TLS against the cluster CA. No session tickets: the controller then sends
    nothing after the handshake, and an agent that closes leaves no unread bytes (which would
    make its close a reset that drops what the controller has not read yet)."""
    ctx = _context(ssl.PROTOCOL_TLS_SERVER, key_pem, cert_pem, ca_pem)
    ctx.num_tickets = 0
    return ctx


def client_context(key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> ssl.SSLContext:
    return _context(ssl.PROTOCOL_TLS_CLIENT, key_pem, cert_pem, ca_pem)
