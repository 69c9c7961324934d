"""State series: captures, their counters, disk, kernel buffers and agents, read from the
service at each scrape (a custom collector), so a deleted capture's series cannot linger."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from podcap import __version__
from podcap.controller.principal import Principal
from podcap.controller.service import CaptureService
from podcap.errors import PodcapError
from podcap.model import Status

log = logging.getLogger("podcap.metrics")

# The collector reads every capture, as an admin would; it never acts.
SCRAPER = Principal(username="podcap-metrics", role="admin")



class StateCollector:
    """Captures, their counters, disk and kernel-buffer use, agents: read from the service at
    each scrape. A scrape lists every agent's captures (the same fan-out as ``GET
    /api/captures``, bounded by its deadline); an agent that does not answer contributes its
    last known state and is counted in ``podcap_scrape_unreachable_agents``."""

    def __init__(self, service: CaptureService) -> None:
        self.service = service

    def collect(self) -> Iterator[Metric]:
        svc = self.service
        yield _gauge("podcap_build_info", "podcap's version (value 1).", ["version"],
                     [([__version__], 1)])
        yield CounterMetricFamily("podcap_tcpdump_start_failures",
                                  "Capture starts that failed because tcpdump did not start "
                                  "listening (or its namespace could not be entered).",
                                  value=svc.start_failures)
        suppressed = CounterMetricFamily(
            "podcap_audit_suppressed", "Audit rows left out by the audit's rate limits, by "
            "event: failed logins (per source address and in all) and refusals (per user).",
            labels=["event"])
        for event, count in sorted(svc.audit.suppressed.items()):
            suppressed.add_metric([event], count)
        yield suppressed
        yield from _rejects(svc)
        yield from _inventory(svc)
        agents = svc.agent_infos()
        yield _gauge("podcap_agents", "Agents known to the controller, by state.", ["state"],
                     [(["connected"], sum(a.connected for a in agents)),
                      (["disconnected"], sum(not a.connected for a in agents))])
        yield _gauge("podcap_agent_connected", "1 while the agent is connected.",
                     ["agent_id", "node"], [([a.id, a.node], int(a.connected)) for a in agents])
        try:
            listing = svc.captures(SCRAPER)
        except PodcapError as exc:  # e.g. the database is away: the rest still answers
            log.warning("metrics: cannot list captures: %s", exc.message)
            return
        yield _gauge("podcap_scrape_unreachable_agents", "Agents that did not answer this "
                     "scrape's capture listing (their captures: last known state).", [],
                     [([], len(listing.unreachable))])
        captures = [owned.capture for owned in listing.items]
        by_status = {str(s): 0 for s in Status}
        for c in captures:
            by_status[str(c.status)] = by_status.get(str(c.status), 0) + 1
        yield _gauge("podcap_captures", "Captures kept, by status.", ["status"],
                     [([s], n) for s, n in sorted(by_status.items())])
        yield from _per_capture(captures)
        yield from self._per_node(captures, agents)

    def _per_node(self, captures: Sequence[Any], agents: Sequence[Any]) -> Iterator[Metric]:
        nodes = {a.id: a.node for a in agents}
        reserved: dict[str, int] = defaultdict(int)
        stored: dict[str, int] = defaultdict(int)
        buffers: dict[str, int] = defaultdict(int)
        for aid in nodes:
            reserved[aid] = stored[aid] = buffers[aid] = 0
        for c in captures:
            running = c.status is Status.RUNNING
            nodes.setdefault(c.agent_id, c.workload.node)
            reserved[c.agent_id] += c.spec.max_bytes if running else c.stats.bytes
            stored[c.agent_id] += c.stats.bytes
            buffers[c.agent_id] += c.spec.buffer_kib * 1024 if running else 0
        labels = ["agent_id", "node"]
        yield _gauge("podcap_disk_reserved_bytes", "Disk the node's budget counts as taken: a "
                     "running capture's whole ring, a stopped one's files.", labels,
                     [([a, nodes[a]], v) for a, v in sorted(reserved.items())])
        yield _gauge("podcap_disk_stored_bytes", "Bytes of capture files on the node's disk.",
                     labels, [([a, nodes[a]], v) for a, v in sorted(stored.items())])
        infos = [t.info() for _, t in sorted(self.service.agents.transports().items())]
        budgets = [([i.id, i.node], i.disk_budget) for i in infos if i.disk_budget]
        yield _gauge("podcap_disk_budget_bytes", "The node's disk budget for captures "
                     "(the agent's --disk-budget, as it said when it connected).", labels,
                     budgets)
        yield _gauge("podcap_kernel_buffer_bytes", "Kernel capture buffers (tcpdump -B) the "
                     "node's running captures pin.", labels,
                     [([a, nodes[a]], v) for a, v in sorted(buffers.items())])
        yield _gauge("podcap_kernel_buffer_limit_bytes", "Kernel buffer quota of each node "
                     "(quota_node_buffer_bytes; 0: no limit).", [],
                     [([], self.service.quotas.node_buffer_bytes)])


def _per_capture(captures: Sequence[Any]) -> Iterator[Metric]:
    labels = ["capture_id", "workload", "node"]
    rows = [([c.id, c.workload.name, c.workload.node], c) for c in captures]
    for name, what, read in (
            ("podcap_capture_packets_captured", "Packets tcpdump wrote (its 'captured').",
             lambda c: c.stats.captured),
            ("podcap_capture_packets_received", "Packets the filter matched (tcpdump's "
             "'received by filter').", lambda c: c.stats.received),
            ("podcap_capture_packets_dropped", "Packets the kernel dropped (tcpdump's "
             "'dropped by kernel').", lambda c: c.stats.dropped)):
        family = CounterMetricFamily(name, what + " Series live as long as the capture.",
                                     labels=labels)
        for values, c in rows:
            family.add_metric(values, read(c))
        yield family
    yield _gauge("podcap_capture_file_bytes", "Bytes of the capture's files on disk (a ring "
                 "overwrites, so this can fall).", labels,
                 [(v, c.stats.bytes) for v, c in rows])
    yield _gauge("podcap_capture_running", "1 while the capture runs, 0 once it ended.", labels,
                 [(v, int(c.status is Status.RUNNING)) for v, c in rows])
    yield _gauge("podcap_capture_start_time_seconds", "When the capture started (Unix time).",
                 labels, [(v, c.start_time) for v, c in rows])


def _rejects(svc: CaptureService) -> Iterator[Metric]:
    """What agents and joining peers sent that was refused (transport/rejects.py)."""
    dropped, hit, streams, joins = svc.agents.rejects.snapshot()
    for name, what, labels, rows in (
            ("podcap_agent_messages_dropped", "Messages (or list entries) of an agent that "
             "were dropped: invalid, or about a capture placed on another node; and workload ids "
             "another node reported first (listed under their node, never what the id "
             "resolves to).", ["agent_id", "node", "why"], dropped),
            ("podcap_agent_limits_hit", "Times an agent reported more workloads or captures "
             "than limits.AGENT_WORKLOADS_MAX / AGENT_CAPTURES_MAX (the answer was refused).",
             ["agent_id", "node", "what"], hit),
            ("podcap_agent_streams_refused", "Agent streams refused or cancelled: over the "
             "per-agent cap (sessions, uploads), silent past limits.STREAM_FIRST_MESSAGE_S, "
             "or refused on the data port (unauthenticated, bad_header, bad_ticket).",
             ["agent_id", "why"], streams),
            ("podcap_joins_refused", "Joins refused on the join port, by reason "
             "(rate_limited, or the error's kind).", ["why"],
             {(k,): v for k, v in joins.items()})):
        family = CounterMetricFamily(name, what, labels=labels)
        for key, value in sorted(rows.items()):  # type: ignore[attr-defined]
            family.add_metric(list(key), value)
        yield family


def _inventory(svc: CaptureService) -> Iterator[Metric]:
    """The views agents push (views.py): what was asked of them, how often a view had to be
    repaired, and how old each is. Lists ask no agent: ``op=list_*`` stays at 0."""
    commands = CounterMetricFamily(
        "podcap_agent_commands", "Commands the controller sent to a joined agent, by "
        "operation (lists are answered from the views: none are sent).",
        labels=["agent_id", "node", "op"])
    resyncs = CounterMetricFamily(
        "podcap_inventory_resyncs", "Snapshots asked of an agent because its view missed an "
        "update.", labels=["agent_id", "node"])
    synced = GaugeMetricFamily("podcap_inventory_synced_at_seconds", "When the agent's view "
                               "last changed (Unix time; 0: never).", labels=["agent_id", "node"])
    for aid, t in sorted(svc.agents.transports().items()):
        node = t.info().node
        for op, n in sorted(getattr(t, "commands", {}).items()):
            commands.add_metric([aid, node, op], n)
        resyncs.add_metric([aid, node], getattr(getattr(t, "pushed", None), "resyncs", 0))
        synced.add_metric([aid, node], t.view().state().synced_at)
    yield from (commands, resyncs, synced)


def _gauge(name: str, what: str, labels: list[str],
           rows: Iterable[tuple[list[str], float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, what, labels=labels)
    for values, value in rows:
        family.add_metric(values, value)
    return family

