"""State of one benchmark run: configuration, work directory, containers, the podcap server."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import Box, Config, Containers, Procs, Workdir
from bench.server import Podcap


@dataclass
class Context:
    cfg: Config
    work: Workdir = field(default_factory=Workdir)
    procs: Procs = field(default_factory=Procs)
    boxes: Containers = field(default_factory=Containers)
    commands: dict[str, list[str]] = field(default_factory=dict)
    _server: Podcap | None = None
    _others: dict[tuple[str, ...], Podcap] = field(default_factory=dict)
    _pair: tuple[Box, Box] | None = None
    _subst: dict[str, str] = field(default_factory=dict)

    def server(self) -> Podcap:
        """One ``podcap serve`` shared by the figures that need one (started on first use)."""
        if self._server is None or self._server.proc is None or \
                self._server.proc.poll() is not None:
            self._server = Podcap(self.work.path, "server").start()
            self._subst[str(self._server.data_dir)] = "$DATA"
            self._subst[self._server.url] = "$URL"
        return self._server

    def server_with(self, *extra_args: str) -> Podcap:
        """A second ``podcap serve`` with other options (e.g. ``--capture-priority 0``), one
        per set of options, started on first use."""
        srv = self._others.get(extra_args)
        if srv is None or srv.proc is None or srv.proc.poll() is not None:
            name = "server-" + "".join(a.strip("-")[:12] for a in extra_args)
            srv = self._others[extra_args] = Podcap(self.work.path, name,
                                                    list(extra_args)).start()
        return srv

    def pair(self) -> tuple[Box, Box]:
        """Two containers: A (captured, iperf3 server) and B (iperf3 client)."""
        if self._pair is None:
            a = self.boxes.run("a")
            b = self.boxes.run("b")
            self._pair = (a, b)
            self._subst.update({f"/proc/{a.pid}/": "/proc/<pid A>/",
                                f"/proc/{b.pid}/": "/proc/<pid B>/",
                                a.ip: "<ip A>", b.ip: "<ip B>"})
        return self._pair

    def record(self, figure: str, argv: list[str] | str) -> None:
        """Keep the exact command (with this run's paths/pids shown as placeholders)."""
        text = argv if isinstance(argv, str) else shlex.join(argv)
        text = text.replace(str(self.work.path), "$WORK")
        for old, new in self._subst.items():
            text = text.replace(old, new)
        cmds = self.commands.setdefault(figure, [])
        if text not in cmds:
            cmds.append(text)

    def sub(self, name: str) -> Path:
        return self.work.sub(name)

    def close(self) -> None:
        self.procs.end_all()
        for srv in [self._server, *self._others.values()]:
            if srv is not None:
                srv.stop()
        self._server = None
        self._others.clear()
        self.boxes.remove_all()
        self.work.cleanup()
