"""Fixtures for the CRI suite: one private containerd for the session, with two pods talking
HTTP (busybox httpd + a wget loop) and one host-network pod. Torn down at the end even when a
test fails; a run killed outright is swept by the next one (see cri_testbed)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support.py

import cri_testbed  # noqa: E402 - after the path set-up above


@dataclass
class Pods:
    bed: cri_testbed.CriTestbed
    web: cri_testbed.Pod
    client: cri_testbed.Pod
    hostnet: cri_testbed.Pod


@pytest.fixture(scope="session")
def cri_bed() -> Iterator[cri_testbed.CriTestbed]:
    try:
        with cri_testbed.cri_testbed() as bed:
            yield bed
    except cri_testbed.Unusable as exc:
        pytest.skip(f"containerd with CRI cannot run here: {exc}")


@pytest.fixture(scope="session")
def pods(cri_bed: cri_testbed.CriTestbed) -> Pods:
    web = cri_bed.run_pod("web", ["httpd", "-f", "-p", "80", "-h", "/www"])
    client = cri_bed.run_pod("client", [
        "sh", "-c", f"while true; do wget -q -O - http://{web.ip}/; sleep 0.2; done"])
    hostnet = cri_bed.run_pod("hostnet", ["sleep", "3600"], host_network=True)
    return Pods(cri_bed, web, client, hostnet)
