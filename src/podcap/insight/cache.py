"""Per-file partial results beside the capture (``<capture dir>/insight/<file>.json``).

Completed ring files never change, so their entry is final once its size and mtime match the
file. The file tcpdump is writing is read on: an entry remembers where its last pass stopped,
and the next pass resumes there when the file still starts with the same bytes (a ring wrap
truncates and rewrites a file: its first record then differs and the entry is redone).
Entries are written atomically (temp file + rename), so a reader never sees half of one.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from podcap.insight.partial import Partial

HEAD_BYTES = 24 + 16  # global header + first record header: which packets the file holds
SUFFIX = ".json"


@dataclass
class Entry:
    size: int
    mtime_ns: int
    head: str  # hex of the file's first HEAD_BYTES when read
    offset: int  # where the last pass stopped (after the last complete record)
    partial: Partial

    def current(self, stat: os.stat_result) -> bool:
        """The entry covers the file as it is now."""
        return self.size == stat.st_size and self.mtime_ns == stat.st_mtime_ns

    def to_json(self) -> dict[str, object]:
        return {"size": self.size, "mtime_ns": self.mtime_ns, "head": self.head,
                "offset": self.offset, "partial": self.partial.to_json()}

    @classmethod
    def from_json(cls, data: dict) -> Entry:
        return cls(size=int(data["size"]), mtime_ns=int(data["mtime_ns"]), head=data["head"],
                   offset=int(data["offset"]), partial=Partial.from_json(data["partial"]))


def cache_dir(capture_dir: Path) -> Path:
    return capture_dir / "insight"


def path_of(cache: Path, pcap: Path) -> Path:
    return cache / (pcap.name + SUFFIX)


def load(cache: Path, pcap: Path) -> Entry | None:
    try:
        return Entry.from_json(json.loads(path_of(cache, pcap).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None  # none yet, or unreadable: the worker redoes it


def save(cache: Path, pcap: Path, entry: Entry) -> None:
    cache.mkdir(mode=0o700, exist_ok=True)
    path = path_of(cache, pcap)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(entry.to_json(), separators=(",", ":")))
    os.replace(tmp, path)


def head(pcap: Path) -> str:
    with open(pcap, "rb") as fh:
        return fh.read(HEAD_BYTES).hex()


def forget_missing(cache: Path, names: set[str]) -> None:
    """Drop entries of files the ring no longer has."""
    if not cache.is_dir():
        return
    for entry in cache.glob("*" + SUFFIX):
        if entry.name[:-len(SUFFIX)] not in names:
            entry.unlink(missing_ok=True)
