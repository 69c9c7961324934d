"""Fixtures for capture groups: a server that trusts Docker's namespace labels (so a Docker
container can stand in for a pod of a namespace), and labelled busybox containers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, running_server


@pytest.fixture(scope="module")
def gserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("groups"),
                        ["--trust-namespace-labels"]) as srv:
        yield srv
