"""Captures on a node: the ring, the filter, the kernel buffer, tcpdump's process control,
following, network-state snapshots and the disk budget."""

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

# tcpdump's CPU priority (nice, -20..19; capture/priority.py): what decides its drops when the
# node's CPU is saturated. A person's capture runs above the workloads and above any recorder's
# ring (the agent's --capture-priority), so a ring of the same container drops first, in its
# own counters. A ring stays at the workloads' priority (--ring-priority): below them it dropped
# 74-94 % of packets on its own at saturation and the capture beside it gained nothing
# measurable (BENCHMARKS.md figures 1 and 13, notes).
CAPTURE_NICE: Final = -10
RING_NICE: Final = 0
NICE_MIN: Final = -20
NICE_MAX: Final = 19

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
# A running ring whose every file was being rewritten when downloaded: its header looked for
# again this often, this far apart (pcap/ring.py), so the download is still a pcap.
RING_HEADER_TRIES: Final = 20
RING_HEADER_WAIT_S: Final = 0.005

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
