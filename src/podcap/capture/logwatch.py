"""Waking when tcpdump writes its log: inotify, so a start sees "listening on" the moment
tcpdump prints it instead of at the next poll (1 ms polls cost ~0.5 ms on average, and sixteen
wake-ups of a thread per start that compete with the answer for the interpreter).

Without inotify (no instance left for this user, or none in the kernel) a ``LogWatch`` just
sleeps the poll interval: the caller's loop is the same either way.

Closing an inotify instance waits for the kernel's SRCU grace period (16 ms measured here, as
long as tcpdump's own start): one thread of this module closes them, off the start's path.
"""

from __future__ import annotations

import ctypes
import os
import queue
import select
import threading
import time
from pathlib import Path
from types import TracebackType

from podcap import limits

_IN_NONBLOCK = 0o4000  # <sys/inotify.h>, equal to O_NONBLOCK
_IN_CLOEXEC = 0o2000000  # equal to O_CLOEXEC
_IN_MODIFY = 0x2
_IN_CLOSE_WRITE = 0x8

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_init1.argtypes = (ctypes.c_int,)
_libc.inotify_add_watch.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32)


class LogWatch:
    """``wait`` returns when the file was written to (or a writer closed it), or after a
    while: the caller reads the file anew each time and checks the process itself."""

    def __init__(self, path: Path) -> None:
        self._fd = -1
        fd = _libc.inotify_init1(_IN_NONBLOCK | _IN_CLOEXEC)
        if fd < 0:
            return
        if _libc.inotify_add_watch(fd, os.fsencode(path), _IN_MODIFY | _IN_CLOSE_WRITE) < 0:
            os.close(fd)
            return
        self._fd = fd
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)

    @property
    def watching(self) -> bool:
        return self._fd >= 0

    def wait(self) -> None:
        """Until a write, or ``START_POLL_S`` at most (limits/capture.py says why)."""
        if self._fd < 0:
            time.sleep(limits.START_POLL_S)
            return
        if self._poll.poll(limits.START_POLL_S * 1000):
            try:
                while os.read(self._fd, 4096):
                    pass
            except BlockingIOError:
                pass

    def close(self) -> None:
        if self._fd >= 0:
            _close_later(self._fd)
            self._fd = -1

    def __enter__(self) -> LogWatch:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


_closing: queue.SimpleQueue[int] = queue.SimpleQueue()
_closer: list[threading.Thread] = []
_closer_lock = threading.Lock()


def _close_later(fd: int) -> None:
    with _closer_lock:
        if not _closer:
            _closer.append(threading.Thread(target=_close_forever, daemon=True,
                                            name="podcap-inotify-close"))
            _closer[0].start()
    _closing.put(fd)


def _close_forever() -> None:
    while True:
        os.close(_closing.get())
