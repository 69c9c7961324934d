"""A start's workload: the agent's last listing at once, the runtime's fresh answer as the last
word, asked while tcpdump boots.

A start must see the container as it is now, and asking the runtime (Docker's ``inspect``)
costs ~1 ms that used to stand in front of tcpdump's spawn. The listing already holds the pid,
its start time and the namespace; an entry whose process still lives with the same start time
is the same process (a restart or an exit changes that), so tcpdump is spawned on it at once
and the runtime is asked right after, by the same thread, while tcpdump builds its ring (~15
ms in which that thread has nothing else to do; a thread of its own asked earlier would take
the interpreter from the spawn instead). Before the record is written and long before tcpdump
listens, the answer must agree: a workload the runtime no longer has, no longer lets us
capture, or runs as another process, ends the start with the refusal the runtime's answer
alone gives, and nothing of it is kept (agent/manager.py). With no usable listing entry (a
container started a moment ago) the runtime is asked first, as before.
"""

from __future__ import annotations

from collections.abc import Callable

from podcap.errors import FailedPrecondition, PodcapError
from podcap.model import Workload


def capturable(workload: Workload) -> Workload:
    """``workload``, or the refusal a user reads when it may not be captured."""
    if not workload.cap_sniff:
        raise FailedPrecondition(f"Unable to capture the container traffic: {workload.name} "
                                 f"is {workload.cap_sniff_reason}")
    return workload


class Unconfirmed(Exception):
    """The runtime's answer refused a start already spawned: ``error`` is the refusal. Not a
    failure of the capture: the start is undone as if it never began."""

    def __init__(self, error: PodcapError) -> None:
        super().__init__(error.message)
        self.error = error


class StartLookup:
    def __init__(self, listed: Workload | None, ask: Callable[[], Workload]) -> None:
        self.listed = listed
        self._ask = ask  # the runtime's fresh answer (raises NotFound, Unavailable)
        self._fresh: Workload | None = None

    def first(self) -> Workload:
        """What the checks and the spawn go by: the listing's entry, else (none usable) the
        runtime's answer, asked now."""
        if self.listed is not None:
            return self.listed
        self._fresh = self._ask()
        return self._fresh

    def confirm(self, used: Workload) -> Workload:
        """The runtime's answer, once it agrees with ``used`` (the one tcpdump was spawned
        on): same process and namespace, and still capturable. Otherwise ``Unconfirmed``."""
        if self._fresh is not None:  # asked before the spawn: ``used`` is that answer
            return self._fresh
        try:
            fresh = capturable(self._ask())
        except PodcapError as exc:
            raise Unconfirmed(exc) from None
        if (fresh.pid, fresh.pid_start, fresh.netns) != (used.pid, used.pid_start, used.netns):
            raise Unconfirmed(FailedPrecondition(
                f"Unable to capture the container traffic: {fresh.name} restarted while the "
                "capture started; nothing was started, try again"))
        return fresh
