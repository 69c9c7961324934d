"""The leader's series (several replicas, controller/leader.py): whether this replica leads
the background work now, its epoch, how often it became the leader, and the actions its fence
refused (a replica that lost the lease mid-action). Read at each scrape."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from podcap.controller.leader import Leader


class LeaderCollector:
    def __init__(self, leader: Leader) -> None:
        self.leader = leader

    def collect(self) -> Iterator[Metric]:
        leader = self.leader
        yield GaugeMetricFamily("podcap_leader", "1 while this replica leads the background "
                                "work (group members, retention).", value=int(leader.is_leader))
        yield GaugeMetricFamily("podcap_leader_epoch", "The lease's epoch while this replica "
                                "holds it, else 0.", value=leader.epoch)
        yield CounterMetricFamily("podcap_leader_terms", "Times this replica became the leader.",
                                  value=getattr(leader, "terms", 1))
        yield CounterMetricFamily("podcap_leader_fenced_out", "Background actions not taken "
                                  "because this replica had lost the lease.",
                                  value=getattr(leader, "fenced_out", 0))
