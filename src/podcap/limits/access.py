"""Who may do what, and how much: quotas, accounts, logins, the audit log and the HTTP edge."""

import os as _os
from typing import Final

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
# PODCAP_LOGIN_BACKOFF_S sets the first back-off for a process (a longer one for a public
# endpoint; tests hold a block for longer than a busy machine takes to look at it).
LOGIN_BACKOFF_BASE_S: Final = float(_os.environ.get("PODCAP_LOGIN_BACKOFF_S") or 1.0)
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
