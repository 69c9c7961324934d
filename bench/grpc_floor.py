"""The floor under figure 6's remote download: the same bytes over a bare stream on this machine.

Issue 23 asks whether gRPC-Python's per-message cost is the floor of a remote download. This
sends ``--bytes`` (default 1 GiB, a page-cached file of random bytes) from a client process to
a server process that only counts them, with podcap's own certificates and options, in
``--chunk``-byte blocks, over:

- ``grpc-bytes``: a gRPC client stream of raw bytes (no protobuf; mutual TLS, the gateway's
  and the agent's channel options) served by a bare handler: the gRPC floor. (podcap's own
  ``Upload`` call, ``PcapChunk`` messages, measured 623 MB/s here, is gone: downloads use the
  data port, ``transport/data/``, since issue 23);
- ``tls``: one mutually-authenticated TLS socket (Python's ``ssl``, the same certificates),
  the server ``recv_into`` one buffer — what a separate data channel would cost;
- ``tcp``: the same socket without TLS — the kernel's own floor.

For each: wall seconds, MB/s, and CPU seconds per GB of the sender and the receiver (utime +
stime of each process). Run: ``.venv/bin/python -m bench.grpc_floor [--modes grpc,tls]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc

from podcap import limits
from podcap.pki.ca import ClusterCA
from podcap.pki.csr import new_key_and_csr
from podcap.pki.listener import server_pair
from podcap.pki.names import CONTROLLER_NAME
from podcap.transport.grpc.gateway_server import SERVER_OPTIONS
from podcap.transport.grpc.join import CLIENT_OPTIONS

MODES = ("grpc-bytes", "tls", "tcp")
_TICK = os.sysconf("SC_CLK_TCK")
_RAW = "/podcap.bench.Floor/Upload"


def cpu_seconds(pid: int | str = "self") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def pki(d: Path) -> dict[str, bytes]:
    ca = ClusterCA.load_or_create(d / "ca")
    skey, scert = server_pair(ca)
    akey, csr = new_key_and_csr("floor-node")
    return {"ca": ca.cert_pem, "server_key": skey, "server_cert": scert, "agent_key": akey,
            "agent_cert": ca.sign_agent(csr, "f100f100f100f100", "floor-node")}


# ---- the receiving side (a process of its own) ------------------------------------------


def _raw_upload(request_iterator: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    n = sum(len(m) for m in request_iterator)
    print(json.dumps({"received": n}), flush=True)
    return b""


def serve(mode: str, d: Path) -> None:
    keys = {p.stem: p.read_bytes() for p in d.glob("*.pem")}
    if mode.startswith("grpc"):
        server = grpc.server(futures.ThreadPoolExecutor(8), options=SERVER_OPTIONS)
        server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
            "podcap.bench.Floor", {"Upload": grpc.stream_unary_rpc_method_handler(
                _raw_upload)})])
        creds = grpc.ssl_server_credentials([(keys["server_key"], keys["server_cert"])],
                                            root_certificates=keys["ca"],
                                            require_client_auth=True)
        port = server.add_secure_port("127.0.0.1:0", creds)
        server.start()
        print(json.dumps({"port": port}), flush=True)
        server.wait_for_termination()
        return
    listener = socket.create_server(("127.0.0.1", 0))
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    ctx = None
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=keys["ca"].decode())
        ctx.load_cert_chain(d / "server_cert.pem", d / "server_key.pem")
        # No session tickets: unread by the sender, they made its close a reset that lost the
        # last bytes (as transport/data/wire.py's server_context says).
        ctx.num_tickets = 0
    buf = bytearray(limits.UPLOAD_CHUNK_BYTES)
    while True:
        conn, _ = listener.accept()
        sock = ctx.wrap_socket(conn, server_side=True) if ctx is not None else conn
        n = 0
        with sock:
            while got := sock.recv_into(buf):
                n += got
        print(json.dumps({"received": n}), flush=True)


# ---- the sending side ---------------------------------------------------------------------


def blocks(path: Path, chunk: int) -> Iterator[bytes]:
    with open(path, "rb", buffering=0) as fh:
        while block := fh.read(chunk):
            yield block


def send(mode: str, port: int, keys: dict[str, bytes], d: Path, path: Path, chunk: int) -> None:
    if mode.startswith("grpc"):
        creds = grpc.ssl_channel_credentials(keys["ca"], keys["agent_key"], keys["agent_cert"])
        with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=CLIENT_OPTIONS) as ch:
            ch.stream_unary(_RAW)(blocks(path, chunk))
        return
    sock = socket.create_connection(("127.0.0.1", port))
    if mode == "tls":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(cadata=keys["ca"].decode())
        ctx.load_cert_chain(d / "agent_cert.pem", d / "agent_key.pem")
        sock = ctx.wrap_socket(sock, server_hostname=CONTROLLER_NAME)
    with sock:
        for block in blocks(path, chunk):
            sock.sendall(block)


def measure(mode: str, d: Path, keys: dict[str, bytes], path: Path, chunk: int,
            repeats: int) -> dict[str, object]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.grpc_floor", "--serve", mode,
                             "--dir", str(d)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        port = json.loads(proc.stdout.readline())["port"]
        size = path.stat().st_size
        send(mode, port, keys, d, path, chunk)  # a warm-up: connection, handshake, imports
        proc.stdout.readline()
        rows = []
        for _ in range(repeats):
            s0, c0, t0 = cpu_seconds(proc.pid), cpu_seconds(), time.perf_counter()
            send(mode, port, keys, d, path, chunk)
            got = json.loads(proc.stdout.readline())["received"]
            wall = time.perf_counter() - t0
            if got != size:
                raise RuntimeError(f"{mode}: {got} bytes received of {size}")
            rows.append({"s": wall, "mbps": size / wall / 1e6,
                         "sender_cpu_s_per_gb": (cpu_seconds() - c0) / size * 1e9,
                         "receiver_cpu_s_per_gb": (cpu_seconds(proc.pid) - s0) / size * 1e9})
        best = sorted(rows, key=lambda r: float(r["s"]))[len(rows) // 2]
        return {"mode": mode, "chunk": chunk, "bytes": size, "loadavg": os.getloadavg(),
                **best}
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--serve", choices=MODES)
    ap.add_argument("--dir", type=Path)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--bytes", type=int, default=1024**3)
    ap.add_argument("--chunk", type=int, default=limits.UPLOAD_CHUNK_BYTES)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--file", type=Path, help="send this file (default: random bytes)")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.dir)
        return
    with tempfile.TemporaryDirectory(prefix="podcap-floor-") as tmp:
        d = Path(tmp)
        keys = pki(d)
        for name, data in keys.items():
            (d / f"{name}.pem").write_bytes(data)
        path = args.file
        if path is None:
            path = d / "bytes"
            block = os.urandom(16 * 1024 * 1024)
            with open(path, "wb") as fh:
                for _ in range(args.bytes // len(block)):
                    fh.write(block)
        for mode in args.modes.split(","):
            print(json.dumps(measure(mode, d, keys, path, args.chunk, args.repeats)),
                  flush=True)


if __name__ == "__main__":
    main()
