"""Every capture limit and default, in one place.

REST validation, the CLI, the web UI (through ``GET /api/limits``) and the agent all read these,
so a limit changes here and nowhere else.
"""

import os
from typing import Final

# Ring of files: tcpdump -W / -C. tcpdump's -C counts 1,000,000 bytes, not MiB.
FILE_NUMBER_DEFAULT: Final = 5
FILE_NUMBER_MIN: Final = 1
FILE_NUMBER_MAX: Final = 50  # NeuVector's maximum, message kept verbatim
FILE_SIZE_MB_DEFAULT: Final = 2  # NeuVector's fixed -C 2
FILE_SIZE_MB_MIN: Final = 1
FILE_SIZE_MB_MAX: Final = 1000
BYTES_PER_FILE_SIZE_UNIT: Final = 1_000_000

# Duration in seconds; 0 means "until stopped".
DURATION_DEFAULT: Final = 0
DURATION_MAX: Final = 86_400

# Snap length: 0 lets tcpdump use its default (262144).
SNAPLEN_DEFAULT: Final = 0
SNAPLEN_MAX: Final = 262_144

# Kernel capture buffer (tcpdump -B, KiB). Chosen from bench/ measurements (BENCHMARKS.md):
# tcpdump's own default of 2 MiB drops small packets under load long before 8 MiB does.
BUFFER_KIB_DEFAULT: Final = 8192
BUFFER_KIB_MIN: Final = 256
BUFFER_KIB_MAX: Final = 262_144

FILTER_MAX_CHARS: Final = 4096

# Per-node disk budget for all captures (bytes). A start whose worst case (file_size x
# file_number) would not fit beside what exists is refused.
DISK_BUDGET_DEFAULT: Final = 2 * 1024**3
# Running captures stop with reason "disk budget" when the filesystem has less free than this.
MIN_FREE_BYTES_DEFAULT: Final = 128 * 1024**2
# Below this much free space the file system counts as full whatever the floor above says:
# captures stop with reason "disk full" and starts are refused, keeping room for the agent's
# own records and the database, so every record stays whole and the API keeps answering.
DISK_FULL_RESERVE_BYTES: Final = 1024**2
# Retention (controller/retention.py): with --retention-days N, stopped captures whose stop time
# is more than N days ago are deleted by a sweep this often (an hour of slack on a scale of days).
RETENTION_SWEEP_S: Final = 600.0
# Reclaim (agent/budget.py): "none" refuses a start over the disk budget; "oldest" first deletes
# the node's oldest stopped captures (never a running one) until the new one fits.
RECLAIM_POLICIES: Final = ("none", "oldest")

# Download: NeuVector's default limit of 100 MiB on /v1/sniffer/:id/pcap.
DOWNLOAD_LIMIT_DEFAULT: Final = 104_857_600
DOWNLOAD_CHUNK_BYTES: Final = 4 * 1024 * 1024  # fewer thread hops; memory stays a few MB

# Process control.
START_TIMEOUT_S: Final = 10.0  # tcpdump must say "listening on" within this
# A start wakes at each write of tcpdump's log (inotify: capture/logwatch.py) and looks at the
# log and the process at least this often anyway: a tcpdump that exits is seen by its exit, and
# with longer sleeps tcpdump's own start was slower here (an idle vCPU: 15.2-16.5 ms to
# "listening" with 10 ms, 14.3-14.5 ms with 1 ms). Without inotify the start polls this often.
START_POLL_S: Final = 0.001
FILTER_CACHE_SIZE: Final = 256  # filters known to compile (capture/filters.py)
STOP_GRACE_S: Final = 3.0  # SIGINT, then SIGKILL after this
# Before SIGINT, wait (at most this) for tcpdump to read the kernel's open TPACKET_V3 block:
# its timeout is 1 s, so this bounds the wait a little above it.
STOP_DRAIN_MAX_S: Final = 1.3
MONITOR_INTERVAL_S: Final = 0.5  # duration end, container exit, disk floor
STATS_INTERVAL_S: Final = 1.0  # SIGUSR1 for live counters
# tcpdump's log gains a counters line (~88 bytes) on each SIGUSR1: 7.6 MB a day, outside any
# budget, for a recorder's ring that runs for weeks. Past this it is emptied but for its last
# counters (capture/tcpdump_log.keep_short).
TCPDUMP_LOG_MAX_BYTES: Final = 1024 * 1024
# Live follow (pcap/follow.py): SIGUSR2 flushes tcpdump's stdio buffer this often, only while
# someone follows; followers poll the ring this often; a quiet follow stream sends an empty
# keepalive chunk this often so remote uploads (UPLOAD_IDLE_S) and proxies never cut it.
FOLLOW_FLUSH_INTERVAL_S: Final = 0.25
FOLLOW_FLUSH_SETTLE_S: Final = 0.01  # a tcpdump sleeping in poll runs its flush within this
FOLLOW_POLL_S: Final = 0.05
FOLLOW_KEEPALIVE_S: Final = 5.0
FOLLOW_NICE: Final = 10  # a follower reads at this CPU priority: tcpdump always goes first

# Network-state snapshot at capture start (agent/netstate/take.py): each `ip`/`ss` run gets this
# long, and a document request waits this long for a snapshot still being taken.
NETSTATE_COMMAND_TIMEOUT_S: Final = 5.0
NETSTATE_OUTPUT_MAX_BYTES: Final = 4 * 1024 * 1024  # per command; more is cut, and said
# Snapshots taken at once: their threads are kept (a start hands its snapshot over without
# starting a thread, which costs the start's answer ~0.3 ms of a busy machine).
NETSTATE_WORKERS: Final = 4
# A workload's addresses with their prefixes (/v1/workload's interfaces: agent/netstate/
# addresses.py) are read with `ip -j addr` in its netns (~5 ms) and kept this long per netns.
WORKLOAD_ADDRESSES_TTL_S: Final = 10.0
NETSTATE_MAX_ROWS: Final = 2000  # per section (a busy proxy has many sockets); more is counted

# Concurrency: captures running at once on one node.
MAX_RUNNING_CAPTURES: Final = 256

# Quotas (controller/quotas.py), across the cluster; 0 turns one off. Kernel buffers are RAM
# the kernel pins while a capture runs: 4 captures at the 256 MiB maximum took 1 GiB.
QUOTA_USER_CAPTURES: Final = 32
QUOTA_USER_DISK_BYTES: Final = 4 * 1024**3
QUOTA_USER_BUFFER_BYTES: Final = 512 * 1024**2
QUOTA_NAMESPACE_CAPTURES: Final = 64
QUOTA_NAMESPACE_DISK_BYTES: Final = 8 * 1024**3
QUOTA_NAMESPACE_BUFFER_BYTES: Final = 1024**3
NODE_BUFFER_RAM_DIVISOR: Final = 4  # the node budget of kernel buffers: a quarter of RAM

# Auth (controller/auth.py, controller/throttle.py).
TOKEN_IDLE_TIMEOUT_S: Final = 3600
TOKEN_MAX_AGE_S: Final = 12 * 3600  # absolute lifetime, however busy: one working day
TOKEN_PURGE_INTERVAL_S: Final = 60  # a login deletes expired tokens at most this often
PASSWORD_MIN_CHARS: Final = 8
PASSWORD_MAX_CHARS: Final = 1024  # hashing cost must not depend on what a stranger sends
# argon2id with OWASP's second recommended setting (19 MiB, 2 passes): ~20-30 ms here. At most
# HASH_SLOTS hashes run at once, so bad logins cannot take more than 4 x 19 MiB.
ARGON2_TIME_COST: Final = 2
ARGON2_MEMORY_KIB: Final = 19 * 1024
HASH_SLOTS: Final = 4
LOGIN_WORKERS: Final = 1  # threads for logins (api/deps.py): a flood cannot take more
LOGIN_NICE: Final = 10  # and they run at this lower CPU priority
# Python hands the interpreter lock to another thread every 5 ms by default; the event loop
# (every request's first and last step) then waits up to that long behind each busy thread.
GIL_SWITCH_S: Final = 0.001
# Failed logins (controller/throttle.py): free ones, then a back-off doubling from 1 s to 5 min;
# a (user name, address) pair is locked for an hour at 20 (or until an admin unlocks it), from
# that address only, and tries while blocked never extend a block. An address (maybe a NAT of
# many people) gets more free tries and is never locked. Counts older than the window are
# forgotten.
LOGIN_USER_FREE_FAILURES: Final = 5
LOGIN_ADDR_FREE_FAILURES: Final = 20
LOGIN_BACKOFF_BASE_S: Final = 1.0
LOGIN_BACKOFF_MAX_S: Final = 300.0
LOGIN_LOCK_FAILURES: Final = 20
LOGIN_LOCK_S: Final = 3600.0
LOGIN_WINDOW_S: Final = 900.0

# The audit log (controller/audit.py) must not be a way to fill the disk: 300 blocked logins
# in 1.6 s wrote 300 rows. Refusals of a signed-in user (403, or 404 for another namespace's
# object) are recorded at most AUDIT_REFUSALS_PER_USER times per window per user; failed
# logins and refused joins (no user proven) at most AUDIT_FAILURES_PER_ADDRESS per window per
# source address and AUDIT_FAILURES_MAX per window in all. What is left out is counted
# (podcap_audit_suppressed_total) and the next row of that user or address says how many.
AUDIT_WINDOW_S: Final = 60.0
AUDIT_REFUSALS_PER_USER: Final = 10
AUDIT_REFUSALS_MAX: Final = 200  # all users together (users are few; this bounds memory too)
AUDIT_FAILURES_PER_ADDRESS: Final = 10
AUDIT_FAILURES_MAX: Final = 60

# The HTTP edge (api/edge.py, api/protocol.py). Every body this API takes is a small JSON
# object; 1 MiB is far above any of them and far below what hurts (a 100 MiB body cost 600 MiB).
BODY_MAX_BYTES: Final = 1024 * 1024
# No request of ours nests deeper than 4; Python's json recursion fails near 1000.
JSON_MAX_DEPTH: Final = 32
# A client has this long to send a request's head (slow-header clients cannot hold a
# connection forever); an idle keep-alive connection is closed after KEEP_ALIVE_S.
HEADER_TIMEOUT_S: Final = 10.0
KEEP_ALIVE_S: Final = 5
HEADER_MAX_BYTES: Final = 16 * 1024  # request line + headers
BODY_TIMEOUT_S: Final = 10.0  # a body (at most 1 MiB of JSON) must have arrived by then

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
AGENT_PORT_DEFAULT: Final = 10444  # mutual TLS: sessions and uploads
JOIN_PORT_DEFAULT: Final = 10445  # server TLS only: Join (an agent has no certificate yet)
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
# /api/workloads?limit=: at most this many a page (no limit given: all of them, as before).
WORKLOADS_PAGE_MAX: Final = 1_000
UPLOAD_CHUNK_BYTES: Final = 1024 * 1024  # pcap bytes per gRPC message
UPLOAD_QUEUE_CHUNKS: Final = 4  # controller-side buffer per download: memory ≈ 4 MiB
# A download with no chunk for this long fails (either side). PODCAP_UPLOAD_IDLE_S overrides it
# for a process (tests prove the follow keepalive without waiting 30 s); it must stay above
# FOLLOW_KEEPALIVE_S, or every quiet follow stream would be cut.
UPLOAD_IDLE_S: Final = float(os.environ.get("PODCAP_UPLOAD_IDLE_S") or 30.0)
if UPLOAD_IDLE_S <= FOLLOW_KEEPALIVE_S:
    raise ValueError(f"PODCAP_UPLOAD_IDLE_S={UPLOAD_IDLE_S:g} must exceed the follow keepalive "
                     f"({FOLLOW_KEEPALIVE_S:g} s)")
# gRPC message size limit, both directions: a workload list of a few thousand containers.
GRPC_MESSAGE_MAX_BYTES: Final = 16 * 1024 * 1024
# Threads of the agent listener (made as needed): each connected agent's session holds one while
# it is open, each download one more; 256 capped a controller at about 250 nodes, and bench
# figure 11 connects 500 (simulated) plus real ones.
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
# A stream (Session or Upload) must send its Hello or its upload header within this, or it is
# cancelled: 200 silent sessions once held 198 of the 256 server threads forever.
STREAM_FIRST_MESSAGE_S: Final = 5.0
# Open streams of one agent certificate at once: a session (a second one replaces the first,
# so two overlap briefly while it reconnects) and its downloads. With GRPC_WORKERS threads,
# one certificate can never hold more than a small part of the pool.
AGENT_SESSIONS_MAX: Final = 2
AGENT_UPLOADS_MAX: Final = 32  # the agent's own upload pool is 32 threads (transport/uplink.py)
# Invalid messages of one agent are logged at most once per this many seconds (and all counted
# in podcap_agent_messages_dropped_total), so a lying node cannot flood the log either.
AGENT_REJECT_LOG_S: Final = 10.0
# The join port (unauthenticated): at most JOIN_RATE_PER_S attempts a second with a burst of
# JOIN_BURST, more are refused at once (RESOURCE_EXHAUSTED) before any work. Refused joins are
# counted in podcap_joins_refused_total and audited like failed logins (AUDIT_FAILURES_* above),
# so 300 bad joins in 0.8 s cannot grow the audit log without bound.
JOIN_RATE_PER_S: Final = 5.0
JOIN_BURST: Final = 20

# Insight (src/podcap/insight): what a capture holds, computed on its node. Every table is
# bounded so a hostile or huge capture costs bounded memory: past a bound, packets are still
# counted (in "untracked" totals) but no new row is made.
INSIGHT_CONVERSATIONS_MAX: Final = 10_000  # conversation rows per file and per summary
INSIGHT_NAMES_MAX: Final = 2_000  # DNS names and TLS server names, each
INSIGHT_SERVICES_MAX: Final = 1_000  # (IP protocol, port) rows of the protocol mix
INSIGHT_TIMELINE_MAX: Final = 86_400  # timeline buckets; wider buckets beyond (1 s, 2 s, 4 s…)
INSIGHT_TOP_DEFAULT: Final = 100  # conversations and names a summary lists unless asked
INSIGHT_WAIT_S: Final = 2.0  # a summary request waits this long for the worker, then answers
INSIGHT_NICE: Final = 19  # the worker's CPU priority: captures (tcpdump) always go first
INSIGHT_READ_BYTES: Final = 1024 * 1024  # the worker reads files in blocks of this
SERIES_POINTS_MAX: Final = 3_600  # live rate series: one point a second, the last hour
SERIES_CAPTURES_MAX: Final = 512  # captures whose series are kept (oldest forgotten first)

# Capture groups (controller/groups.py): one capture per matching container, on every node.
LABEL_SELECTOR_MAX_CHARS: Final = 1024
GROUP_WORKLOADS_MAX: Final = 100  # names in one group's workload list
GROUP_MEMBERS_MAX: Final = 64  # captures in one group: each holds a kernel buffer and a ring
# Replicas (issue 20): the leader's lease (controller/leader.py; renewed every third, taken
# over after it: failover within 10 s, bench figure 12); idempotent starts (start_keys.py): a
# retry waits, a claim without a capture is void after, a key is kept.
LEASE_TTL_S: Final = 6.0
START_KEY_WAIT_S, START_KEY_STALE_S, START_KEY_KEEP_S = 15.0, 30.0, 86_400.0
GROUP_WATCH_INTERVAL_S: Final = 2.0  # how often a running group looks for new members
GROUP_RETRY_S: Final = 10.0  # a member whose start failed (quota, node away) is tried again
GROUP_START_WORKERS: Final = 8  # member captures started at once
# Follow mode of a group download: a packet is held this long at most for a slower member's
# earlier packet (see controller/group_pcapng.py); a packet arriving later than this out of order is
# still written, just after newer ones.
GROUP_REORDER_WINDOW_S: Final = 1.5
# Records read from members' live streams and not yet written, all members together.
GROUP_FOLLOW_QUEUE_RECORDS: Final = 4096
# Names in pcapng (pcap/names.py): while packets newer than the controller's last view of the
# workloads keep coming, the view is asked again at most this often (a pod that appears is
# looked up at once, on its first packet); each asking lists every node's workloads.
NAMES_REFRESH_S: Final = 5.0

# Flight recorders (controller/recorders.py, agent/rings.py): a ring per matching container,
# frozen into a snapshot by a trigger.
RECORDER_WINDOW_S_DEFAULT: Final = 60  # seconds of history a snapshot keeps before its trigger
RECORDER_WINDOW_S_MAX: Final = 86_400
RECORDER_AFTER_S_DEFAULT: Final = 5  # seconds after the trigger that the snapshot keeps too
RECORDER_AFTER_S_MAX: Final = 600
# A freeze in progress that triggers keep extending ends this long after its first trigger at
# the latest: a trigger every second must not hold a ring's files for ever.
RECORDER_HOLD_MAX_S: Final = 1_800
RECORDER_BYTES_MB_DEFAULT: Final = 20  # the ring of one container (1 MB = 1,000,000 bytes)
RECORDER_BYTES_MB_MIN: Final = 2  # two files: one being written, one kept whole
RECORDER_BYTES_MB_MAX: Final = 10_000
RECORDER_RING_FILES_MAX: Final = 10  # files of a ring: a snapshot drops whole files older than
#                                      its window, so more files cut closer to it
RECORDER_COOLDOWN_S_DEFAULT: Final = 60  # per recorder and container, from the end of a freeze
RECORDER_COOLDOWN_S_MAX: Final = 86_400
RECORDER_SNAPSHOTS_DEFAULT: Final = 10  # snapshots kept per recorder (oldest deleted first)
RECORDER_SNAPSHOTS_MAX: Final = 1_000
RECORDER_MEMBERS_MAX: Final = 256  # rings of one recorder, every node together
RECORDER_WATCH_INTERVAL_S: Final = 1.0  # membership, snapshots and thresholds: every second
RECORDER_RETRY_S: Final = 10.0  # a container whose ring did not start is tried again
RECORDER_EXIT_WAIT_S: Final = 2.0  # how long the runtime may take to say how a container ended
RECORDER_HOOK_ALERTS_MAX: Final = 1_000  # alerts in one notification

# Metrics (podcap/api/metrics/, docs/OPERATIONS.md). Latency buckets span the API's goal (p99
# <= 100 ms) with room on both sides; a token shorter than this is a guessable password.
METRICS_LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                    10.0)
METRICS_TOKEN_MIN_CHARS: Final = 16


def as_dict() -> dict[str, int | float]:
    """The limits a client needs beyond the capture spec's, served at GET /api/limits (the
    spec's own come from its fields: ``model.spec_limits``)."""
    return {
        "download_limit_default": DOWNLOAD_LIMIT_DEFAULT,
        "join_token_ttl_s_default": JOIN_TOKEN_TTL_S_DEFAULT,
        "join_token_ttl_s_min": JOIN_TOKEN_TTL_S_MIN,
        "join_token_ttl_s_max": JOIN_TOKEN_TTL_S_MAX,
        "join_token_uses_default": JOIN_TOKEN_USES_DEFAULT,
        "join_token_uses_max": JOIN_TOKEN_USES_MAX,
        "agent_port_default": AGENT_PORT_DEFAULT,
    }
