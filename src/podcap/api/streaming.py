"""How podcap sends a capture over HTTP, written once for every download route (a capture's
pcap, its followed stream, a conversation, a group's pcapng, NeuVector's multipart answer).

- **Closing.** The stream is closed when the response ends, however it ends: Starlette runs the
  response's background task after the last chunk or once the client has gone (uvicorn speaks
  ASGI 2.3, so a disconnect cancels the body and the task still runs). Closing is what stops a
  remote agent's upload and writes the download's audit entry (controller/download_audit.py),
  so no route may forget it.
- **The file name.** ``Content-Disposition: attachment; filename="…"``, and the one rule for a
  name made of user text (a workload's name): letters, digits, ``-_.``, the rest ``_``.
- **Media types.** ``PCAP`` and ``PCAPNG``; a route with its own framing (NeuVector's
  multipart) names its own.
- **Live streams** (a follow, a group's pcapng) have no end the server knows of: ``no-store``,
  and proxies are asked not to hold chunks back. A follower's reads are ``paced``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Final

from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from podcap import limits
from podcap.streams import PcapStream

PCAP: Final = "application/vnd.tcpdump.pcap"
PCAPNG: Final = "application/x-pcapng"
LIVE_HEADERS: Final = {"Cache-Control": "no-store",
                       "X-Accel-Buffering": "no"}  # ask proxies (nginx) not to hold chunks back


def safe_name(text: str, limit: int | None = None) -> str:
    """``text`` (a workload's name: anything a runtime allows) as characters (``limit`` at
    most) that are safe in a file name on any system, and inside the header's quotes."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)[:limit]


def send(body: Iterable[bytes] | AsyncIterator[bytes], close: Callable[[], None] | PcapStream, *,
         media_type: str, filename: str | None = None, status_code: int = 200,
         headers: Mapping[str, str] | None = None, live: bool = False) -> StreamingResponse:
    """The response that streams ``body`` and calls ``close`` when it ends (see above): a
    stream's ``close``, or the stream itself, which needs no thread once it has closed itself.
    ``filename``: sent as an attachment of that name; ``headers``: the route's own (sizes,
    ranges); ``live``: a stream with no known end."""
    out = {} if filename is None else {"Content-Disposition":
                                       f'attachment; filename="{filename}"'}
    out.update(headers or {})
    if live:
        out.update(LIVE_HEADERS)
    return StreamingResponse(body, status_code, out, media_type=media_type,
                             background=BackgroundTask(_close, close))


async def _close(close: Callable[[], None] | PcapStream) -> None:
    """In a worker thread (it may write the download's audit), unless it is a stream that
    closed itself at its end (most downloads): then nothing is left to do."""
    if isinstance(close, PcapStream):
        if close.closed:
            return
        close = close.close
    await run_in_threadpool(close)


def body(pcap: PcapStream) -> AsyncIterator[bytes]:
    """What a response sends of ``pcap``: its chunks on the event loop where its source has
    them there (a remote agent's upload: no worker-thread round trip per chunk, figure 6),
    else its chunks read in worker threads, the first one here, in the route's own (one round
    trip through the event loop less a download: figure 10)."""
    if pcap.achunks is not None:
        return pcap.achunks
    chunks = iter(pcap)
    return _after(next(chunks, None), chunks)


async def _after(first: bytes | None, rest: Iterator[bytes]) -> AsyncIterator[bytes]:
    if first is None:
        return
    yield first
    async for chunk in iterate_in_threadpool(rest):
        yield chunk


async def paced(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    """A follow stream lasts as long as its capture: a worker thread is borrowed for each read
    only (the follower hands back ``b""`` when idle) and the wait between reads happens on
    the event loop, so many followers do not use up the server's thread pool."""
    it = iter(chunks)
    done = object()
    while True:
        chunk = await run_in_threadpool(next, it, done)
        if chunk is done:
            return
        assert isinstance(chunk, bytes)
        if chunk:
            yield chunk
        else:
            await asyncio.sleep(limits.FOLLOW_POLL_S)
