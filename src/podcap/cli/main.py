"""The Typer application, its connection options, and the console-script entry point.

Connection options belong to the root command (``podcap -k --server URL ps``) and each has a
PODCAP_* variable; the root callback turns them into the ``Session`` that every command uses.
Errors from the error tree are printed once, here, and become the exit codes of
``podcap.cli.errors``.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from podcap.cli import (
    agents,
    auth,
    capture,
    extcap,
    groups,
    output,
    recorders,
    users,
    workloads,
)
from podcap.cli.errors import exit_code
from podcap.cli.serve import agent, controller, serve
from podcap.cli.session import DEFAULT_SERVER, Connection, Session
from podcap.errors import PodcapError, Unauthenticated


class _Group(TyperGroup):
    """Root group: one place turns ``PodcapError`` into a message and an exit code."""

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except PodcapError as exc:
            message = exc.message
            session = ctx.obj if isinstance(ctx.obj, Session) else None
            source = session.api_client.token_source if session and session.api_client else ""
            if isinstance(exc, Unauthenticated) and source:
                message += f" (token from {source}; run `podcap login` again)"
            output.error(message)
            raise typer.Exit(exit_code(exc)) from None


app = typer.Typer(
    name="podcap",
    cls=_Group,
    help="Capture the network traffic of containers; download one pcap for Wireshark.",
    epilog="Exit codes: 0 ok, 2 bad input or refused start, 3 not logged in or not allowed, "
    "4 not found, 5 server, agent or connection error, 6 would overwrite a file (docs/CLI.md).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

Opt = typer.Option


@app.callback()
def root(
    ctx: typer.Context,
    server: Annotated[str | None, Opt("--server", "-s", envvar="PODCAP_SERVER",
                                      help=f"Server URL (default: the login file's, else "
                                      f"{DEFAULT_SERVER}).")] = None,
    user: Annotated[str | None, Opt("--user", "-u", envvar="PODCAP_USER",
                                    help="Log in as this user for this command only.")] = None,
    password: Annotated[str | None, Opt("--password", "-p", envvar="PODCAP_PASSWORD",
                                        help="Password for --user.")] = None,
    token: Annotated[str | None, Opt("--token", envvar="PODCAP_TOKEN",
                                     help="A token from `podcap login` or POST /api/login.")
                     ] = None,
    cacert: Annotated[str | None, Opt("--cacert", envvar="PODCAP_CACERT", metavar="PATH",
                                      help="Trust this CA / self-signed certificate (PEM); "
                                      "podcap serve's is <data-dir>/tls.crt.")] = None,
    insecure: Annotated[bool, Opt("--insecure", "-k", envvar="PODCAP_INSECURE",
                                  help="Do not verify the server's TLS certificate.")] = False,
) -> None:
    """Turn the connection options into the Session every command uses (``session.py``)."""
    if isinstance(ctx.obj, Session):
        return  # handed in by a caller (tests): it already knows how to reach its server
    ctx.obj = Session(Connection(server=server, user=user, password=password, token=token,
                                 cacert=cacert, insecure=insecure))
    ctx.call_on_close(ctx.obj.close)


app.command("serve")(serve)
app.command("controller")(controller)
app.command("agent")(agent)
app.command("login")(auth.login)
app.command("logout")(auth.logout)
app.command("whoami")(auth.whoami)
app.command("ps")(workloads.ps)
app.add_typer(capture.app, name="capture", help="Start, list, stop, download, remove captures.")
app.add_typer(groups.app, name="group", help="Capture groups: one selector, every node, one "
              "merged pcapng.")
app.add_typer(recorders.app, name="recorder", help="Flight recorders: rings of recent "
              "packets, frozen into snapshots by a trigger.")
app.add_typer(agents.agents, name="agents", help="The agents (nodes); `agents rm ID` revokes one.")
app.add_typer(agents.tokens, name="token", help="Join tokens for new agents.")
app.add_typer(users.app, name="user", help="Users: add, ls, set, rm, passwd, unlock.")
app.add_typer(extcap.app, name="extcap", help="Wireshark extcap: `extcap install`.")


def main() -> None:
    app()
