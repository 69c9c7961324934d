"""Chromium in a network namespace of its own, reaching this process's servers through a relay.

Chromium aborts every load in flight with net::ERR_NETWORK_CHANGED when the interfaces of its
network namespace change (Chromium issue 41465264; it watches netlink), and every container a
test starts adds a veth to the host's. Under pytest-xdist other workers start containers
all the time (a blank sign-in page in 3 of 4 runs when Chromium shared the host's namespace).
In a namespace of its own Chromium sees no such change: only its loopback, on which a relay
listens on every port this process hands out (tests.support.free_port) and carries each
connection to the same port on the host's loopback. The servers see 127.0.0.1 as before.
"""

from __future__ import annotations

import ctypes
import os
import selectors
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support import watching_ports

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    """setns(2) for the calling thread only (os.setns is Python 3.12)."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _listen_in(netns: Path, port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` inside ``netns``: a socket stays in the
    namespace it was made in, so a thread enters the namespace, makes it, and ends."""
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def make() -> None:
        try:
            with open(netns) as ns:
                _setns(ns.fileno())
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen(64)
            s.setblocking(False)
            made.append(s)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=make, name="netns-listen")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return made[0]


def _pump(src: socket.socket, dst: socket.socket) -> None:
    """One direction of a relayed connection; an end of input is passed on as a half-close."""
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _carry(inner: socket.socket, port: int) -> None:
    with inner:
        try:
            outer = socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            return  # as if refused: nothing listens there on the host
        outer.settimeout(None)
        with outer:
            back = threading.Thread(target=_pump, args=(outer, inner), daemon=True)
            back.start()
            _pump(inner, outer)
            back.join()


class _Relay:
    """Listens in the namespace on each port it is given; carries each connection to the host."""

    def __init__(self, netns: Path) -> None:
        self.netns = netns
        self.selector = selectors.DefaultSelector()
        self.listeners: dict[int, socket.socket] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="netns-relay", daemon=True)
        self.thread.start()

    def add(self, port: int) -> None:
        if port not in self.listeners:  # epoll: registering from another thread is safe
            self.listeners[port] = listener = _listen_in(self.netns, port)
            self.selector.register(listener, selectors.EVENT_READ, port)

    def _run(self) -> None:
        while not self.stop.is_set():
            for key, _ in self.selector.select(timeout=0.2):
                listener: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    inner, _addr = listener.accept()
                except (BlockingIOError, OSError):
                    continue
                inner.setblocking(True)
                threading.Thread(target=_carry, args=(inner, key.data), daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.selector.close()
        for listener in self.listeners.values():
            listener.close()


@contextmanager
def isolated_chromium(chromium: str, scratch: Path) -> Iterator[str]:
    """Yields an executable that runs ``chromium`` in a new network namespace whose loopback
    leads to the host's on every port tests.support.free_port hands out; the namespace and the
    relay end with the block."""
    name = f"podcap-ui-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    relay = None
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        relay = _Relay(Path("/run/netns") / name)
        launcher = scratch / "chromium-in-netns"
        launcher.write_text(f'#!/bin/sh\nexec nsenter --net=/run/netns/{name} -- {chromium} "$@"\n')
        launcher.chmod(0o755)
        with watching_ports(relay.add):
            yield str(launcher)
    finally:
        if relay is not None:
            relay.close()
        subprocess.run(["ip", "netns", "del", name], check=False)
