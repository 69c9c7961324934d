"""A pcap on its way to a reader: shared by the agent (which makes one from its files), the
transports (which carry it) and the interfaces (which send it on).

``close()`` matters once a network sits in between: a reader that goes away must stop the
agent's read, so whoever holds the stream last closes it, and closing is safe twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PcapRequest:
    """Which packets of a capture a reader wants. The controller carries it unchanged to the
    agent that holds the files (``Download`` in agent.proto), so every reading mode works the
    same on a remote node as in-process."""

    limit: int | None = None  # stop after this many bytes (a snapshot of a running capture)
    offset: int = 0  # skip this many bytes of the stream: an HTTP Range resume
    follow: bool = False  # keep sending new packets until the capture ends
    from_now: bool = False  # with follow: the header, then only packets written from now on
    filter: str = ""  # a BPF filter applied to the stored files (one conversation)


@dataclass
class PcapStream:
    """The pcap as chunks, and its exact size when known before sending (a stopped capture),
    so HTTP can send a Content-Length and clients can show progress."""

    chunks: Iterator[bytes]
    size: int | None
    on_close: Callable[[], None] | None = field(default=None, repr=False)
    # The same chunks read on the event loop, where a source has them there (a remote agent's
    # download, transport/data/incoming.py): an HTTP response then takes each without a worker
    # thread's round trip. A reader uses one of ``chunks`` and ``achunks``, never both.
    achunks: AsyncIterator[bytes] | None = field(default=None, repr=False)
    closed: bool = field(default=False, init=False, repr=False)  # close() has run to its end

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self.chunks
        finally:
            self.close()

    def close(self) -> None:
        close = getattr(self.chunks, "close", None)
        if close is not None:
            try:
                close()
            except ValueError:  # "generator already executing": a worker thread is inside
                pass  # it (a quiet follow stream); on_close below tells the source to stop
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()
        self.closed = True
