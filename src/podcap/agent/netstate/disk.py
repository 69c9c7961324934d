"""The snapshot on disk: ``netstate.json`` beside the capture's record, written atomically and
deleted with it; a capture without one (an older podcap, a failed snapshot) says why."""

from __future__ import annotations

import json
import os
from pathlib import Path

from podcap.agent.netstate.parse import Doc
from podcap.errors import NotFound

FILE = "netstate.json"


def save(capture_dir: Path, doc: Doc) -> None:
    """Atomically (temp file + rename), like the capture record."""
    if not capture_dir.is_dir():
        return  # removed meanwhile
    path = capture_dir / FILE
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    os.replace(tmp, path)


def load(capture_dir: Path, cid: str) -> Doc:
    try:
        data = json.loads((capture_dir / FILE).read_text())
    except FileNotFoundError:
        raise NotFound(
            f"capture {cid} has no network-state snapshot: it was started by a podcap "
            "without snapshots, or taking it failed (the agent's log says why)") from None
    except (OSError, ValueError) as exc:
        raise NotFound(f"the network-state snapshot of capture {cid} is unreadable: {exc}"
                       ) from None
    if not isinstance(data, dict):
        raise NotFound(f"the network-state snapshot of capture {cid} is unreadable")
    return data
