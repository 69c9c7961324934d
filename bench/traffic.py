"""Traffic between containers on this machine: iperf3 in the containers' netns and a probe.

iperf3 is Debian's binary run from the host with ``nsenter --net=/proc/<pid>/ns/net`` (the test
image has none). The probe sends numbered UDP datagrams carrying their send time to a container
at a steady rate, so a capture file says exactly which packets made it and when.
"""

from __future__ import annotations

import io
import json
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dpkt

from bench.common import IPERF3, Box, Procs

PROBE_MAGIC = b"PODCAPBENCH"
_PROBE = struct.Struct("!QQ")  # sequence number, send time (ns since the epoch)


# --------------------------------------------------------------------------------------------
# iperf3


class Iperf:
    """An iperf3 server (one test, then exit) in ``server``'s netns."""

    def __init__(self, procs: Procs, server: Box, port: int) -> None:
        self.procs, self.server, self.port = procs, server, port
        self.server_argv = server.nsenter(IPERF3, "-s", "-1", "-p", str(port), "-J")
        self.proc = procs.spawn(self.server_argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)

    def client_argv(self, client: Box, seconds: float, udp: bool, payload: int | None,
                    bitrate: str = "0") -> list[str]:
        argv = [IPERF3, "-c", self.server.ip, "-p", str(self.port), "-t", f"{seconds:g}", "-J"]
        if udp:
            argv += ["-u", "-b", bitrate]
        if payload:
            argv += ["-l", str(payload)]
        return client.nsenter(*argv)

    def run_client(self, client: Box, seconds: float, udp: bool, payload: int | None,
                   bitrate: str = "0") -> dict[str, Any]:
        """Run the client to the end; retry while the server is not listening yet (a try that
        got as far as the server, then failed to connect its data stream on a busy machine,
        ended the one-off server: it is started again)."""
        argv = self.client_argv(client, seconds, udp, payload, bitrate)
        for _ in range(50):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30,
                                  stdin=subprocess.DEVNULL, check=False)
            try:
                result: dict[str, Any] = json.loads(done.stdout)
            except json.JSONDecodeError:
                result = {"error": done.stdout[-300:] + done.stderr[-300:]}
            if "error" in result and "connect" in str(result["error"]):
                if self.proc.poll() is not None:  # a one-off server a failed try used up
                    self.proc = self.procs.spawn(self.server_argv, stdout=subprocess.PIPE,
                                                 stderr=subprocess.STDOUT)
                time.sleep(0.1)
                continue
            if "error" in result:
                raise RuntimeError(f"iperf3 client failed: {result['error']}")
            return result
        raise RuntimeError(f"iperf3 server never accepted a connection: {result['error']}")

    def start_client(self, client: Box, seconds: float, udp: bool, payload: int | None,
                     bitrate: str = "0") -> subprocess.Popen[bytes]:
        """A client in the background (load); the caller ends it with ``procs.end``."""
        time.sleep(0.2)  # the server needs a moment to listen; run_client retries instead
        return self.procs.spawn(self.client_argv(client, seconds, udp, payload, bitrate),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def close(self) -> None:
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.procs.end(self.proc)


def udp_sent_packets(result: dict[str, Any]) -> int:
    end = result["end"]
    sent = end.get("sum_sent") or end["sum"]
    return int(sent["packets"])


def tcp_sent_bytes(result: dict[str, Any]) -> int:
    return int(result["end"]["sum_sent"]["bytes"])


# --------------------------------------------------------------------------------------------
# Probe


@dataclass
class Probe:
    """Numbered UDP datagrams from the host to ``dst`` at ``hz`` per second, in a thread."""

    dst: str
    port: int
    hz: int = 1000
    sent: list[tuple[int, int]] = field(default_factory=list)  # (seq, send time ns)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Probe:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        interval = 1.0 / self.hz
        seq = 0
        next_t = time.monotonic()
        deadline = next_t + 600  # bounded, whatever happens to the caller
        try:
            while not self._stop.is_set() and next_t < deadline:
                now_ns = time.time_ns()
                try:
                    sock.sendto(PROBE_MAGIC + _PROBE.pack(seq, now_ns), (self.dst, self.port))
                except OSError:
                    pass
                self.sent.append((seq, now_ns))
                seq += 1
                next_t += interval
                delay = next_t - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        finally:
            sock.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def probe_packets(records: Iterator[tuple[float, bytes]]) -> dict[int, tuple[float, int]]:
    """seq -> (capture timestamp, send time ns) of every probe datagram in ``records``."""
    out: dict[int, tuple[float, int]] = {}
    for ts, buf in records:
        at = buf.find(PROBE_MAGIC)
        if at < 0:
            continue
        body = buf[at + len(PROBE_MAGIC): at + len(PROBE_MAGIC) + _PROBE.size]
        if len(body) < _PROBE.size:
            continue
        seq, sent_ns = _PROBE.unpack(body)
        out.setdefault(seq, (ts, sent_ns))
    return out


# --------------------------------------------------------------------------------------------
# pcap files


def pcap_records(data: bytes | Path) -> Iterator[tuple[float, bytes]]:
    """Records of one classic pcap (bytes or a path). A file cut short by SIGKILL ends early."""
    raw = data.read_bytes() if isinstance(data, Path) else data
    if len(raw) < 24:
        return
    reader = dpkt.pcap.Reader(io.BytesIO(raw))
    try:
        yield from ((float(ts), bytes(buf)) for ts, buf in reader)
    except (dpkt.NeedData, dpkt.UnpackError, struct.error, ValueError):
        return


def files_records(paths: list[Path]) -> Iterator[tuple[float, bytes]]:
    for p in paths:
        yield from pcap_records(p)
