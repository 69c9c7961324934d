"""One error tree for the whole system; translated to HTTP, CLI exit codes only at the edges.

::

    PodcapError
    ├── NotFound             unknown workload, capture, agent, route
    │   └── Hidden           it exists, in a namespace the caller may not see (answered as
    │                        NotFound; audited as a refusal)
    ├── InvalidArgument      bad field, bad id, bad filter (tcpdump's own message)
    ├── NotEnoughFilter      start without f_workload / f_enforcer (NeuVector code 12)
    ├── FailedPrecondition   host network, stopped container, disk budget, too many captures
    │   └── AlreadyExists    a user name that is taken
    ├── ResourceExhausted    too many failed logins (back-off, lockout), a quota reached
    ├── Unauthenticated      no / bad / expired token, bad password
    ├── PermissionDenied     authenticated, but not allowed on this object (audited)
    ├── Unavailable          runtime or agent cannot be reached
    └── CaptureFailed        tcpdump or nsenter failed; message carries their stderr

``PermissionDenied`` and ``Hidden`` are the refusals of a signed-in user: each carries the
refused user's name, and the API's one error table audits them as they pass (api/errors.py),
so no handler has to remember to.

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
