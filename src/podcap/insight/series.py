"""The live rate series: tcpdump's counters, one point a second, per capture ("series").

The agent's watcher already asks every running tcpdump for its counters each second
(``Agent._refresh_live``); this keeps them as a bounded series (limits.SERIES_POINTS_MAX points
per capture, limits.SERIES_CAPTURES_MAX captures, oldest forgotten first) so the UI can chart
packets/s and bytes/s and mark kernel drops. When a capture ends its series is written beside it
(``series.json``), so the chart of a stopped capture outlives the agent's memory: a restart, or
newer captures pushing it out. A running capture's series starts anew with the agent.

Bytes are what tcpdump has written so far, counted from the ring files' growth: a ring wrap
truncates a file, whose new size then counts as new bytes, so the total keeps rising.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from pathlib import Path

from podcap import limits
from podcap.errors import InvalidArgument
from podcap.model import Capture, Stats

log = logging.getLogger("podcap.agent")

FILE = "series.json"  # an ended capture's series, beside its record

Point = tuple[float, int, int, int]  # time, captured, dropped, bytes written


class _Series:
    def __init__(self) -> None:
        self.points: deque[Point] = deque(maxlen=limits.SERIES_POINTS_MAX)
        self.sizes: dict[str, int] = {}
        self.written = 0


class LiveSeries:
    def __init__(self, dir_of: Callable[[str], Path] | None = None) -> None:
        self._lock = threading.Lock()
        self._series: OrderedDict[str, _Series] = OrderedDict()
        self._dir_of = dir_of  # a capture's directory, for its FILE (None: memory only)

    def record(self, cid: str, now: float, stats: Stats, files_dir: Path) -> None:
        """One point: tcpdump's counters and the bytes written since the capture started."""
        sizes = _sizes(files_dir)
        with self._lock:
            series = self._series.get(cid)
            if series is None:
                series = self._series[cid] = _Series()
                while len(self._series) > limits.SERIES_CAPTURES_MAX:
                    self._series.popitem(last=False)
            for name, size in sizes.items():
                before = series.sizes.get(name, 0)
                series.written += size - before if size >= before else size
            series.sizes = sizes
            series.points.append((now, stats.captured, stats.dropped, series.written))

    def keep(self, cid: str) -> None:
        """Write an ended capture's series beside it (a full disk only costs the chart)."""
        if self._dir_of is None:
            return
        with self._lock:
            series = self._series.get(cid)
            points = list(series.points) if series else []
        if not points:
            return
        path = self._dir_of(cid) / FILE
        part = path.with_name(FILE + ".part")
        try:
            part.write_text(json.dumps(points))
            os.replace(part, path)
        except OSError as exc:
            log.warning("capture %s: rate series not kept (%s)", cid, exc)

    def _points(self, cid: str) -> list[Point]:
        with self._lock:
            series = self._series.get(cid)
            if series is not None:
                return list(series.points)
        if self._dir_of is None:
            return []
        try:
            kept = json.loads((self._dir_of(cid) / FILE).read_text())
            return [(float(t), int(c), int(d), int(b)) for t, c, d, b in kept]
        except (OSError, ValueError, TypeError):
            return []

    def forget(self, cid: str) -> None:
        with self._lock:
            self._series.pop(cid, None)

    def document(self, capture: Capture, params: dict[str, str]) -> dict[str, object]:
        """``since``: only points after this time (a polling client asks for what is new)."""
        text = params.get("since") or "0"
        try:
            since = float(text)
        except ValueError as exc:
            raise InvalidArgument("since must be a Unix time in seconds") from exc
        points = [p for p in self._points(capture.id) if p[0] > since]
        return {"capture_id": capture.id, "status": str(capture.status),
                "interval": limits.STATS_INTERVAL_S, "max_points": limits.SERIES_POINTS_MAX,
                "fields": ["time", "captured", "dropped", "bytes"],
                "points": [list(p) for p in points]}


def _sizes(files_dir: Path) -> dict[str, int]:
    sizes: dict[str, int] = {}
    try:
        with os.scandir(files_dir) as entries:
            for entry in entries:
                try:
                    sizes[entry.name] = entry.stat().st_size
                except OSError:
                    continue
    except OSError:
        pass
    return sizes
