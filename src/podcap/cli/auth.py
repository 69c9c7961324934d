"""`podcap login`, `logout`, `whoami`: a token kept in the login file instead of a password."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from podcap.cli import config, output
from podcap.cli.session import Session, normalize, resolve_server
from podcap.errors import InvalidArgument, PodcapError, Unauthenticated

Opt = typer.Option


def login(
    ctx: typer.Context,
    server: Annotated[str | None, Opt("--server", "-s", help="Server URL (default: the root "
                                      "--server / PODCAP_SERVER, then the login file's, then "
                                      "https://127.0.0.1:10443).")] = None,
    user: Annotated[str | None, Opt("--user", "-u", help="User name (prompted when absent).")
                    ] = None,
    password: Annotated[str | None, Opt("--password", "-p", help="Password (prompted when "
                                        "absent; prefer --password-stdin in scripts).")] = None,
    password_stdin: Annotated[bool, Opt("--password-stdin",
                                        help="Read the password from standard input.")] = False,
    cacert: Annotated[str | None, Opt("--cacert", metavar="PATH",
                                      help="Trust this certificate; remembered in the login "
                                      "file.")] = None,
    insecure: Annotated[bool, Opt("--insecure", "-k", help="Skip TLS verification; "
                                  "remembered in the login file.")] = False,
) -> None:
    """Log in and keep the token (not the password) in the login file, mode 0600."""
    session: Session = ctx.obj
    conn = session.connection
    conn.cacert = str(Path(cacert).resolve()) if cacert else conn.cacert
    conn.insecure = insecure or conn.insecure
    url, _ = resolve_server(server or conn.server)
    username = user or conn.user or typer.prompt("Username", default="admin")
    if password_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = password or conn.password or typer.prompt("Password", hide_input=True)
    if not secret:
        raise InvalidArgument("empty password")
    with session.anonymous(url) as api:
        answer = api.login(username, secret)
    path = config.save(config.LoginFile(
        server=url, token=str(answer["token"]), username=str(answer.get("username", username)),
        cacert=str(Path(conn.cacert).resolve()) if conn.cacert else None,
        insecure=conn.insecure))
    output.info(f"Logged in to {url} as {answer.get('username', username)} "
                f"(role {answer.get('role', '?')}); token saved in {path}")


def logout(ctx: typer.Context) -> None:
    """End the session: the server forgets the token and the login file is removed."""
    session: Session = ctx.obj
    login_file = config.load()
    if login_file is None:
        output.info("Not logged in.")
        return
    server = session.connection.server
    if server is not None and normalize(server) != normalize(login_file.server):
        raise InvalidArgument(f"the login file is for {login_file.server}, not {server}")
    try:
        with session.anonymous(login_file.server) as api:
            api.token = login_file.token
            api.logout()
    except Unauthenticated:
        pass  # already expired on the server: removing the file is all that is left
    except PodcapError as exc:
        config.remove()
        raise type(exc)(f"{exc.message}; the login file was removed anyway") from exc
    config.remove()
    output.info(f"Logged out of {login_file.server}.")


def whoami(ctx: typer.Context) -> None:
    """Show who the server thinks you are (a quick check of the credentials in use)."""
    api = ctx.obj.api
    me = api.whoami()
    output.line(f"{me.get('username')} ({me.get('role')}) on {api.server}")
