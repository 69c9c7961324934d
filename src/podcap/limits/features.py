"""What is built on captures: insight, capture groups, names in pcapng, flight recorders and
metrics."""

from typing import Final

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
RECORDER_EXIT_WAIT_S: Final = 3.0  # how long the runtime may take to say how a container ended
#                                    (an OOM kill may be known only after the exit: agent/rings.py)
RECORDER_HOOK_ALERTS_MAX: Final = 1_000  # alerts in one notification

# Metrics (podcap/api/metrics/, docs/OPERATIONS.md). Latency buckets span the API's goal (p99
# <= 100 ms) with room on both sides; a token shorter than this is a guessable password.
METRICS_LATENCY_BUCKETS_S: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                    10.0)
METRICS_TOKEN_MIN_CHARS: Final = 16
