"""A follow-stream reader for tests: reads ``?follow=true`` in a thread and notes when each
packet arrived, so tests can measure packet -> client latency and compare streams."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import httpx

from podcap.pcap import format


@dataclass
class Followed:
    url: str
    headers: dict[str, str]
    params: dict[str, str]
    pause_after: int | None = None  # stop reading after this many bytes ...
    pause_s: float = 0.0  # ... for this long (a slow reader), or until `resume` is set
    resume: threading.Event | None = None
    paused: threading.Event = field(default_factory=threading.Event)  # set once it pauses
    raw: bytearray = field(default_factory=bytearray)
    chunks: list[bytes] = field(default_factory=list)
    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (packet ts, arrival)
    status: int | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None
    ended: threading.Event = field(default_factory=threading.Event)
    opened: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _parsed: int = 24

    def start(self) -> Followed:
        threading.Thread(target=self._run, daemon=True).start()
        assert self.opened.wait(15), "follow stream did not open"
        return self

    def close(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=httpx.Timeout(30.0, read=None)) as http, \
                    http.stream("GET", self.url, headers=self.headers,
                                params=self.params) as response:
                self.status = response.status_code
                self.response_headers = dict(response.headers)
                self.opened.set()
                if response.status_code != 200:
                    response.read()
                    self.raw += response.content
                    return
                paused = False
                for chunk in response.iter_raw():
                    if self._stop.is_set():
                        return
                    now = time.time()
                    self.chunks.append(chunk)
                    self.raw += chunk
                    self._parse(now)
                    if (not paused and self.pause_after is not None
                            and len(self.raw) >= self.pause_after):
                        paused = True
                        self.paused.set()
                        if self.resume is None:
                            time.sleep(self.pause_s)
                        else:
                            self.resume.wait(self.pause_s)
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.error = exc
        finally:
            self.opened.set()
            self.ended.set()

    def _parse(self, now: float) -> None:
        data = self.raw
        if len(data) < 24 or data[:4] != b"\xd4\xc3\xb2\xa1":
            return
        for at, sec, usec, caplen, _ in format.walk(data, "<", self._parsed):
            self.arrivals.append((sec + usec / 1e6, now))
            self._parsed = at + 16 + caplen


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
