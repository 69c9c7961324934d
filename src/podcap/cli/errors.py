"""Exit codes: the CLI's edge of the error tree, read from the one table in ``podcap.errors``
(``EDGES``, the table the server answers by), so a kind exits the same way wherever it was
raised. Scripts branch on them: they are part of the CLI's contract (docs/CLI.md lists them).
"""

from __future__ import annotations

from podcap import errors


def exit_code(exc: errors.PodcapError) -> int:
    return errors.edge(exc).exit
