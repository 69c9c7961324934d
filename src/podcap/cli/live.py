"""`podcap capture live`: start a capture and write its packets to stdout as they arrive.

Made for pipes: ``podcap capture live web | wireshark -k -i -`` or ``| tshark -r -``. The
stream is the server's follow download (``?follow=true``, docs/API.md). Ctrl-C, or the reader
closing the pipe (Wireshark quit), stops the capture; it stays on the server for download unless
``--rm``. A closed pipe is noticed even while no packet comes: a watcher polls stdout for the
error a pipe reports once its reader is gone.
"""

from __future__ import annotations

import _thread
import os
import select
import sys
import threading
from typing import Annotated, BinaryIO
from urllib.parse import quote

import typer

from podcap import limits
from podcap.cli import output, spec_options, workloads
from podcap.cli.client import ApiClient
from podcap.cli.ids import resolve
from podcap.errors import InvalidArgument, PodcapError

Opt = typer.Option


def live(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(metavar="NAME|ID", help="Workload name or id "
                                          "(`podcap ps`).")],
    filter: Annotated[str | None, spec_options.option("filter")] = None,
    duration: Annotated[int | None, spec_options.option(
        "duration", help="Seconds, 0 = until stopped (Ctrl-C or the reader quits).")] = 0,
    file_number: Annotated[int | None, spec_options.option(
        "file_number", help="Ring of this many files on the node (default "
        f"{limits.FILE_NUMBER_DEFAULT}).")] = None,
    file_size_mb: Annotated[int | None, spec_options.option(
        "file_size_mb", help=f"MB per ring file (default {limits.FILE_SIZE_MB_DEFAULT}).")
    ] = None,
    pcapng: Annotated[bool, Opt(
        "--pcapng", help="Write pcapng: data the ring overwrote before it was sent shows as "
        "a packet comment (plain pcap shows it as a marker frame).")] = False,
    rm: Annotated[bool, Opt("--rm", help="Delete the capture on the server when done.")] = False,
) -> None:
    """Capture a workload and write the packets to stdout as they arrive (a pipe)."""
    if sys.stdout.isatty():
        raise InvalidArgument("stdout is a terminal: pipe it, e.g. `podcap capture live "
                                 "NAME | wireshark -k -i -` or `| tshark -r -`")
    spec = spec_options.values(locals())
    api = ctx.obj.api
    workload = workloads.resolve(api, target)
    cap = api.start(str(workload["id"]), **spec)
    cid = str(cap["id"])
    output.info(f"Capturing {workloads.describe(workload)}; capture id {cid} (Ctrl-C stops)")
    sink = sys.stdout.buffer
    watcher = PipeWatcher(sink)
    how = "the capture ended"
    try:
        watcher.start()
        copy_follow(api, cid, sink, "pcapng" if pcapng else "pcap")
    except KeyboardInterrupt:
        how = "the pipe closed" if watcher.closed.is_set() else "interrupted"
    except BrokenPipeError:
        how = "the pipe closed"
    finally:
        watcher.stop()
        if how != "the capture ended":
            _quiet_stdout()
        _finish(api, cid, rm, how)


def follow(
    ctx: typer.Context,
    capture_id: Annotated[str, typer.Argument(metavar="ID", help="Capture id or a unique "
                                              "prefix of it (`podcap capture ls`).")],
    from_now: Annotated[bool, Opt("--from-now", help="Only packets from now on (default: "
                                  "from the capture's start).")] = False,
    pcapng: Annotated[bool, Opt("--pcapng", help="Write pcapng (gaps as packet comments).")
                      ] = False,
) -> None:
    """Write a capture's packets to stdout as they arrive, until it ends (a pipe). Unlike
    `live`, Ctrl-C or a closed pipe only stops reading: the capture goes on."""
    if sys.stdout.isatty():
        raise InvalidArgument("stdout is a terminal: pipe it, e.g. `podcap capture follow ID "
                              "| wireshark -k -i -`")
    api = ctx.obj.api
    cid = resolve(api, capture_id)
    watcher = PipeWatcher(sys.stdout.buffer)
    try:
        watcher.start()
        copy_follow(api, cid, sys.stdout.buffer, "pcapng" if pcapng else "pcap",
                    "now" if from_now else "start")
    except (KeyboardInterrupt, BrokenPipeError):
        _quiet_stdout()
    finally:
        watcher.stop()


def copy_follow(api: ApiClient, cid: str, sink: BinaryIO, fmt: str = "pcap",
                start: str = "start") -> int:
    """Stream the capture's follow download into ``sink``; returns the bytes written. Ends
    when the capture ends."""
    return pipe(api, f"/api/captures/{quote(cid, safe='')}/pcap", sink,
                {"follow": "true", "format": fmt, "from": start})


def pipe(api: ApiClient, url: str, sink: BinaryIO, params: dict[str, str]) -> int:
    """Copy a followed stream (``ApiClient.stream``) into a pipe as it arrives, flushing every
    chunk so the reader sees each packet now; returns the bytes written. A reader that has
    gone raises BrokenPipeError, which closes the stream."""
    written = 0
    with api.stream(url, params) as response:
        for chunk in response.iter_raw():
            if chunk:
                sink.write(chunk)
                sink.flush()
                written += len(chunk)
    return written


def _finish(api: ApiClient, cid: str, rm: bool, how: str) -> None:
    try:
        cap = api.capture(cid)
        if cap.get("status") == "running":
            cap = api.stop(cid)
        stats = cap.get("stats") or {}
        output.info(f"{how}: capture {cid} {cap.get('status')}, {stats.get('captured', 0)} "
                    f"packets, {stats.get('dropped', 0)} dropped by kernel")
        if rm:
            api.remove(cid)
            output.info(f"capture {cid} removed")
        else:
            output.info(f"download it with `podcap capture get {cid}`")
    except PodcapError as exc:
        output.error(f"could not stop capture {cid}: {exc.message}; stop it with "
                     f"`podcap capture stop {cid}`")


def _quiet_stdout() -> bool:
    """Point stdout at /dev/null: after a broken pipe, Python's final flush must not fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except OSError:
        return False
    return True


class PipeWatcher:
    """Interrupts the main thread when stdout is a pipe whose reader has gone (POLLERR), so a
    quiet capture stops as soon as Wireshark or tshark quits, not at the next packet."""

    def __init__(self, sink: BinaryIO) -> None:
        try:
            self.fd: int | None = sink.fileno()
        except (OSError, ValueError):
            self.fd = None  # not a real file (a test's captured output): nothing to watch
        self.closed = threading.Event()
        self._stop = threading.Event()

    def start(self) -> None:
        if self.fd is None:
            return
        threading.Thread(target=self._run, daemon=True, name="podcap-pipe-watch").start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        assert self.fd is not None
        poller = select.poll()
        poller.register(self.fd, select.POLLERR | select.POLLHUP)
        while not self._stop.wait(0.2):
            events = poller.poll(0)
            if any(ev & (select.POLLERR | select.POLLHUP) for _, ev in events):
                self.closed.set()
                _thread.interrupt_main()
                return
