"""Fixtures over real parts: one `podcap serve` and one pair of talking containers per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import Server, WebPair, running_server, web_pair


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("serve")) as srv:
        yield srv


@pytest.fixture(scope="module")
def pair() -> Iterator[WebPair]:
    with web_pair() as p:
        yield p
