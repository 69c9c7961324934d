"""Fixtures for capture groups: a server that trusts Docker's namespace labels (so a Docker
container can stand in for a pod of a namespace), and labelled busybox containers."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/support.py

from support import Server, running_server  # noqa: E402 - after the path set-up above


@pytest.fixture(scope="module")
def gserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("groups"),
                        ["--trust-namespace-labels"]) as srv:
        yield srv
