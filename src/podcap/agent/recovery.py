"""Find the tcpdump processes a previous agent left running, by what they write to.

A tcpdump of ours writes ``-w <captures>/<capture id>/files/...``; scanning /proc for that
argument finds it whether the old agent recorded its pid or died first.
"""

from __future__ import annotations

from pathlib import Path

from podcap.runtime.base import proc_start_time, process_alive


def find_tcpdumps(captures_root: Path) -> dict[str, tuple[int, int | None]]:
    """{capture id: (pid, start time)} of live tcpdump processes writing under the root."""
    found: dict[str, tuple[int, int | None]] = {}
    prefix = str(captures_root) + "/"
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not argv or not argv[0].endswith(b"tcpdump") or b"-w" not in argv:
            continue
        at = argv.index(b"-w") + 1
        out = argv[at].decode(errors="replace") if at < len(argv) else ""
        if not out.startswith(prefix):
            continue
        cid = out[len(prefix):].split("/", 1)[0]
        pid = int(entry.name)
        start = proc_start_time(pid)
        if process_alive(pid, start):
            found[cid] = (pid, start)
    return found

