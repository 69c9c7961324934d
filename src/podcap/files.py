"""Writing a file whole: keys and certificates, capture records, the CLI's login file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, mode: int, sync_dir: bool = True) -> None:
    """Write beside, fsync, rename: readers see the old file or the whole new one, and the
    mode is set at creation (a key is never readable by others, not even for a moment).
    ``sync_dir`` makes the rename itself survive a power cut (a new key must; a capture's
    record, rewritten every few seconds, only needs to be whole)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if not sync_dir:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
