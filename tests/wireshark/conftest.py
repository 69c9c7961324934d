"""A server that trusts Docker's namespace labels, so a Docker container stands in for a pod of
a namespace (as in tests/groups)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import Server, running_server


@pytest.fixture(scope="module")
def wserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("wireshark"),
                        ["--trust-namespace-labels"]) as srv:
        yield srv
