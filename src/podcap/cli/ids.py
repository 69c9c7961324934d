"""Capture ids as users type them: whole, or a unique prefix like `docker` accepts.

Tables show 12 characters so they fit a terminal; this is what makes those 12 enough.
"""

from __future__ import annotations

import re

from podcap.cli.client import ApiClient
from podcap.errors import InvalidArgument, NotFound

_WHOLE = re.compile(r"[0-9a-f]{32}")  # the server's id format: sent as typed, no listing needed


def resolve(api: ApiClient, text: str) -> str:
    text = text.strip()
    if _WHOLE.fullmatch(text):
        return text
    if not text:
        raise InvalidArgument("give a capture id (`podcap capture ls` lists them)")
    found = [str(c["id"]) for c in api.captures() if str(c["id"]).startswith(text)]
    if len(found) == 1:
        return found[0]
    if not found:
        raise NotFound(f"no capture id starts with {text!r}; `podcap capture ls` lists them")
    raise InvalidArgument(f"{text!r} matches {len(found)} captures: {', '.join(found)}; "
                          "type more of the id")
