"""The two baselines: raw ``nsenter tcpdump`` and tcpdump with NeuVector's exact arguments.

Both run tcpdump inside a container's network namespace through ``nsenter --net=/proc/<pid>/...``
with its stderr read line by line by a thread, so "listening on" is seen the moment tcpdump
writes it and the counters (SIGUSR1 one-line form, final multi-line form) can be read back.
"""

from __future__ import annotations

import re
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench.common import TCPDUMP, Box, Procs, signal_group

# Final statistics are one counter per line; SIGUSR1 prints them on one line, comma separated.
STATS_RE = re.compile(
    r"(\d+) packets? captured[,\n]\s*(?:tcpdump: )?(\d+) packets? received by filter[,\n]\s*"
    r"(\d+) packets? dropped by kernel"
)


@dataclass
class TcpdumpStats:
    captured: int
    received: int
    dropped: int

    def as_dict(self) -> dict[str, int]:
        return {"captured": self.captured, "received": self.received, "dropped": self.dropped}


def raw_args(out: Path, buffer_kib: int | None = None, snaplen: int | None = None,
             packet_buffered: bool = False, extra: list[str] | None = None) -> list[str]:
    """The floor of the design: tcpdump as a person would start it by hand."""
    args = ["-i", "any", "-n", "-Z", "root"]  # root: tcpdump may write in a root-only dir
    if packet_buffered:
        args.append("-U")
    if buffer_kib:
        args += ["-B", str(buffer_kib)]
    if snaplen is not None:
        args += ["-s", str(snaplen)]
    return [*args, *(extra or []), "-w", str(out)]


def neuvector_args(files_dir: Path, capture_id: str, file_number: int = 5,
                   filter_expr: str = "") -> list[str]:
    """NeuVector's agent command, word for word (NEUVECTOR_SNIFFER.md):
    ``tcpdump -i any -Z root -U -C 2 -w <dir>/<id12>_ -W <N> <filter words…>``."""
    return ["-i", "any", "-Z", "root", "-U", "-C", "2", "-w",
            str(files_dir / f"{capture_id[:12]}_"), "-W", str(file_number), *filter_expr.split()]


class Tcpdump:
    """One tcpdump in ``box``'s network namespace."""

    def __init__(self, procs: Procs, box: Box, args: list[str]) -> None:
        self.argv = box.nsenter(TCPDUMP, *args)
        self._procs = procs
        self._text: list[str] = []
        self._lock = threading.Lock()
        self._listening = threading.Event()
        self.t_spawn = time.time()
        self.t_listening: float | None = None
        self.proc = procs.spawn(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def command(self) -> str:
        return " ".join(self.argv)

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in iter(self.proc.stderr.readline, b""):
            line = raw.decode(errors="replace")
            if self.t_listening is None and "listening on" in line:
                self.t_listening = time.time()
                self._listening.set()
            with self._lock:
                self._text.append(line)

    def text(self) -> str:
        with self._lock:
            return "".join(self._text)

    def wait_listening(self, timeout: float = 10.0) -> float:
        """Seconds from spawn to "listening on"."""
        deadline = time.monotonic() + timeout
        while not self._listening.wait(0.05):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                break
        if not self._listening.is_set():
            self._reader.join(1)
            self.kill()
            raise RuntimeError(f"tcpdump not listening after {timeout}s: {self.text()!r}")
        assert self.t_listening is not None
        return self.t_listening - self.t_spawn

    def _stats_after(self, count_before: int, timeout: float) -> TcpdumpStats:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = STATS_RE.findall(self.text())
            if len(found) > count_before:
                c, r, d = (int(x) for x in found[-1])
                return TcpdumpStats(c, r, d)
            time.sleep(0.01)
        raise RuntimeError(f"tcpdump printed no statistics: {self.text()[-500:]!r}")

    def stats_now(self, timeout: float = 5.0) -> TcpdumpStats:
        """SIGUSR1: tcpdump prints its counters and keeps running."""
        before = len(STATS_RE.findall(self.text()))
        self.proc.send_signal(signal.SIGUSR1)
        return self._stats_after(before, timeout)

    def drain(self, max_wait: float = 1.5, interval: float = 0.02) -> float:
        """Wait until tcpdump has handled every packet the kernel had received when called:
        SIGUSR1 until captured + dropped >= received at the start (TPACKET_V3 hands packets
        over in blocks, retired at the latest after tcpdump's 1 s timeout). Returns seconds."""
        t = time.monotonic()
        target = self.stats_now().received
        while time.monotonic() - t < max_wait:
            s = self.stats_now()
            if s.captured + s.dropped >= target:
                break
            time.sleep(interval)
        return time.monotonic() - t

    def interrupt(self, timeout: float = 10.0) -> TcpdumpStats:
        """SIGINT: tcpdump flushes its file, prints final statistics and exits."""
        before = len(STATS_RE.findall(self.text()))
        signal_group(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        self._reader.join(5)
        stats = self._stats_after(before, 2.0)
        self._procs.end(self.proc)
        return stats

    def kill(self) -> None:
        """SIGKILL to the whole group, as NeuVector stops a capture."""
        signal_group(self.proc.pid, signal.SIGKILL)
        try:
            self.proc.wait(10)
        finally:
            self._procs.end(self.proc)
        self._reader.join(5)
