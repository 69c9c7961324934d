"""Fixtures for the CRI suite: one private containerd per test module, with two pods talking
HTTP (busybox httpd + a wget loop) and one host-network pod. Torn down at the end even when a
test fails; a run killed outright is swept by the next one (see cri_testbed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cri import cri_testbed
from tests.cri.cri_testbed import Pods
from tests.support import Server, enter_bed, running_server


@pytest.fixture(scope="module")
def cri_bed() -> Iterator[cri_testbed.CriTestbed]:
    with enter_bed(cri_testbed.cri_testbed()) as bed:
        yield bed


@pytest.fixture(scope="module")
def pods(cri_bed: cri_testbed.CriTestbed) -> Pods:
    web = cri_bed.run_pod("web", ["httpd", "-f", "-p", "80", "-h", "/www"])
    client = cri_bed.run_pod("client", [
        "sh", "-c", f"while true; do wget -q -O - http://{web.ip}/; sleep 0.2; done"])
    hostnet = cri_bed.run_pod("hostnet", ["sleep", "3600"], host_network=True)
    return Pods(cri_bed, web, client, hostnet)


@pytest.fixture(scope="module")
def cri_server(cri_bed: cri_testbed.CriTestbed,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `podcap serve` whose only runtime is the test bed's containerd."""
    args = ["--runtime", "cri", "--cri-socket", str(cri_bed.socket), "--node-name", "cri-node"]
    with running_server(tmp_path_factory.mktemp("serve-cri"), extra_args=args) as srv:
        yield srv
