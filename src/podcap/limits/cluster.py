"""Agents and controllers: joining, sessions, the inventory, uploads, what one node may report,
and the replicas' lease."""

import os as _os
from typing import Final

from podcap.limits.capture import FOLLOW_KEEPALIVE_S

# Cluster join tokens: a token is a password for a node, so it lives briefly by default; up to
# 30 days covers a node pool that is scaled up over weeks. Many uses let one token join a pool.
JOIN_TOKEN_TTL_S_DEFAULT: Final = 3600
JOIN_TOKEN_TTL_S_MIN: Final = 60  # below a minute nobody can copy the token to a node in time
JOIN_TOKEN_TTL_S_MAX: Final = 30 * 86_400
JOIN_TOKEN_USES_DEFAULT: Final = 1
JOIN_TOKEN_USES_MIN: Final = 1
JOIN_TOKEN_USES_MAX: Final = 1000  # bounds what one leaked token can join
# A CSR with an EC or RSA-4096 key is about 1-2 KiB; anything far larger is not ours.
CSR_MAX_BYTES: Final = 16 * 1024

# Cluster: agents dial the controller (docs/CLUSTER.md).
AGENT_PORT_DEFAULT: Final = 10444  # mutual TLS: sessions (gRPC)
JOIN_PORT_DEFAULT: Final = 10445  # server TLS only: Join (an agent has no certificate yet)
DATA_PORT_DEFAULT: Final = 10446  # mutual TLS: downloads' bytes (transport/data/)
HEARTBEAT_INTERVAL_S: Final = 3.0  # agent → controller when nothing else is said
# No message for this long marks an agent disconnected; with the heartbeat above, a cut link
# shows within 10-11 s (the issue asks for 15).
HEARTBEAT_TIMEOUT_S: Final = 10.0
AGENT_RECORDS_REFRESH_S: Final = 2.0  # a replica reads the agents table (joins, revocations)
CONTROLLER_RESOLVE_S: Final = 5.0  # an agent looks its controllers' name up again this often
RECONNECT_MAX_S: Final = 2.0  # an agent retries at most this far apart: back within seconds
COMMAND_TIMEOUT_S: Final = 10.0  # start, stop, remove on a remote agent
# A list asks every agent in parallel; one that has not answered by then is named as
# unreachable and the list goes on without it (lists answer within 2 s during a partition).
FANOUT_DEADLINE_S: Final = 1.2
# The inventory (views.py, agent/feed.py): agents push, the controller answers lists from its
# views (issue 19; a list that asked every node cost 110 ms p50 at 10 nodes, figure 6).
INVENTORY_CAPTURE_POLL_S: Final = 0.2  # the agent's table looked at: status changes go at once
INVENTORY_COUNTERS_S: Final = 1.0  # a running capture's counters are sent at most this often
# A runtime with no event stream (CRI) is relisted this often, only differences sent: a new
# container is listed within 2 s.
INVENTORY_RELIST_S: Final = 1.0
# Deleted captures a view remembers, so an update older than the delete cannot list one again.
VIEW_FORGOTTEN_MAX: Final = 10_000
# A runtime whose events wake the feed (Docker) is relisted this often all the same, in case
# an event was missed.
INVENTORY_WATCHED_RELIST_S: Final = 30.0
# A start naming what no view holds makes the controller ask the connected agents to look now
# (once), at most this long, before it says "not found".
INVENTORY_SYNC_S: Final = 1.2  # as FANOUT_DEADLINE_S: the fan-out waits no longer
# Nodes whose workloads changed since the last list, up to which the list is mended in place
# (their rows out, their new rows in: a few ms at 10,000 workloads) rather than merged whole
# (30 ms or more; controller/inventory.py).
INVENTORY_MERGE_IN_PLACE_MAX: Final = 64
# /api/workloads?limit=: at most this many a page (no limit given: all of them, as before).
WORKLOADS_PAGE_MAX: Final = 1_000
UPLOAD_CHUNK_BYTES: Final = 1024 * 1024  # pcap bytes per data frame (transport/data/wire.py)
# A download with no chunk for this long fails (either side). PODCAP_UPLOAD_IDLE_S overrides it
# for a process (tests prove the follow keepalive without waiting 30 s); it must stay above
# FOLLOW_KEEPALIVE_S, or every quiet follow stream would be cut.
UPLOAD_IDLE_S: Final = float(_os.environ.get("PODCAP_UPLOAD_IDLE_S") or 30.0)
if UPLOAD_IDLE_S <= FOLLOW_KEEPALIVE_S:
    raise ValueError(f"PODCAP_UPLOAD_IDLE_S={UPLOAD_IDLE_S:g} must exceed the follow keepalive "
                     f"({FOLLOW_KEEPALIVE_S:g} s)")
# gRPC message size limit, both directions: a workload list of a few thousand containers.
GRPC_MESSAGE_MAX_BYTES: Final = 16 * 1024 * 1024
# Threads of the agent listener's pool (made as needed): each join holds one while it runs, and
# a session's blocking steps (its attach) borrow one. Sessions hold none (one event loop serves
# them all: transport/grpc/gateway_session.py); when each held one, 256 capped a controller at
# about 250 nodes. Downloads come on the data port (transport/data/), on the HTTP loop.
GRPC_WORKERS: Final = 1_200

# A joined node may be compromised (docs/CLUSTER.md, "A compromised node"): what one agent may
# report and hold is bounded, so one node can neither slow nor fill the controller for everyone.
# Kubernetes runs at most 110 pods a node by default (a few hundred when raised): 5,000
# workloads is far above any real node, and a 60,000-workload list took 4-10 s a request.
AGENT_WORKLOADS_MAX: Final = 5_000
# Captures one node may report (running ones are capped at MAX_RUNNING_CAPTURES; stopped ones
# only by its disk budget).
AGENT_CAPTURES_MAX: Final = 10_000
AGENT_TEXT_MAX_CHARS: Final = 1024  # names, states, reasons, images: any one text field
AGENT_LABEL_VALUE_MAX_CHARS: Final = 4096  # Docker labels may hold more than Kubernetes' 63
AGENT_WORKLOAD_LABELS_MAX: Final = 256
AGENT_WORKLOAD_IPS_MAX: Final = 64
AGENT_ARGS_MAX: Final = 64  # tcpdump's argv as reported
# A Session must send its Hello, a data connection its TLS handshake and header, within this,
# or it is cancelled: 200 silent sessions once held 198 of the 256 server threads forever (a
# session holds no thread now, but memory all the same).
STREAM_FIRST_MESSAGE_S: Final = 5.0
# Open streams of one agent certificate at once: a session (a second one replaces the first,
# so two overlap briefly while it reconnects) and its downloads' data connections.
AGENT_SESSIONS_MAX: Final = 2
AGENT_UPLOADS_MAX: Final = 32  # the agent's own upload pool is 32 threads (transport/uplink.py)
# Data-port connections not yet past their TLS handshake and header (anyone may open one):
# more are closed at once, so unauthenticated peers hold a bounded number of sockets.
DATA_HANDSHAKES_MAX: Final = 256
# Invalid messages of one agent are logged at most once per this many seconds (and all counted
# in podcap_agent_messages_dropped_total), so a lying node cannot flood the log either.
AGENT_REJECT_LOG_S: Final = 10.0
# The join port (unauthenticated): at most JOIN_RATE_PER_S attempts a second with a burst of
# JOIN_BURST, more are refused at once (RESOURCE_EXHAUSTED) before any work. Refused joins are
# counted in podcap_joins_refused_total and audited like failed logins (AUDIT_FAILURES_* above),
# so 300 bad joins in 0.8 s cannot grow the audit log without bound.
JOIN_RATE_PER_S: Final = 5.0
JOIN_BURST: Final = 20

# Replicas (issue 20): the leader's lease (controller/leader.py; renewed every third, taken
# over after it: failover within 10 s, bench figure 12); idempotent starts (start_keys.py): a
# retry waits, a claim without a capture is void after, a key is kept.
LEASE_TTL_S: Final = 6.0
START_KEY_WAIT_S, START_KEY_STALE_S, START_KEY_KEEP_S = 15.0, 30.0, 86_400.0
