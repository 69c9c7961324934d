"""One error tree for the whole system, and the one table of how each kind is answered at
every edge (HTTP on ``/api`` and on NeuVector's ``/v1``, gRPC, CLI exit codes).

::

    PodcapError
    ├── NotFound             unknown workload, capture, agent, route
    │   └── Hidden           it exists, in a namespace the caller may not see (answered as
    │                        NotFound; audited as a refusal)
    ├── InvalidArgument      bad field, bad id, bad filter (tcpdump's own message)
    │   └── NotEnoughFilter  start without f_workload / f_enforcer (NeuVector code 12)
    ├── FailedPrecondition   host network, stopped container, disk budget, too many captures
    │   └── AlreadyExists    a user name that is taken
    ├── ResourceExhausted    too many failed logins (back-off, lockout), a quota reached
    ├── Unauthenticated      no / bad / expired token, bad password
    ├── PermissionDenied     authenticated, but not allowed on this object (audited)
    ├── Unavailable          runtime or agent cannot be reached
    └── CaptureFailed        tcpdump (or entering the namespace) failed; message carries its stderr

``PermissionDenied`` and ``Hidden`` are the refusals of a signed-in user: each carries the
refused user's name, and the API's error handler audits them as they pass (api/errors.py),
so no handler has to remember to.

Adapters wrap foreign exceptions (``raise Unavailable(...) from exc``) so nothing above them
needs to know about docker, grpc or subprocess errors. The edges translate with ``EDGES``
alone: ``api/errors.py`` (HTTP), ``transport/grpc/errors.py`` (gRPC), ``cli/errors.py`` and
``cli/client.py`` (exit codes, from the ``kind`` a native error body names). A kind keeps its
name across every edge, so a refusal means the same thing on the node, the controller and in a
script.
"""

from __future__ import annotations

from dataclasses import dataclass


class PodcapError(Exception):
    """Base of every error podcap raises on purpose. ``message`` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PodcapError):
    pass


class Hidden(NotFound):
    """The object exists but lies outside ``username``'s namespaces. Clients see a plain
    NotFound (the same message as for an object that does not exist, so nothing leaks); the
    audit log sees a refusal."""

    def __init__(self, message: str, username: str = "") -> None:
        super().__init__(message)
        self.username = username


class InvalidArgument(PodcapError):
    pass


class NotEnoughFilter(InvalidArgument):
    pass


class FailedPrecondition(PodcapError):
    pass


class AlreadyExists(FailedPrecondition):
    pass


class ResourceExhausted(PodcapError):
    """``retry_after``: seconds until a try may succeed; None when only an admin can help."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unauthenticated(PodcapError):
    pass


class PermissionDenied(PodcapError):
    """``username``: who was refused, when known where it is raised (else the API takes the
    request's signed-in user)."""

    def __init__(self, message: str, username: str = "") -> None:
        super().__init__(message)
        self.username = username


class Unavailable(PodcapError):
    pass


class CaptureFailed(PodcapError):
    pass


# CLI exit codes (docs/CLI.md): scripts branch on them. Click's own usage errors already exit
# 2, which is why 2 means "bad input" for everything.
EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_AUTH = 3
EXIT_NOT_FOUND = 4
EXIT_SERVER = 5
EXIT_REFUSED = 6

# NeuVector's error codes that its clients rely on (/work/shared/NEUVECTOR_SNIFFER.md): the
# same on both HTTP surfaces.
CODE_NOT_FOUND = 1  # no such route
CODE_UNAUTHORIZED = 3  # clients drop their token on it
CODE_INVALID_REQUEST = 6
CODE_OBJECT_NOT_FOUND = 7
CODE_NOT_ENOUGH_FILTER = 12
CODE_AGENT_ERROR = 21
CODE_CLUSTER_RPC_ERROR = 24


@dataclass(frozen=True)
class Edge:
    """How one kind is answered at each edge."""

    kind: str  # what a native error body says and the CLI reads: the class's name (a Hidden
    #            object says NotFound: nothing leaks)
    http: int  # HTTP status on /api
    v1_http: int  # HTTP status on /v1: NeuVector's, which has no 409 for a failed precondition
    code: int  # NeuVector's code, on both surfaces
    short: str  # NeuVector's "error" text
    grpc: str  # the grpc.StatusCode (by name: this module imports no grpc) of a refused call
    exit: int  # the CLI's exit code


# Every class of the tree, a parent before its children. An exception is answered by the entry
# of its nearest class here (``edge``).
EDGES: dict[type[PodcapError], Edge] = {
    PodcapError: Edge("PodcapError", 500, 500, CODE_AGENT_ERROR, "Internal error", "UNKNOWN",
                      EXIT_SERVER),
    NotFound: Edge("NotFound", 404, 404, CODE_OBJECT_NOT_FOUND, "Object not found",
                   "NOT_FOUND", EXIT_NOT_FOUND),
    Hidden: Edge("NotFound", 404, 404, CODE_OBJECT_NOT_FOUND, "Object not found", "NOT_FOUND",
                 EXIT_NOT_FOUND),
    InvalidArgument: Edge("InvalidArgument", 400, 400, CODE_INVALID_REQUEST, "Request error",
                          "INVALID_ARGUMENT", EXIT_BAD_INPUT),
    NotEnoughFilter: Edge("NotEnoughFilter", 400, 400, CODE_NOT_ENOUGH_FILTER,
                          "Not enough filter", "INVALID_ARGUMENT", EXIT_BAD_INPUT),
    FailedPrecondition: Edge("FailedPrecondition", 409, 400, CODE_INVALID_REQUEST,
                             "Request error", "FAILED_PRECONDITION", EXIT_REFUSED),
    AlreadyExists: Edge("AlreadyExists", 409, 409, CODE_INVALID_REQUEST, "Object exists",
                        "ALREADY_EXISTS", EXIT_REFUSED),
    ResourceExhausted: Edge("ResourceExhausted", 429, 429, CODE_UNAUTHORIZED,
                            "Too many requests", "RESOURCE_EXHAUSTED", EXIT_REFUSED),
    Unauthenticated: Edge("Unauthenticated", 401, 401, CODE_UNAUTHORIZED,
                          "Authentication failed", "UNAUTHENTICATED", EXIT_AUTH),
    PermissionDenied: Edge("PermissionDenied", 403, 403, CODE_UNAUTHORIZED, "Access denied",
                           "PERMISSION_DENIED", EXIT_AUTH),
    Unavailable: Edge("Unavailable", 503, 503, CODE_CLUSTER_RPC_ERROR, "Cluster RPC error",
                      "UNAVAILABLE", EXIT_SERVER),
    CaptureFailed: Edge("CaptureFailed", 500, 500, CODE_AGENT_ERROR, "Agent error",
                        "INTERNAL", EXIT_SERVER),
}

# Each class by its name: how a kind is read back (a gRPC reply's Error.kind, a native body's
# "kind"). Hidden's own name is here for the wire between agent and controller; clients never
# see it.
KINDS: dict[str, type[PodcapError]] = {cls.__name__: cls for cls in EDGES}


def tree_class(exc: PodcapError) -> type[PodcapError]:
    """The nearest class of the tree that ``exc`` is (itself, unless a subclass outside it)."""
    return next(cls for cls in type(exc).__mro__ if cls in EDGES)


def edge(exc: PodcapError) -> Edge:
    return EDGES[tree_class(exc)]


def kind_for_status(status: int) -> type[PodcapError] | None:
    """The most general kind answered with this /api status, for an error body that names no
    kind (a proxy's, an older server's): a parent comes before its children in ``EDGES``."""
    return next((cls for cls, e in EDGES.items() if e.http == status), None)
