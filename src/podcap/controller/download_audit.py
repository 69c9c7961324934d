"""A download counted as it leaves, so its audit row says what the reader was sent.

``length`` ends the stream after that many bytes (an HTTP range's last byte; the agent always
sends to the end). The cut is made here, where the bytes are counted, so a range is audited
with what it sent rather than what was pulled from the agent. The stream's ``size`` stays the
agent's figure, from the request's offset to the end, which a range's Content-Range names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from podcap.streams import PcapStream


def counted(stream: PcapStream, length: int | None,
            audit: Callable[[int, bool], None]) -> PcapStream:
    """``stream`` cut at ``length``; on close, ``audit(bytes sent, all it was meant to get)``."""
    meant = stream.size if length is None or stream.size is None else min(length, stream.size)
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        for chunk in stream:
            if length is not None:
                chunk = chunk[:length - sent]
            yield chunk
            # Counted once the reader asks for more: the chunk has left. A reader that went
            # away while it was on its way never got it.
            sent += len(chunk)
            if length is not None and sent >= length:
                return

    def done() -> None:
        stream.close()
        audit(sent, meant is None or sent == meant)

    return PcapStream(chunks(), stream.size, done)
