"""The low-priority process that brings a capture's insight cache up to date.

``python -m podcap.insight.worker FILES_DIR CACHE_DIR`` lowers its own CPU priority
(``nice`` limits.INSIGHT_NICE) before reading anything, so tcpdump and the agent always get
the CPU first: a summary may come late, a capture never loses packets to it. A separate
process, not a thread, because a Python thread busy reading packets would hold the
interpreter lock the agent's own threads (watcher, API) need. One worker per capture at a
time: a second one finds the lock taken and leaves.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
from pathlib import Path

from podcap import limits
from podcap.capture import tcpdump
from podcap.insight import cache, reader
from podcap.insight.partial import Partial
from podcap.pcap import ring

log = logging.getLogger("podcap.insight")


def update(files_dir: Path, cache_dir: Path) -> int:
    """Read what is new in each ring file into its cache entry; return files (re)read."""
    done = 0
    paths = ring.ring_files(files_dir, tcpdump.RING_PREFIX)
    for path in paths:
        try:
            stat = path.stat()
            entry = cache.load(cache_dir, path)
            if entry is not None and entry.current(stat):
                continue
            head = cache.head(path)
            if entry is not None and entry.head == head and stat.st_size >= entry.offset:
                partial, offset = entry.partial, entry.offset  # the same file, grown: read on
            else:
                partial, offset = Partial(), 0
            partial, offset = reader.read(path, partial, offset)
            cache.save(cache_dir, path, cache.Entry(size=stat.st_size, mtime_ns=stat.st_mtime_ns,
                                                    head=head, offset=offset, partial=partial))
            done += 1
        except (OSError, reader.NotPcap):
            continue  # rotated away, removed, or no header yet: the next pass sees it
    cache.forget_missing(cache_dir, {p.name for p in paths})
    return done


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m podcap.insight.worker FILES_DIR CACHE_DIR", file=sys.stderr)
        return 2
    os.nice(limits.INSIGHT_NICE)
    files_dir, cache_dir = Path(args[0]), Path(args[1])
    try:
        cache_dir.mkdir(mode=0o700, exist_ok=True)
        lock = open(cache_dir / ".lock", "w")  # noqa: SIM115 - held until exit
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return 0  # another worker has it, or the capture was removed
    update(files_dir, cache_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
