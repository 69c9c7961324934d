"""Everything of podcap that speaks gRPC, and the only place protobuf is seen.

Controller side: ``gateway.py`` (the Join and Session listeners; ``join_gate.py`` guards the
join port; ``gateway_needs.py`` names what the controller hands it), ``session.py`` (one
agent's open session; downloads' bytes come on the data port, ``transport/data/``) and
``remote.py`` (``RemoteAgent``: an
``AgentTransport`` over that session). Agent side: ``join.py`` (identity, the one join) and
``uplink.py`` (serves any ``AgentTransport`` over the session). Both sides: ``codec.py``
(messages to and from the domain dataclasses), ``checks.py`` (every field an agent sends),
``errors.py`` (the error tree across the wire) and ``agent_proto/`` (agent.proto and its
generated code, ``make proto``).
"""
