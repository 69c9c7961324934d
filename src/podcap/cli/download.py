"""`podcap capture get`: stream a capture's pcap to disk with a progress bar, resuming a
download it left unfinished.

The body is written chunk by chunk to a partial file beside the target and renamed into place
only when complete, so a broken download never leaves a truncated pcap under the final name.
The partial file of a stopped capture is kept when the download breaks (Ctrl-C, a dropped
connection): ``.podcap-<capture id>-<etag>.part`` in the target's directory. The next ``get``
of that capture into that directory asks only for the rest (``Range``), with ``If-Range`` set to
the ETag it was started under: if the server's pcap is not that one any more, it answers with
the whole file and the partial one is dropped, so bytes of two different pcaps are never
spliced. The last byte already held is asked for again and compared, a second check.
``--no-resume`` starts over. A running capture's pcap has no ETag: nothing is kept or resumed.
``--pcapng`` asks for the pcapng form (names for the workloads' addresses, each packet's
direction, the workload on its interface: docs/WIRESHARK.md); it has no fixed size, so it is
never resumed.

The file name the server suggests is made safe, and the body copied, by cli/saving.py.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Annotated, BinaryIO

import httpx
import typer

from podcap.cli import output, saving
from podcap.cli.ids import resolve
from podcap.errors import FailedPrecondition, InvalidArgument

_TAG = re.compile(r'"([0-9a-f]{1,64})"')


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
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Continue a download of this stopped capture that broke "
        "(its .part file in the target directory), checked by ETag.")] = True,
    pcapng: Annotated[bool, typer.Option(
        "--pcapng", help="Write pcapng: workload names for addresses (tshark -N n), each "
        "packet's direction, the workload on its interface (podcap.lua's fields).")] = False,
) -> None:
    """Download a capture as one pcap (running captures too: what is on disk so far)."""
    api = ctx.obj.api
    capture_id = resolve(api, capture_id)
    expected = None if pcapng else api.capture(capture_id).get("size")  # pcapng: another size
    fmt = "pcapng" if pcapng else "pcap"
    if out == "-":
        with api.pcap(capture_id, limit, fmt=fmt) as response:
            saving.copy(response, sys.stdout.buffer, _total(response, expected, limit),
                        "stdout")
        sys.stdout.buffer.flush()
        return
    folder = _folder(out)
    held = _held_part(folder, capture_id) if limit is None and not pcapng else None
    if held is not None and not resume:
        held[0].unlink(missing_ok=True)
        held = None
    headers = {} if held is None else {"Range": f"bytes={held[1] - 1}-",
                                       "If-Range": f'"{held[2]}"'}
    with api.pcap(capture_id, limit, headers, fmt) as response:
        target = saving.target(out, saving.suggested_name(response, f"{capture_id}.{fmt}"),
                               force)
        written = _receive(response, folder, capture_id, held, expected, limit, target)
    output.info(f"Saved {target} ({output.size(written)})")


def _receive(response: httpx.Response, folder: Path, capture_id: str,
             held: tuple[Path, int, str] | None, expected: object, limit: int | None,
             target: Path) -> int:
    """Write the answer into the partial file (appended on 206), then rename it to ``target``.
    Kept on failure only when it can be resumed (a stopped capture: an ETag)."""
    match = _TAG.fullmatch(response.headers.get("etag", ""))
    tag = match.group(1) if match and limit is None else None
    sink: BinaryIO
    last = b""
    if held is not None and response.status_code == 206:
        part, have = held[0], held[1] - 1  # the answer starts with the last byte held again
        if not response.headers.get("content-range", "").startswith(f"bytes {have}-"):
            raise FailedPrecondition("the server answered another range than the one asked "
                                     f"for ({response.headers.get('content-range')})")
        sink = os.fdopen(os.open(part, os.O_RDWR | os.O_NOFOLLOW), "r+b")
        sink.seek(have)
        last = sink.read(1)
        sink.seek(have)
        output.info(f"Resuming {target.name} at {output.size(held[1])}")
    else:
        if held is not None:
            held[0].unlink(missing_ok=True)  # the pcap changed: start over, never splice
        have = 0
        part = folder / f".podcap-{capture_id}-{tag or 'x'}.part"
        # Private like the pcap it becomes; never through a link planted under that name.
        sink = os.fdopen(os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW,
                                 0o600), "wb")
    try:
        with sink:
            written = saving.copy(response, sink, _total(response, expected, limit, have),
                            target.name, have, last)
        os.replace(part, target)
    except saving.Mismatch:
        part.unlink(missing_ok=True)
        raise FailedPrecondition(f"the partial download {part.name} does not end as the "
                                 "capture's pcap does at that point; it was removed: run the "
                                 "command again") from None
    except BaseException:
        if tag is None:
            part.unlink(missing_ok=True)
        else:
            output.info(f"Download broken: {output.size(part.stat().st_size)} kept in "
                        f"{part}; run the same command to resume")
        raise
    return written


def _held_part(folder: Path, capture_id: str) -> tuple[Path, int, str] | None:
    """(path, size, etag) of a partial download of this capture left in ``folder``."""
    prefix = f".podcap-{capture_id}-"
    for part in sorted(folder.glob(prefix + "*.part")):
        tag = part.name[len(prefix):-len(".part")]
        size = part.stat().st_size
        if _TAG.fullmatch(f'"{tag}"') and size > 0:
            return part, size, tag
        part.unlink(missing_ok=True)  # unusable: no tag, or empty
    return None


def _folder(out: str | None) -> Path:
    """The directory the file goes to, known before the server names the file."""
    if out is None:
        return Path.cwd()
    path = Path(out).expanduser()
    if path.is_dir():
        return path
    if not path.parent.is_dir():
        raise InvalidArgument(f"directory {path.parent} does not exist")
    return path.parent


def _total(response: httpx.Response, expected: object, limit: int | None,
           have: int = 0) -> int | None:
    """The whole pcap's size: Content-Range's total on a resume, Content-Length when sent,
    else the size on disk (the merged pcap is at most that)."""
    whole = response.headers.get("content-range", "").rpartition("/")[2]
    if response.status_code == 206 and whole.isdecimal():
        return int(whole)
    header = response.headers.get("content-length")
    if header and header.isdecimal():
        return int(header) + have
    if isinstance(expected, int) and expected > 0:
        return min(expected, limit) if limit else expected
    return None
