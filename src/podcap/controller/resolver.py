"""How a workload named by a user is found: one rule, on the server, for every interface.

Among the workloads the caller may see (a hidden workload and a missing one take the same
path, so neither answer nor timing tells them apart):

1. a full id that equals one;
2. else, when the text is 12 or more hex characters, the workloads whose id starts with it
   (Docker's short id is 12);
3. else, the workloads whose name is exactly the text.

An id is looked for before a name, so a container named like another container's short id
never stands in for it. More than one match is ambiguous and refused by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeVar

from podcap.model import Workload

SHORT_ID_CHARS = 12
_HEX = re.compile(r"[0-9a-f]+")

T = TypeVar("T")


def resolve(query: str, candidates: Sequence[tuple[Workload, T]]) -> list[tuple[Workload, T]]:
    """The candidates ``query`` names by the rule above (each a workload and its placement)."""
    exact = [c for c in candidates if c[0].id == query]
    if exact:
        return exact
    if len(query) >= SHORT_ID_CHARS and _HEX.fullmatch(query):
        by_prefix = [c for c in candidates if c[0].id.startswith(query)]
        if by_prefix:
            return by_prefix
    return [c for c in candidates if c[0].name == query]
