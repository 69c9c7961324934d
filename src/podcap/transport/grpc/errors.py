"""The error tree across the wire, both ways, in one place.

A command's failure travels inside a ``Reply`` as ``Error{kind, message}`` (kind = the class
name in ``podcap.errors``); a refused call (join, session, upload) travels as a gRPC status.
Each direction has one table here, so an agent's ``NotFound`` is the controller's ``NotFound``.
"""

from __future__ import annotations

from typing import NoReturn

import grpc

from podcap import errors
from podcap.transport.grpc.agent_proto import agent_pb2 as pb

_KINDS: dict[str, type[errors.PodcapError]] = {
    cls.__name__: cls for cls in (
        errors.NotFound, errors.InvalidArgument, errors.NotEnoughFilter,
        errors.FailedPrecondition, errors.Unauthenticated, errors.PermissionDenied,
        errors.Unavailable, errors.CaptureFailed, errors.ResourceExhausted, errors.PodcapError)
}

# Most specific class first (NotEnoughFilter is an InvalidArgument).
_STATUS: list[tuple[type[errors.PodcapError], grpc.StatusCode]] = [
    (errors.NotFound, grpc.StatusCode.NOT_FOUND),
    (errors.InvalidArgument, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.FailedPrecondition, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.Unauthenticated, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, grpc.StatusCode.PERMISSION_DENIED),
    (errors.Unavailable, grpc.StatusCode.UNAVAILABLE),
    (errors.CaptureFailed, grpc.StatusCode.INTERNAL),
    (errors.ResourceExhausted, grpc.StatusCode.RESOURCE_EXHAUSTED),  # caps, the join rate
]
_FROM_STATUS = {code: cls for cls, code in _STATUS}
_FROM_STATUS[grpc.StatusCode.DEADLINE_EXCEEDED] = errors.Unavailable
_FROM_STATUS[grpc.StatusCode.CANCELLED] = errors.Unavailable


def to_wire(exc: errors.PodcapError) -> pb.Error:
    return pb.Error(kind=type(exc).__name__, message=exc.message)


def from_wire(error: pb.Error) -> errors.PodcapError:
    """An unknown kind (a newer agent) is still an error, never a success."""
    return _KINDS.get(error.kind, errors.PodcapError)(error.message)


def to_status(exc: errors.PodcapError) -> grpc.StatusCode:
    for cls, code in _STATUS:
        if isinstance(exc, cls):
            return code
    return grpc.StatusCode.UNKNOWN


def abort(context: grpc.ServicerContext, exc: errors.PodcapError) -> NoReturn:
    """Refuses the call with ``exc``'s status; raises, as ``context.abort`` does."""
    context.abort(to_status(exc), exc.message)
    raise AssertionError("unreachable: abort raises")


def from_rpc(exc: grpc.RpcError, where: str) -> errors.PodcapError:
    """A failed call as the tree's error; ``where`` names the peer for the message."""
    code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
    details = exc.details() if hasattr(exc, "details") else str(exc)
    cls = _FROM_STATUS.get(code, errors.Unavailable)
    return cls(f"{where}: {details or code.name.lower()}")
