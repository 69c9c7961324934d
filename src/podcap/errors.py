"""One error tree for the whole system; translated to HTTP, CLI exit codes only at the edges.

::

    PodcapError
    ├── NotFound             unknown workload, capture, agent, route
    ├── InvalidArgument      bad field, bad id, bad filter (tcpdump's own message)
    ├── NotEnoughFilter      start without f_workload / f_enforcer (NeuVector code 12)
    ├── FailedPrecondition   host network, stopped container, disk budget, too many captures
    │   └── AlreadyExists    a user name that is taken
    ├── ResourceExhausted    too many failed logins (back-off, lockout), a quota reached
    ├── Unauthenticated      no / bad / expired token, bad password
    ├── PermissionDenied     authenticated, but not allowed on this object
    ├── Unavailable          runtime or agent cannot be reached
    └── CaptureFailed        tcpdump or nsenter failed; message carries their stderr

Adapters wrap foreign exceptions (``raise Unavailable(...) from exc``) so nothing above them
needs to know about docker, grpc or subprocess errors.
"""


class PodcapError(Exception):
    """Base of every error podcap raises on purpose. ``message`` says what to change."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(PodcapError):
    pass


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
    pass


class Unavailable(PodcapError):
    pass


class CaptureFailed(PodcapError):
    pass
