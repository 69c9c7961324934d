"""Programs started inside a network namespace held by an fd, without ``nsenter``.

``setns(fd, CLONE_NEWNET)`` moves only the calling *thread* into the namespace. So each spawn
gets a thread of its own that enters the namespace, spawns the program and ends: the child
(vfork + exec, as any ``subprocess.Popen``) inherits the thread's namespace, and no other work of
the agent ever runs inside a container's namespace, even if the spawn fails half-way.

Why not the alternatives: ``nsenter`` costs an extra exec per start (and per network-state
command); ``preexec_fn`` makes subprocess fork() instead of vfork() and run Python code in the
child of a threaded process, which the subprocess docs call unsafe. Privileges, limits and the
nice value are those of the calling thread, exactly as with the ``nsenter`` exec before (a new
thread inherits its creator's nice value, limits are per process); a capture's tcpdump is then
given its own priority by the runner (capture/priority.py).
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import threading
from typing import Any

CLONE_NEWNET = 0x40000000  # <sched.h>; os.CLONE_NEWNET arrives with Python 3.12

_libc = ctypes.CDLL(None, use_errno=True)
_setns = _libc.setns
_setns.argtypes = (ctypes.c_int, ctypes.c_int)
_setns.restype = ctypes.c_int


class NamespaceError(OSError):
    """The namespace could not be entered (not a network namespace, or no privilege)."""


def enter(netns_fd: int) -> None:
    """Move the calling thread into the network namespace ``netns_fd`` refers to. Only for a
    thread that ends right after (``spawn_in``): there is no way back built in."""
    if _setns(netns_fd, CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise NamespaceError(err, f"setns(CLONE_NEWNET): {os.strerror(err)}")


def spawn_in(netns_fd: int, argv: list[str], **popen: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen)`` run inside the namespace of ``netns_fd``. Raises
    ``NamespaceError`` when the namespace cannot be entered, or Popen's own ``OSError``."""
    result: list[subprocess.Popen[bytes]] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            enter(netns_fd)
            result.append(subprocess.Popen(argv, **popen))
        except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=run, name="podcap-netns-spawn", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]
