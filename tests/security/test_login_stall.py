"""Logins hash with argon2id (tens of ms of CPU each): a flood of them must not stall other
requests. Its own module: the test bounds a median latency on the wall clock, so it runs
``alone`` (tests/conftest.py), and a module of its own is a unit that can be handed out last.
"""

from __future__ import annotations

import statistics
import subprocess
import time

import httpx
import pytest

from tests.support import Server, stop_process

HAMMER = """
import sys, httpx
url, password, until = sys.argv[1], sys.argv[2], float(sys.argv[3])
import time
n = 0
with httpx.Client(base_url=url) as c:
    while time.time() < until:
        r = c.post("/v1/auth", json={"password": {"username": "admin", "password": password}})
        assert r.status_code == 200, r.text
        n += 1
print(n)
"""


@pytest.mark.alone  # a median latency bound under 4 hashing clients: the machine's own
def test_logins_do_not_stall_other_requests(server: Server) -> None:
    """4 processes logging in without pause; /healthz stays fast (was 215 ms with 4 bad logins).
    Good logins: they hash as bad ones do, and are never throttled (bad ones from one address
    are refused without a hash after 20, tests/security/test_accounts.py). The clients are
    processes so that they do not share this test's interpreter lock."""
    import sys
    until = time.time() + 4.0
    procs = [subprocess.Popen([sys.executable, "-c", HAMMER, server.url, server.password,
                               str(until)], stdout=subprocess.PIPE, text=True)
             for _ in range(4)]
    try:
        time.sleep(1.0)
        times = []
        with httpx.Client(base_url=server.url) as c:
            while time.time() < until - 0.3:
                t0 = time.perf_counter()
                assert c.get("/healthz").status_code == 200
                times.append((time.perf_counter() - t0) * 1000)
                time.sleep(0.02)
        logins = sum(int(p.communicate(timeout=30)[0]) for p in procs)
    finally:
        for p in procs:
            stop_process(p)
    assert logins >= 8
    assert statistics.median(times) < 20, sorted(times)
