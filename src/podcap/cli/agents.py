"""`podcap agents` and `podcap token create`: the nodes of a cluster and how new ones join."""

from __future__ import annotations

from typing import Annotated

import typer

from podcap import limits
from podcap.cli import output
from podcap.cli.output import Format, OutputOption

tokens = typer.Typer(no_args_is_help=True)
agents = typer.Typer(invoke_without_command=True)


@agents.callback()
def ls(ctx: typer.Context, fmt: OutputOption = Format.table) -> None:
    """List the agents (one per node): version, runtimes, joined, last seen, connected."""
    if ctx.invoked_subcommand is not None:
        return
    items = ctx.obj.api.agents()
    if fmt is Format.json:
        output.emit_json({"agents": items})
        return
    output.table(["ID", "NODE", "VERSION", "RUNTIMES", "JOINED", "LAST SEEN", "STATE"], [
        [a["id"], a["node"], a["version"], ",".join(a["runtimes"]), output.when(a["joined"]),
         output.when(a["last_seen"]) if a["last_seen"] else "-",
         "connected" if a["connected"] else "disconnected"] for a in items])


@agents.command("rm")
def revoke(ctx: typer.Context, agent_id: str) -> None:
    """Revoke an agent: its certificate stops working at once (admin only)."""
    ctx.obj.api.revoke_agent(agent_id)
    output.info(f"agent {agent_id} revoked")


@tokens.command("create")
def create(
    ctx: typer.Context,
    ttl: Annotated[str, typer.Option(help="How long it stays valid: 90s, 30m, 1h, 7d.")] = "1h",
    uses: Annotated[int, typer.Option(help="How many agents may join with it.")] = 1,
) -> None:
    """Print a join token for `podcap agent --join-token` (admin only)."""
    issued = ctx.obj.api.create_join_token(_seconds(ttl), uses)
    output.line(issued["token"])
    output.info(f"valid until {output.when(issued['expires'])} for {issued['uses']} join(s)")


def _seconds(text: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    try:
        if text and text[-1] in units:
            return int(text[:-1]) * units[text[-1]]
        return int(text)
    except ValueError:
        raise typer.BadParameter(f"--ttl {text!r}: a number with s, m, h or d (e.g. 1h); "
                                 f"between {limits.JOIN_TOKEN_TTL_S_MIN} s and "
                                 f"{limits.JOIN_TOKEN_TTL_S_MAX // 86400} d") from None
