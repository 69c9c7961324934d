"""A tiny DNS responder (UDP 53) and TLS sink (TCP 443) for the insight tests.

Run inside a container's network namespace (``nsenter --net=/proc/PID/ns/net python3
responder.py``) so a busybox client gets answers to ``nslookup`` and can send a real TLS
ClientHello (busybox wget https) that podcap then finds in the capture. Answers every A query
with 10.99.99.99 and every other type with no records; the TLS side reads and closes.
"""

from __future__ import annotations

import socket
import struct
import threading


def dns() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", 53))
    while True:
        query, peer = sock.recvfrom(2048)
        if len(query) < 12:
            continue
        end = 12
        while end < len(query) and query[end]:
            end += query[end] + 1
        question = query[12:end + 5]
        qtype = struct.unpack(">H", query[end + 1:end + 3])[0] if end + 3 <= len(query) else 0
        answers = b""
        if qtype == 1:
            answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([10, 99, 99, 99])
        header = query[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1 if answers else 0, 0, 0)
        sock.sendto(header + question + answers, peer)


def tls() -> None:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 443))
    server.listen(16)
    while True:
        conn, _ = server.accept()
        conn.settimeout(2)
        try:
            conn.recv(65536)
        except OSError:
            pass
        conn.close()


if __name__ == "__main__":
    threading.Thread(target=tls, daemon=True).start()
    print("ready", flush=True)
    dns()
