"""bench/report.py's machine table: a run of some figures (``--only``) keeps a row for every
machine the kept figures were measured on, and joins kept figures measured on this run's."""

from __future__ import annotations

from bench.report import machine_table

THIS = {"cores": 2, "cpu": "Xeon", "memory_gib": 23.6, "kernel": "k2", "os": "Debian",
        "tcpdump": "t", "libpcap": "l", "iperf3": "i", "docker": "d", "python": "p"}
XEON = "| 2 | Xeon | 23.6 GiB | k2 | Debian | t | l | i | d | p |"
EPYC = "| 2 | EPYC | 23.5 GiB | k1 | Debian | t | l | i | d | p |"


def test_every_kept_machine_keeps_its_row() -> None:
    previous = [f"| figures 6, 9, 11 {XEON}", f"| figures 1, 2, 10 {EPYC}"]
    out = machine_table(THIS, previous, "figure 13", "figures 1, 2, 6, 9, 10, 11")
    assert f"| figures 6, 9, 11, 13 {XEON}" in out
    assert f"| figures 1, 2, 10 {EPYC}" in out


def test_one_machine_is_one_row() -> None:
    out = machine_table(THIS, [f"| figures 6, 9 {XEON}"], "figure 13", "figures 6, 9")
    assert out.splitlines()[2] == XEON and len(out.splitlines()) == 3
