"""A download counted as it leaves, so its audit row says what the reader was sent; and a
capture found once for its download (``Download``).

``length`` ends the stream after that many bytes (an HTTP range's last byte; the agent always
sends to the end). The cut is made here, where the bytes are counted, so a range is audited
with what it sent rather than what was pulled from the agent. The stream's ``size`` stays the
agent's figure, from the request's offset to the end, which a range's Content-Range names.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

from podcap.controller.inventory import OwnedCapture
from podcap.streams import PcapRequest, PcapStream


@dataclass(frozen=True)
class Download:
    """A capture found for a download, once: its record serves a range's plan and the
    response's headers, and ``open`` streams from the agent already found, so nobody asks
    again where the capture is or what it holds (the agent looks it up in its own table to
    send the bytes). Checked already: the caller may see it and download it."""

    owned: OwnedCapture
    opener: Callable[[PcapRequest, int | None], PcapStream]

    def open(self, request: PcapRequest = PcapRequest(), length: int | None = None
             ) -> PcapStream:
        """The pcap from ``request.offset``, cut after ``length`` bytes, audited on close."""
        return self.opener(request, length)


def counted(stream: PcapStream, length: int | None,
            audit: Callable[[int, bool], None]) -> PcapStream:
    """``stream`` cut at ``length``; on close, ``audit(bytes sent, all it was meant to get)``."""
    meant = stream.size if length is None or stream.size is None else min(length, stream.size)
    sent = 0

    def cut(chunk: bytes) -> bytes:
        return chunk if length is None else chunk[:length - sent]

    def full() -> bool:
        return length is not None and sent >= length

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for chunk in stream:
            yield (chunk := cut(chunk))
            # Counted once the reader asks for more: the chunk has left. A reader that went
            # away while it was on its way never got it.
            sent += len(chunk)
            if full():
                return

    async def achunks(source: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        nonlocal sent  # as chunks() above, for a source read on the event loop
        async for chunk in source:
            yield (chunk := cut(chunk))
            sent += len(chunk)
            if full():
                return

    def done() -> None:
        stream.close()
        audit(sent, meant is None or sent == meant)

    return PcapStream(chunks(), stream.size, done,
                      None if stream.achunks is None else achunks(stream.achunks))
