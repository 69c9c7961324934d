"""Chromium in a network namespace of its own, reaching this process's servers through a relay.

Chromium aborts every load in flight with net::ERR_NETWORK_CHANGED when the interfaces of its
network namespace change (Chromium issue 41465264; it watches netlink), and every container a
test starts adds a veth to the host's. Under pytest-xdist the other worker starts containers
all the time (a blank sign-in page in 3 of 4 runs when Chromium shared the host's namespace).
In a namespace of its own Chromium sees no such change: only its loopback, on which a relay
listens on every port this worker hands out (tests.support.free_port's block) and carries each
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

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    """setns(2) for the calling thread only (os.setns is Python 3.12)."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _listeners(netns: Path, ports: range) -> list[socket.socket]:
    """Listening sockets on 127.0.0.1 inside ``netns``: a socket stays in the namespace it was
    made in, so a thread enters the namespace, makes them, and ends."""
    made: list[socket.socket] = []
    failure: list[BaseException] = []

    def make() -> None:
        try:
            with open(netns) as ns:
                _setns(ns.fileno())
            for port in ports:
                s = socket.socket()
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(("127.0.0.1", port))
                s.listen(64)
                s.setblocking(False)
                made.append(s)
        except BaseException as exc:  # handed to the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=make, name="netns-listeners")
    thread.start()
    thread.join()
    if failure:
        for s in made:
            s.close()
        raise failure[0]
    return made


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


def _relay(listeners: list[socket.socket], stop: threading.Event) -> None:
    with selectors.DefaultSelector() as selector:
        for s in listeners:
            selector.register(s, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in selector.select(timeout=0.2):
                listener: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    inner, _addr = listener.accept()
                except BlockingIOError:
                    continue
                inner.setblocking(True)
                threading.Thread(target=_carry, args=(inner, listener.getsockname()[1]),
                                 daemon=True).start()


@contextmanager
def isolated_chromium(chromium: str, ports: range, scratch: Path) -> Iterator[str]:
    """Yields an executable that runs ``chromium`` in a new network namespace whose loopback
    ``ports`` lead to the host's; the namespace and the relay end with the block."""
    name = f"podcap-ui-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    stop = threading.Event()
    listeners: list[socket.socket] = []
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        listeners = _listeners(Path("/run/netns") / name, ports)
        relay = threading.Thread(target=_relay, args=(listeners, stop), name="netns-relay",
                                 daemon=True)
        relay.start()
        launcher = scratch / "chromium-in-netns"
        launcher.write_text(f'#!/bin/sh\nexec nsenter --net=/run/netns/{name} -- {chromium} "$@"\n')
        launcher.chmod(0o755)
        yield str(launcher)
        stop.set()
        relay.join()
    finally:
        stop.set()
        for s in listeners:
            s.close()
        subprocess.run(["ip", "netns", "del", name], check=False)
