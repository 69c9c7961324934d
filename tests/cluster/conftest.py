"""Fixtures for the cluster suite: nodes are network namespaces on a private bridge
(see netbed.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster import netbed
from tests.support import enter_bed


@pytest.fixture
def bed() -> Iterator[netbed.NetBed]:
    """A fresh bed (bridge only; add nodes with ``bed.add_node``), torn down after the test."""
    with enter_bed(netbed.net_bed()) as b:
        yield b
