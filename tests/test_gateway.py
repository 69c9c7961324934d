"""The controller's join handler, fast: what a refused join leaves behind. The same handler runs
behind real gRPC listeners in tests/cluster (test_identity); here it is called directly so the
order of its steps can be checked without a network."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from podcap.controller.agents import AgentRegistry
from podcap.controller.audit import Audit
from podcap.controller.db import open_db
from podcap.controller.join_tokens import JoinTokens
from podcap.pki.ca import ClusterCA
from podcap.pki.csr import new_key_and_csr
from podcap.transport.grpc.agent_proto import agent_pb2 as pb
from podcap.transport.grpc.gateway import Gateway


class Aborted(Exception):
    """What grpc's ``context.abort`` does: it raises, so nothing after it runs."""


class FakeContext:
    def peer(self) -> str:
        return "ipv4:127.0.0.1:40000"

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailers = metadata

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise Aborted(code, details)


def test_a_garbage_csr_leaves_a_one_use_token_unspent(tmp_path: Path) -> None:
    """A join whose CSR cannot be signed must not spend the token: an agent with a broken key
    (or a typo in a script) would otherwise burn a one-use token and need a new one."""
    sessions = open_db(None, tmp_path)
    ca = ClusterCA.load_or_create(tmp_path / "ca")
    tokens = JoinTokens(sessions, ca.fingerprint)
    gateway = Gateway(AgentRegistry(sessions), tokens, ca, Audit(sessions))
    issued = tokens.create("admin", uses=1)
    with pytest.raises(Aborted) as refused:
        gateway.Join(pb.JoinRequest(token=issued.token, node="n1", csr_pem=b"not a csr"),
                     FakeContext())  # type: ignore[arg-type]
    assert refused.value.args[0] == grpc.StatusCode.INVALID_ARGUMENT
    # The one use is still there: a good CSR joins with the same token.
    _, csr = new_key_and_csr("n1")
    reply = gateway.Join(pb.JoinRequest(token=issued.token, node="n1", csr_pem=csr),
                         FakeContext())  # type: ignore[arg-type]
    assert reply.agent_id and reply.cert_pem
