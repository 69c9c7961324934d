"""A TLS connection read on the event loop, without asyncio's own TLS transport.

asyncio's TLS (``sslproto``: a memory BIO, a copy into it and out of it per record, a callback
per read) cost the controller 1.1-2.5 CPU seconds per GB in a receive test on this machine;
a non-blocking ``ssl.SSLSocket`` read straight into the chunk's buffer, waiting on the loop
only when OpenSSL says it needs more bytes, 0.54 — the blocking socket's cost, on the loop.
"""

from __future__ import annotations

import asyncio
import socket
import ssl


class Closed(Exception):
    """The peer closed the connection (or it broke) before what was asked of it came."""


class Idle(Exception):
    """Nothing came for as long as the reader would wait."""


class AsyncTLS:
    def __init__(self, tls: ssl.SSLSocket, loop: asyncio.AbstractEventLoop) -> None:
        self.tls = tls
        self.loop = loop
        self.closed = False
        self._waiting: asyncio.Future[bool] | None = None

    @classmethod
    async def accept(cls, raw: socket.socket, ctx: ssl.SSLContext, timeout: float) -> AsyncTLS:
        """The server's handshake on the loop; ``ssl.SSLError`` or ``TimeoutError``."""
        raw.setblocking(False)
        tls = ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)
        conn = cls(tls, asyncio.get_running_loop())
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        tls.do_handshake()
                        return conn
                    except ssl.SSLWantReadError:
                        await conn._wait(False)
                    except ssl.SSLWantWriteError:
                        await conn._wait(True)
        except BaseException:
            conn.close()
            raise

    def peer_certificate(self) -> bytes:
        """The DER of the certificate the handshake verified against the cluster CA."""
        der = self.tls.getpeercert(binary_form=True)
        return der or b""

    async def read_into(self, view: memoryview, idle_s: float) -> int:
        """Fills ``view`` (up to its length) with what is there, waiting at most ``idle_s``
        for anything at all; 0 when the peer closed."""
        while True:
            try:
                return self.tls.recv_into(view)
            except ssl.SSLWantReadError:
                await self._wait(False, idle_s)
            except ssl.SSLWantWriteError:
                await self._wait(True, idle_s)
            except (ssl.SSLError, OSError) as exc:
                raise Closed(str(exc)) from None

    async def read_exactly(self, n: int, idle_s: float) -> bytearray:
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = await self.read_into(view[got:], idle_s)
            if k == 0:
                raise Closed(f"closed after {got} of {n} bytes")
            got += k
        return buf

    async def _wait(self, writable: bool, timeout: float | None = None) -> None:
        """Until the socket is readable (writable); a timer rather than ``wait_for``, whose
        task per wait would cost more than the read it waits for."""
        if self.closed:
            raise Closed("closed")
        fd = self.tls.fileno()
        ready: asyncio.Future[bool] = self.loop.create_future()
        add, remove = (self.loop.add_writer, self.loop.remove_writer) if writable else \
            (self.loop.add_reader, self.loop.remove_reader)
        add(fd, _done, ready, True)
        timer = None if timeout is None else self.loop.call_later(timeout, _done, ready, False)
        self._waiting = ready
        try:
            if not await ready:
                raise Idle(f"nothing for {timeout:g} s")
        finally:
            self._waiting = None
            if timer is not None:
                timer.cancel()
            if not self.closed:
                remove(fd)

    def close(self) -> None:
        """On the loop's thread only (``close_soon`` from others): a reader may be waiting."""
        if self.closed:
            return
        self.closed = True
        waiting, self._waiting = self._waiting, None
        if waiting is not None and not waiting.done():
            waiting.set_exception(Closed("closed by the controller"))
        try:
            self.loop.remove_reader(self.tls.fileno())
            self.loop.remove_writer(self.tls.fileno())
        except (ValueError, OSError):
            pass
        self.tls.close()

    def close_soon(self) -> None:
        """``close`` from any thread."""
        try:
            self.loop.call_soon_threadsafe(self.close)
        except RuntimeError:  # the loop is gone: nobody waits on the socket any more
            self.closed = True
            self.tls.close()


def _done(future: asyncio.Future[bool], ready: bool) -> None:
    if not future.done():
        future.set_result(ready)
