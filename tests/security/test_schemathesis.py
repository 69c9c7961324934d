"""Schemathesis over the server's own OpenAPI document (bounded examples per operation): no
answer is a 5xx, and every answer matches the schema the document gives for it. Against a
server of its own, since generated calls add users, change them and log in badly.

Hypothesis is driven directly (one ``given`` per operation) rather than through schemathesis's
pytest plugin, which does not run under this pytest."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.support import Server, running_server

EXAMPLES = 20  # per operation
LOGOUTS = {("POST", "/api/logout"), ("DELETE", "/v1/auth")}


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("fuzz")) as server:
        yield server


def test_no_5xx_and_answers_match_the_schema(fuzzed: Server) -> None:
    schema = schemathesis.openapi.from_url(fuzzed.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30
    token = fuzzed.token
    calls = 0

    for op in operations:
        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case) -> None:
            nonlocal calls
            if (case.path_parameters or {}).get("name") == "admin":
                return  # the fuzz must not remove, demote or re-password its own admin
            # A logout would end the session every other case runs with: those go without.
            logout = (case.method.upper(), case.path) in LOGOUTS
            case.call_and_validate(base_url=fuzzed.url,
                                   headers={} if logout else {"X-Auth-Token": token},
                                   checks=[not_a_server_error, response_schema_conformance])
            calls += 1

        run()
    assert calls >= len(operations) * 5
    assert "internal error" not in fuzzed.log()
