"""The error tree across the wire, both ways, every kind intact.

A command's failure travels inside a ``Reply`` as ``Error{kind, message}`` (a download's on the
data port likewise: transport/data/wire.py), kind = the class's name in ``podcap.errors``; a
refused call (join, session) travels as a gRPC status, the kind's own code from
``errors.EDGES``, with the kind's name in the trailing metadata: a status code is coarser than
the tree (NotEnoughFilter and InvalidArgument share INVALID_ARGUMENT), the name is not. So an
agent's ``NotFound`` is the controller's ``NotFound``, and a refused join's ``AlreadyExists`` is
the agent's.
"""

from __future__ import annotations

from typing import NoReturn

import grpc

from podcap import errors
from podcap.transport.grpc.agent_proto import agent_pb2 as pb

KIND_KEY = "podcap-kind"  # trailing metadata of a refused call: the kind's name

_FROM_STATUS: dict[grpc.StatusCode, type[errors.PodcapError]] = {}
for _cls, _edge in errors.EDGES.items():  # the most general class of each code (parents first)
    _FROM_STATUS.setdefault(grpc.StatusCode[_edge.grpc], _cls)
# A bare UNKNOWN is a peer that crashed, not an error it chose: as unreachable as a cut link.
_FROM_STATUS[grpc.StatusCode.UNKNOWN] = errors.Unavailable
_FROM_STATUS[grpc.StatusCode.DEADLINE_EXCEEDED] = errors.Unavailable
_FROM_STATUS[grpc.StatusCode.CANCELLED] = errors.Unavailable


def to_wire(exc: errors.PodcapError) -> pb.Error:
    return pb.Error(kind=errors.tree_class(exc).__name__, message=exc.message)


def from_wire(error: pb.Error) -> errors.PodcapError:
    """An unknown kind (a newer agent) is still an error, never a success."""
    return errors.KINDS.get(error.kind, errors.PodcapError)(error.message)


def to_status(exc: errors.PodcapError) -> grpc.StatusCode:
    return grpc.StatusCode[errors.edge(exc).grpc]


def abort(context: grpc.ServicerContext, exc: errors.PodcapError) -> NoReturn:
    """Refuses the call with ``exc``'s status and kind; raises, as ``context.abort`` does."""
    context.set_trailing_metadata(((KIND_KEY, errors.tree_class(exc).__name__),))
    context.abort(to_status(exc), exc.message)
    raise AssertionError("unreachable: abort raises")


async def abort_async(context: grpc.aio.ServicerContext, exc: errors.PodcapError) -> NoReturn:
    """``abort`` on the gateway's event loop (gateway_session.py)."""
    context.set_trailing_metadata(((KIND_KEY, errors.tree_class(exc).__name__),))
    await context.abort(to_status(exc), exc.message)
    raise AssertionError("unreachable: abort raises")


def from_rpc(exc: grpc.RpcError, where: str) -> errors.PodcapError:
    """A failed call as the tree's error; ``where`` names the peer for the message. The kind
    named in the trailers is believed only when its status is the one that kind is sent with
    (a proxy in between may answer with its own status)."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _FROM_STATUS.get(code, errors.Unavailable)
    trailers = exc.trailing_metadata() if hasattr(exc, "trailing_metadata") else None
    named = errors.KINDS.get(dict(trailers or ()).get(KIND_KEY, ""))
    if named is not None and errors.EDGES[named].grpc == code.name:
        cls = named
    return cls(f"{where}: {details or code.name.lower()}")
