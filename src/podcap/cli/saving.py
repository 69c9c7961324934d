"""Saving a streamed answer to a file: where it goes, under which name, and the copy itself.

Shared by `podcap capture get` (cli/download.py, with its resume) and `podcap group get`
(cli/groups.py). The file name the server suggests (Content-Disposition) is reduced to a bare
name: a server must not be able to choose a path.
"""

from __future__ import annotations

import re
from email.message import Message
from pathlib import Path
from typing import BinaryIO

import httpx
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from podcap.cli import output
from podcap.errors import FailedPrecondition, InvalidArgument

_SAFE = re.compile(r"[^A-Za-z0-9._+-]")


class Mismatch(Exception):
    """The bytes a resume asked for again are not the ones held: not the same pcap."""


def copy(response: httpx.Response, sink: BinaryIO, total: int | None, label: str,
         have: int = 0, first: bytes = b"") -> int:
    """Copy the body after ``have`` bytes already held, with a progress bar on a terminal; the
    size of the result. ``first``: what the body must begin with (a resume's overlap), else
    ``Mismatch``."""
    written = have
    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn())
    quiet = not output.err_console.is_terminal  # a bar in a log file is noise, not progress
    with Progress(*columns, console=output.err_console, disable=quiet) as progress:
        task = progress.add_task(label, total=total, completed=have)
        for chunk in response.iter_bytes():  # as it arrives: a break loses nothing held
            if first:
                if not chunk.startswith(first[:len(chunk)]):
                    raise Mismatch
                first = first[len(chunk):]
            sink.write(chunk)
            written += len(chunk)
            progress.update(task, completed=written)
        progress.update(task, total=written, completed=written)
    return written


def suggested_name(response: httpx.Response, fallback: str) -> str:
    """The server's file name as a bare, safe name; ``fallback`` (made safe) when it names
    none."""
    msg = Message()
    msg["content-disposition"] = response.headers.get("content-disposition", "")
    raw = msg.get_filename() or ""
    name = _SAFE.sub("_", raw.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".")
    return name or _SAFE.sub("_", fallback)


def target(out: str | None, suggested: str, force: bool) -> Path:
    """The file to write: ``out`` (a file, or a directory for the suggested name), else the
    suggested name here; an existing file only with ``force``."""
    if out is None:
        path = Path.cwd() / suggested
    else:
        path = Path(out).expanduser()
        if path.is_dir():
            path = path / suggested
        elif not path.parent.is_dir():
            raise InvalidArgument(f"directory {path.parent} does not exist")
    if path.exists() and not force:
        raise FailedPrecondition(f"{path} exists; pass --force to overwrite it")
    return path
