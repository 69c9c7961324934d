"""A capture's files through a BPF filter, as one pcap stream (a conversation's download).

Each ring file goes through ``tcpdump -r FILE -w - -- FILTER`` (argv list, no shell), in ring
order; the first output's 24-byte header is kept and the others' dropped, as ring.merged does.
One tcpdump runs at a time and its output is passed on in chunks, so memory stays at one chunk
however big the capture. The size is unknown in advance (no Content-Length).

A running capture's newest file may end in a record tcpdump is still writing: ``tcpdump -r``
then stops at that record with "truncated dump file", having written every whole one before.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from podcap import limits
from podcap.capture import tcpdump
from podcap.errors import CaptureFailed
from podcap.pcap.format import GLOBAL_HEADER
from podcap.streams import PcapStream


def filtered(paths: list[Path], bpf: str, *,
             chunk: int = limits.DOWNLOAD_CHUNK_BYTES) -> PcapStream:
    """``paths`` in capture order; ``bpf`` already compiled by the caller."""
    return PcapStream(_stream(paths, bpf, chunk), None)


def _stream(paths: list[Path], bpf: str, chunk: int) -> Iterator[bytes]:
    header_sent = False
    for path in paths:
        if not path.is_file() or path.stat().st_size < GLOBAL_HEADER:
            continue
        with tempfile.TemporaryFile() as errors:
            proc = subprocess.Popen([tcpdump.TCPDUMP, "-n", "-r", str(path), "-w", "-", "--", bpf],
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=errors)
            assert proc.stdout is not None
            try:
                header = _read_exactly(proc.stdout, GLOBAL_HEADER)
                if len(header) == GLOBAL_HEADER:
                    if not header_sent:
                        yield header
                        header_sent = True
                    while block := proc.stdout.read(chunk):
                        yield block
                code = proc.wait()
            finally:
                if proc.poll() is None:  # the reader went away: stop this tcpdump
                    proc.kill()
                    proc.wait()
                proc.stdout.close()
            errors.seek(0)
            message = errors.read().decode(errors="replace")
        if code != 0 and "truncated dump file" not in message and path.exists():
            raise CaptureFailed(f"tcpdump could not filter {path.name}: "
                                f"{message.strip()[-300:]}")


def _read_exactly(stream: object, size: int) -> bytes:
    data = b""
    read = stream.read  # type: ignore[attr-defined]
    while len(data) < size and (block := read(size - len(data))):
        data += block
    return data
