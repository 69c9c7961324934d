"""Fixtures for the cluster suite: nodes are network namespaces on a private bridge
(see netbed.py). Test modules here import ``netbed`` by name, as tests/cri does its bed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # netbed.py
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support.py

import netbed  # noqa: E402 - after the path set-up above
from support import skip_for  # noqa: E402


@pytest.fixture
def bed() -> Iterator[netbed.NetBed]:
    """A fresh bed (bridge only; add nodes with ``bed.add_node``), torn down after the test."""
    try:
        with netbed.net_bed() as b:
            yield b
    except netbed.Unusable as lack:
        skip_for(lack)
