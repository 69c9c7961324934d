"""The agent's capture table on local disk: one directory per capture, a JSON record in it.

The record is written atomically (temp file + rename) on every state change, so a kill -9
between two writes leaves the previous record intact. Paths come only from validated ids.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from podcap.capture.tcpdump import RING_PREFIX
from podcap.files import write_atomic
from podcap.ids import capture_id
from podcap.model import Capture
from podcap.pcap import ring

log = logging.getLogger("podcap.agent")

RECORD = "capture.json"
LOG = "tcpdump.log"
FILES = "files"


class CaptureStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o700)

    def dir(self, cid: str) -> Path:
        return self.root / capture_id(cid)

    def files_dir(self, cid: str) -> Path:
        return self.dir(cid) / FILES

    def log_path(self, cid: str) -> Path:
        return self.dir(cid) / LOG

    def ring_files(self, cid: str) -> list[Path]:
        """The capture's ring files, oldest first (pcap/ring.py)."""
        return ring.ring_files(self.files_dir(cid), RING_PREFIX)

    def create(self, capture: Capture) -> None:
        files = self.files_dir(capture.id)
        files.mkdir(parents=True, mode=0o700)
        os.chmod(self.dir(capture.id), 0o700)
        self.save(capture)

    def save(self, capture: Capture) -> None:
        write_atomic(self.dir(capture.id) / RECORD, json.dumps(capture.to_dict()).encode(),
                     0o600, sync_dir=False)

    def load_all(self) -> list[Capture]:
        captures = []
        for entry in sorted(self.root.iterdir()):
            record = entry / RECORD
            if not record.is_file():
                continue
            try:
                captures.append(Capture.from_dict(json.loads(record.read_text())))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("unreadable capture record %s (%s); left on disk untouched",
                          record, exc)
        return captures

    def delete(self, cid: str) -> None:
        shutil.rmtree(self.dir(cid), ignore_errors=True)
