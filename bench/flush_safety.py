"""Figure 7 (c): is flushing tcpdump for live followers safe at saturation?

Debian's tcpdump flushes its output on SIGUSR2 by calling fflush() inside the signal handler.
That is not async-signal-safe: a signal landing while tcpdump is inside fwrite() on the same
FILE shifts the buffer's bytes, and the file's records stop lining up. This measures it with
the agent's own code: tcpdump (the agent's argv, ``-i any``, a ring of 4 × 5 MB) records two
TCP streams over loopback at full rate for a few seconds while SIGUSR2 comes every 4 ms --
either unconditionally ("naive", what podcap did before) or through the agent's flusher
(``agent/following.py``: only a tcpdump asleep in poll() whose ring stopped growing). Then
every ring file is walked record by record. 4 ms instead of the agent's 250 ms makes a rare
event countable in seconds; the gate, not the period, is what is measured.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from podcap.agent.following import Following
from podcap.capture import command, runner, signals, tcpdump_log
from podcap.model import CaptureSpec
from podcap.pcap.format import GLOBAL_HEADER, RECORD_HEADER, walk
from podcap.pcap.repair import repair_tail

PERIOD_S = 0.004
SECONDS, SECONDS_SMOKE = 8.0, 1.0
REPEATS, REPEATS_SMOKE = 3, 1


def records_line_up(path: Path) -> bool:
    """Every record header is plausible and the last record ends exactly at the end."""
    data = path.read_bytes()
    pos = GLOBAL_HEADER
    for at, _, frac, caplen, origlen in walk(data, "<", pos):
        if caplen > 262144 or caplen > origlen or frac >= 1_000_000:
            return False
        pos = at + RECORD_HEADER + caplen
    return pos == len(data)


def _traffic(port: int, until: float) -> list[threading.Thread]:
    srv = socket.create_server(("127.0.0.1", port))

    def sink() -> None:
        conn, _ = srv.accept()
        with conn:
            while conn.recv(1 << 20):
                pass

    def source(size: int) -> None:
        with socket.create_connection(("127.0.0.1", port)) as s:
            block = b"x" * size
            while time.time() < until:
                s.sendall(block)

    threads = [threading.Thread(target=sink, daemon=True) for _ in range(2)]
    threads += [threading.Thread(target=source, args=(n,), daemon=True) for n in (1200, 300)]
    for t in threads:
        t.start()
    return threads


def _once(gated: bool, seconds: float, port: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="podcap-flush-") as tmp:
        files, log = Path(tmp) / "files", Path(tmp) / "tcpdump.log"
        files.mkdir()
        spec = CaptureSpec(filter=f"tcp port {port}", file_size_mb=5, file_number=4)
        netns = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        try:
            proc = runner.start(command.tcpdump_args(spec, files), log, netns)
        finally:
            os.close(netns)
        closing = threading.Event()
        following = Following()
        try:
            runner.wait_listening(proc, log)
            until = time.time() + seconds
            traffic = _traffic(port, until)
            sent = 0
            if gated:
                following.add("bench")
                flusher = threading.Thread(target=following.run, daemon=True, args=(
                    lambda: {"bench": (proc.pid, files)}, closing, PERIOD_S))
                flusher.start()
                time.sleep(seconds)
                closing.set()
                following.wake()
                flusher.join(5)
                sent = following.flushes.get("bench", 0)
            else:
                while time.time() < until:
                    signals.flush(proc.pid)
                    sent += 1
                    time.sleep(PERIOD_S)
            for t in traffic[2:]:
                t.join(seconds + 5)
        finally:
            closing.set()
            # the agent's own stop: SIGINT, SIGKILL if tcpdump has not ended 10 s later (once,
            # on a loaded machine, a SIGINT went unanswered and the whole bench failed)
            interrupted = proc.poll() is not None or signals.terminate(
                proc.pid, grace=10, alive=lambda: proc.poll() is None)
            proc.wait(5)
        ring = sorted(files.iterdir())
        if not interrupted and ring:  # a SIGKILL cuts the newest record: not a flush's doing
            repair_tail(max(ring, key=lambda p: p.stat().st_mtime_ns))
        stats = tcpdump_log.parse_stats(log)
        return {"gated": gated, "signals": sent, "files": len(ring), "killed": not interrupted,
                "broken": sum(not records_line_up(p) for p in ring),
                "captured": stats.captured if stats else 0,
                "bytes": sum(p.stat().st_size for p in ring)}


def run(smoke: bool) -> list[dict[str, Any]]:
    rows = []
    for i in range(REPEATS_SMOKE if smoke else REPEATS):
        for gated in (False, True):
            rows.append(_once(gated, SECONDS_SMOKE if smoke else SECONDS, 7301 + 2 * i + gated))
    return rows


def lines(rows: list[dict[str, Any]]) -> list[str]:
    out = ["(c) Flush safety at saturation: tcpdump (the agent's argv, ring 4 × 5 MB) records "
           "two TCP streams over loopback at full rate while SIGUSR2 comes every "
           f"{PERIOD_S * 1000:g} ms, unconditionally (naive) or through the agent's flusher "
           "(only a tcpdump asleep in poll() whose ring stopped growing). Ring files kept at "
           "the end, walked record by record (`bench/flush_safety.py`):", "",
           "| flusher | SIGUSR2 sent | packets captured | ring files | files whose records "
           "do not line up |", "| --- | --- | --- | --- | --- |"]
    for r in rows:
        out.append(f"| {'agent (gated)' if r['gated'] else 'naive'} | {r['signals']} | "
                   f"{r['captured']} | {r['files']} | **{r['broken']}** |")
    return out
