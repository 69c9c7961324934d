"""The UI suite's Chromium (its own network namespace, relayed to this process's ports), for
the one browser test of tests/ha/test_failover.py."""

from tests.ui.conftest import browser  # noqa: F401 - a fixture, found here by pytest
