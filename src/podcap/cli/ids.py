"""Capture (and group) ids as users type them: whole, or a unique prefix like `docker` accepts.

Tables show 12 characters so they fit a terminal; this is what makes those 12 enough.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from podcap.cli.client import ApiClient
from podcap.errors import InvalidArgument, NotFound

_WHOLE = re.compile(r"[0-9a-f]{32}")  # the server's id format: sent as typed, no listing needed


def resolve(api: ApiClient, text: str) -> str:
    return by_prefix(text, _WHOLE, "capture", "podcap capture ls",
                     lambda: [str(c["id"]) for c in api.captures()])


def by_prefix(text: str, whole: re.Pattern[str], kind: str, ls: str,
              ids: Callable[[], list[str]]) -> str:
    """``text`` if it is a whole id (no listing needed), else the one id of ``ids()`` it
    starts; ``kind`` and the ``ls`` command that lists them are named in the errors."""
    text = text.strip()
    if whole.fullmatch(text):
        return text
    if not text:
        raise InvalidArgument(f"give a {kind} id (`{ls}` lists them)")
    found = [i for i in ids() if i.startswith(text)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no {kind} id starts with {text!r}; `{ls}` lists them")
    raise InvalidArgument(f"{text!r} matches {len(found)} {kind}s: {', '.join(found)}; "
                          "type more of the id")
