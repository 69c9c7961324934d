"""Exit codes: the CLI's edge of the error tree in ``podcap.errors``.

Scripts branch on these, so they are part of the CLI's contract (docs/CLI.md lists them).
Click's own usage errors already exit 2, which is why 2 means "bad input" for everything.
"""

from __future__ import annotations

from podcap import errors

OK = 0
BAD_INPUT = 2
AUTH = 3
NOT_FOUND = 4
SERVER = 5
REFUSED = 6

# Most specific first: NotEnoughFilter is an InvalidArgument.
_EXIT_CODES: tuple[tuple[type[errors.PodcapError], int], ...] = (
    (errors.InvalidArgument, BAD_INPUT),
    (errors.Unauthenticated, AUTH),
    (errors.PermissionDenied, AUTH),
    (errors.NotFound, NOT_FOUND),
    (errors.FailedPrecondition, REFUSED),
    (errors.ResourceExhausted, REFUSED),
    (errors.Unavailable, SERVER),
    (errors.CaptureFailed, SERVER),
)


def exit_code(exc: errors.PodcapError) -> int:
    for kind, code in _EXIT_CODES:
        if isinstance(exc, kind):
            return code
    return SERVER
