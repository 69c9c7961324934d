"""Issue 11's figure: a GET's latency while 10 captures start and 4 clients log in badly.

    .venv/bin/python -m scripts.bench_edge [--rounds 3]     (from the repository root)

A real `podcap serve` (tests/support.py) and a real pair of talking containers. One client
sends `GET /api/whoami` (token check: a database read) every 10 ms for the whole window; four
processes send wrong passwords for unknown names as fast as they are answered; 10 threads start
captures at once, stop them, and do it again. Prints p50/p99/max of the GET, per phase, and the
same with good logins (a full argon2id hash every time, never throttled) instead of bad ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from tests.support import running_server, stop_process, web_pair

LOGINS = """
import sys, time, httpx
url, user, password, i = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
until = float(sys.argv[4])
n = 0
with httpx.Client(base_url=url) as c:
    while time.time() < until:
        name = user if user != "-" else f"nobody-{i}-{n}"
        r = c.post("/v1/auth", json={"password": {"username": name, "password": password}})
        n += 1
print(n)
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(url: str, token: str, until: float) -> list[float]:
    times = []
    with httpx.Client(base_url=url, headers={"X-Auth-Token": token}) as c:
        while time.time() < until:
            t0 = time.perf_counter()
            assert c.get("/api/whoami").status_code == 200
            times.append((time.perf_counter() - t0) * 1000)
            time.sleep(0.01)
    return times


def starts(url: str, token: str, workload: str, until: float, counter: list[int]) -> None:
    with httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=30) as c:
        while time.time() < until:
            barrier = threading.Barrier(10)
            ids: list[str] = []

            def one(barrier: threading.Barrier = barrier, ids: list[str] = ids) -> None:
                barrier.wait()
                r = c.post("/v1/sniffer", params={"f_workload": workload},
                           json={"sniffer": {"duration": 0}})
                assert r.status_code == 200, r.text
                ids.append(r.json()["result"]["id"])

            threads = [threading.Thread(target=one) for _ in range(10)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            counter[0] += len(ids)
            for cid in ids:
                c.patch(f"/v1/sniffer/stop/{cid}")
                c.delete(f"/v1/sniffer/{cid}")


def phase(server, workload: str, seconds: float, logins: str | None, captures: bool) -> dict:
    token = server.login()
    until = time.time() + seconds
    procs = []
    if logins:
        user, password = ("-", "wrong-password") if logins == "bad" else ("admin", server.password)
        procs = [subprocess.Popen([sys.executable, "-c", LOGINS, server.url, user, password,
                                   str(until), str(i)], stdout=subprocess.PIPE, text=True)
                 for i in range(4)]
    counter = [0]
    starter = threading.Thread(target=starts, args=(server.url, token, workload, until,
                                                    counter)) if captures else None
    if starter:
        starter.start()
    times = measure(server.url, token, until)
    if starter:
        starter.join()
    n_logins = sum(int(p.communicate(timeout=60)[0] or 0) for p in procs)
    for p in procs:
        stop_process(p)
    return {"p50": statistics.median(times), "p99": percentile(times, 0.99),
            "max": max(times), "gets": len(times), "logins": n_logins, "starts": counter[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pin", action="store_true",
                        help="server (and what it spawns) on CPU 0, this load on the others")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="podcap-bench-edge-")  # kept: the server log is in it
    print(f"data and server log under {tmp}", file=sys.stderr)
    with web_pair("bench-edge") as pair, running_server(Path(tmp)) as server:
        if args.pin:
            cpus = os.sched_getaffinity(0)
            assert server.proc is not None and len(cpus) > 1
            for task in os.listdir(f"/proc/{server.proc.pid}/task"):  # every thread
                os.sched_setaffinity(int(task), {min(cpus)})
            os.sched_setaffinity(0, cpus - {min(cpus)})
        # Bad logins last: afterwards this address is in back-off, good logins would be refused.
        rows = [("idle", phase(server, pair.web.id, args.seconds, None, False)),
                ("10 starts, no logins", phase(server, pair.web.id, args.seconds, None, True)),
                ("10 starts + 4 good logins", phase(server, pair.web.id, args.seconds, "good",
                                                    True)),
                ("10 starts + 4 bad logins", phase(server, pair.web.id, args.seconds, "bad",
                                                   True))]
    print("| load | GET p50 ms | GET p99 ms | max ms | GETs | logins | captures started |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        print(f"| {name} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {r['gets']} | "
              f"{r['logins']} | {r['starts']} |")


if __name__ == "__main__":
    main()
