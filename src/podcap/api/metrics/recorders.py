"""Recorder series (issue 21), read at each scrape: members recording, bytes held by rings and
by snapshots, snapshots kept, and triggers by source and outcome (this controller's count
since it started)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from podcap.controller.recorders import SOURCES, RecorderService
from podcap.errors import PodcapError

log = logging.getLogger("podcap.metrics")


class RecorderCollector:
    def __init__(self, recorders: RecorderService) -> None:
        self.recorders = recorders

    def collect(self) -> Iterator[Metric]:
        r = self.recorders
        triggers = CounterMetricFamily(
            "podcap_recorder_triggers", "Recorder triggers per member, by source (admin, "
            "alert, exit, rate, drops) and outcome (frozen, extended, cooldown, duplicate, "
            "failed).", labels=["source", "outcome"])
        for source in SOURCES:
            triggers.add_metric([source, "frozen"], r.triggers.get((source, "frozen"), 0))
        for (source, outcome), n in sorted(r.triggers.items()):
            if outcome != "frozen":
                triggers.add_metric([source, outcome], n)
        yield triggers
        members = GaugeMetricFamily("podcap_recorder_members", "Containers recording, by "
                                    "recorder.", labels=["recorder"])
        held = GaugeMetricFamily("podcap_recorder_bytes", "Bytes held, by recorder and kind "
                                 "(ring: recording now; snapshot: frozen).",
                                 labels=["recorder", "kind"])
        snaps = GaugeMetricFamily("podcap_recorder_snapshots", "Snapshots kept, by recorder.",
                                  labels=["recorder"])
        try:
            views = [r._view(row) for row in r._rows()]
        except PodcapError as exc:
            log.warning("metrics: cannot list recorders: %s", exc.message)
            views = []
        for v in views:
            name = v.row.name
            members.add_metric([name], len(v.rings))
            held.add_metric([name, "ring"], sum(g.owned.capture.stats.bytes for g in v.rings))
            held.add_metric([name, "snapshot"], sum(o.capture.stats.bytes
                                                    for _, o in v.snapshots))
            snaps.add_metric([name], len(v.snapshots))
        yield members
        yield held
        yield snaps
