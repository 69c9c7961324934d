"""How results reach the terminal: Rich tables for people, plain JSON for scripts.

JSON goes through ``print`` rather than Rich so it is never wrapped, coloured or truncated to the
terminal width. Errors go to stderr so ``--output json`` stays parseable even when a command fails.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)


class Format(StrEnum):
    table = "table"
    json = "json"


OutputOption = Annotated[Format, typer.Option(
    "--output", "-o", help="table for people, json for scripts.", case_sensitive=False)]


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {message}", markup=True, soft_wrap=True,
                      emoji=False)


def info(message: str) -> None:
    err_console.print(message, soft_wrap=True, emoji=False, markup=False)


def unreachable(nodes: list[dict[str, Any]], consequence: str) -> None:
    """A list that misses nodes says so on stderr, so scripts reading stdout are unaffected."""
    if nodes:
        named = "; ".join(f"{n['node']} ({n['reason']})" for n in nodes)
        info(f"warning: not answering: {named}: {consequence}")


# Ids are copied into the next command, so they never break; everything else may fold in a
# narrow terminal.
WHOLE = frozenset({"ID", "NAME", "STATUS", "STATE"})


def table(columns: list[str], rows: list[list[str]]) -> None:
    out = Table(box=None, header_style="bold", pad_edge=False)
    for name in columns:
        out.add_column(name, overflow="fold", no_wrap=name in WHOLE)
    for row in rows:
        out.add_row(*row)
    _print_wide(out)


def _print_wide(renderable: Table) -> None:
    """Full rows when piped (grep, awk); the terminal's width only when a person is looking."""
    if console.is_terminal:
        console.print(renderable)
    else:
        Console(width=4096, highlight=False, color_system=None).print(renderable)


def fields(pairs: list[tuple[str, str]]) -> None:
    """A record as aligned ``key  value`` lines (``capture show``), never wrapped mid-value."""
    width = max((len(key) for key, _ in pairs), default=0)
    for key, value in pairs:
        console.print(f"[bold]{escape(key.ljust(width))}[/]  {escape(value)}", soft_wrap=True,
                      emoji=False)


def line(text: str) -> None:
    """One result line on stdout, unwrapped so scripts can parse it."""
    console.print(text, markup=False, emoji=False, soft_wrap=True)


def size(n: int | float | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def when(ts: float | None) -> str:
    if not ts:
        return "-"
    fmt = "%H:%M:%S" if time.time() - ts < 86_400 else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(ts))


def span(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def short_id(value: str, width: int = 12) -> str:
    return value[:width]
