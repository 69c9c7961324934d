"""`podcap capture get`: stream a capture's pcap to disk with a progress bar.

The body is written chunk by chunk to a temporary file beside the target and renamed into place
only when complete, so a broken download never leaves a truncated pcap under the final name.
The file name the server suggests (Content-Disposition) is reduced to a bare name: a server
must not be able to choose a path.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from email.message import Message
from pathlib import Path
from typing import Annotated

import httpx
import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from podcap import limits
from podcap.cli import output
from podcap.cli.ids import resolve
from podcap.errors import FailedPrecondition, InvalidArgument


def get(
    ctx: typer.Context,
    capture_id: Annotated[str, typer.Argument(metavar="ID", help="Capture id.")],
    out: Annotated[str | None, typer.Option(
        "--output", "-o", metavar="FILE",
        help="File or directory to write; '-' for stdout. Default: the server's file name "
        "in the current directory.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="Stop after the ring file that crosses this many bytes "
        "(NeuVector's rule: files are sent whole, oldest first).")
    ] = None,
) -> None:
    """Download a capture as one pcap (running captures too: what is on disk so far)."""
    api = ctx.obj.api
    capture_id = resolve(api, capture_id)
    expected = api.capture(capture_id).get("size")
    with api.pcap(capture_id, limit) as response:
        total = _total(response, expected, limit)
        if out == "-":
            _copy(response, sys.stdout.buffer, total, "stdout")
            sys.stdout.buffer.flush()
            return
        target = _target(out, _suggested_name(response, capture_id))
        if target.exists() and not force:
            raise FailedPrecondition(f"{target} exists; pass --force to overwrite it")
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as sink:
                written = _copy(response, sink, total, target.name)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    output.info(f"Saved {target} ({output.size(written)})")


def _copy(response: httpx.Response, sink: object, total: int | None, label: str) -> int:
    write = sink.write  # type: ignore[attr-defined]
    written = 0
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    quiet = not output.err_console.is_terminal  # a bar in a log file is noise, not progress
    with Progress(*columns, console=output.err_console, disable=quiet) as progress:
        task = progress.add_task(label, total=total)
        for chunk in response.iter_bytes(limits.DOWNLOAD_CHUNK_BYTES):
            write(chunk)
            written += len(chunk)
            progress.update(task, completed=written)
        progress.update(task, total=written, completed=written)
    return written


def _total(response: httpx.Response, expected: object, limit: int | None) -> int | None:
    """Content-Length when sent; else the size on disk (the merged pcap is at most that)."""
    header = response.headers.get("content-length")
    if header and header.isdigit():
        return int(header)
    if isinstance(expected, int) and expected > 0:
        return min(expected, limit) if limit else expected
    return None


_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


def _suggested_name(response: httpx.Response, capture_id: str) -> str:
    msg = Message()
    msg["content-disposition"] = response.headers.get("content-disposition", "")
    raw = msg.get_filename() or ""
    name = _SAFE.sub("_", raw.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    if not name:
        name = _SAFE.sub("_", capture_id) + ".pcap"
    return name


def _target(out: str | None, suggested: str) -> Path:
    if out is None:
        return Path.cwd() / suggested
    path = Path(out).expanduser()
    if path.is_dir():
        return path / suggested
    if not path.parent.is_dir():
        raise InvalidArgument(f"directory {path.parent} does not exist")
    return path
