"""The runtime interface every adapter implements, and helpers they share.

An adapter reports facts (pid, netns, network mode, labels); it never decides whether a
capture is allowed — the agent does that in one place (``podcap.agent.workloads``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from podcap.model import Workload


@dataclass(frozen=True)
class ExitStatus:
    """How a container stands after its process went (a recorder's exit trigger): what the
    runtime says now. ``reason`` is the runtime's word: ``OOMKilled`` (Docker's
    ``State.OOMKilled``, CRI's ``reason``), ``Error``, ``Completed`` or empty."""

    running: bool
    pid: int | None = None
    exit_code: int | None = None
    reason: str = ""


class ContainerRuntime(Protocol):
    """``list`` and ``get`` return containers; pid/netns are filled only for running ones.

    ``get`` takes a full id (``podcap.ids.full_workload_id``: ``InvalidArgument`` for
    anything else) and answers for exactly that workload, whatever names or prefixes the
    runtime itself would accept; it raises ``podcap.errors.NotFound`` for an unknown id. Both
    raise ``podcap.errors.Unavailable`` when the runtime cannot be reached.
    """

    name: str

    def list(self) -> list[Workload]: ...

    def get(self, workload_id: str) -> Workload: ...

    def close(self) -> None: ...

    # Optional (looked up with getattr): ``exit_status(workload_id) -> ExitStatus``, how a
    # container ended (``NotFound`` once it is gone); ``watch(wake, closing)``, its events.


def proc_start_time(pid: int) -> int | None:
    """Field 22 of /proc/<pid>/stat (start time in clock ticks): a pid plus this names one
    process for the machine's whole uptime, so a reused pid is never mistaken for the old one."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def proc_state(pid: int) -> str | None:
    """Field 3 of /proc/<pid>/stat ('R', 'S', 'Z', ...), None when the pid is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    return stat[stat.rfind(b")") + 2 :].split()[0].decode()


def process_alive(pid: int, start_time: int | None) -> bool:
    """True when ``pid`` is a live (non-zombie) process that started at ``start_time``."""
    state = proc_state(pid)
    if state is None or state in ("Z", "X"):
        return False
    return start_time is None or proc_start_time(pid) == start_time


def netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def processes(field: str = "cmdline") -> Iterator[tuple[int, list[bytes]]]:
    """(pid, /proc/<pid>/<field> split at NULs) of every process that can be read now: its
    argv by default, or its ``environ``. Processes that end meanwhile are left out."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdecimal():
            continue
        try:
            yield int(entry.name), (entry / field).read_bytes().split(b"\0")
        except OSError:
            continue
