"""`podcap user add|ls|set|rm|passwd|unlock`: accounts, through /api/users (docs/CLI.md)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from podcap.cli import output
from podcap.cli.output import Format, OutputOption
from podcap.errors import InvalidArgument

app = typer.Typer(no_args_is_help=True)
Opt = typer.Option

Role = Annotated[str | None, Opt("--role", "-r", help="admin, operator or reader.")]
Namespaces = Annotated[list[str] | None, Opt("--namespace", "-n", help="Scope to this "
                                             "namespace (repeat for several); none: all.")]
PasswordStdin = Annotated[bool, Opt("--password-stdin", help="Read the password from standard "
                                    "input instead of a prompt.")]


def _new_password(from_stdin: bool) -> str:
    if from_stdin:
        secret = sys.stdin.readline().rstrip("\r\n")
    else:
        secret = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    if not secret:
        raise InvalidArgument("empty password")
    return secret


@app.command("add")
def add(ctx: typer.Context, username: str, role: Role = "reader",
        namespace: Namespaces = None,
        download: Annotated[bool, Opt("--download", help="May download packet data.")] = False,
        password_stdin: PasswordStdin = False) -> None:
    """Add a user (admin only)."""
    user = ctx.obj.api.add_user(username=username, password=_new_password(password_stdin),
                                role=role, namespaces=namespace or [], download=download)
    output.info(f"user {user['username']} added (role {user['role']})")


@app.command("ls")
def ls(ctx: typer.Context, fmt: OutputOption = Format.table) -> None:
    """List users: role, namespaces, download right, lockout (admin only)."""
    users = ctx.obj.api.users()
    if fmt is Format.json:
        output.emit_json({"users": users})
        return
    output.table(["USER", "ROLE", "NAMESPACES", "DOWNLOAD", "FAILED", "LOCKED"], [
        [u["username"], u["role"], ",".join(u["namespaces"]) or "(all)",
         "yes" if u["download"] else "no", str(u["failed_logins"]),
         "locked" if u["locked"] else "-"] for u in users])


@app.command("set")
def set_(ctx: typer.Context, username: str, role: Role = None, namespace: Namespaces = None,
         all_namespaces: Annotated[bool, Opt("--all-namespaces", help="Remove the namespace "
                                             "scope.")] = False,
         download: Annotated[bool | None, Opt("--download/--no-download",
                                              help="Grant or take the download right.",
                                              show_default=False)] = None) -> None:
    """Change a user's role, namespaces or download right; its tokens end (admin only)."""
    fields: dict[str, object] = {}
    if role is not None:
        fields["role"] = role
    if all_namespaces:
        fields["namespaces"] = []
    elif namespace:
        fields["namespaces"] = namespace
    if download is not None:
        fields["download"] = download
    if not fields:
        raise InvalidArgument("nothing to change: give --role, --namespace, --all-namespaces "
                              "or --download/--no-download")
    user = ctx.obj.api.change_user(username, **fields)
    output.info(f"user {user['username']}: role {user['role']}, namespaces "
                f"{','.join(user['namespaces']) or '(all)'}, download "
                f"{'yes' if user['download'] else 'no'}; its sessions ended")


@app.command("rm")
def rm(ctx: typer.Context, username: str) -> None:
    """Remove a user; its tokens end (admin only)."""
    ctx.obj.api.remove_user(username)
    output.info(f"user {username} removed")


@app.command("passwd")
def passwd(ctx: typer.Context,
           username: Annotated[str | None, typer.Argument(help="Another user (admins); "
                                                         "default: yourself.")] = None,
           password_stdin: Annotated[bool, Opt("--password-stdin", help="Read the current "
                                               "password (your own only) and the new one "
                                               "from standard input, a line each.")] = False
           ) -> None:
    """Change a password. Every session of that user ends, yours too if it is your own."""
    api = ctx.obj.api
    me = str(api.whoami()["username"])
    target = username or me
    current = None
    if target == me:
        current = sys.stdin.readline().rstrip("\r\n") if password_stdin else \
            typer.prompt("Current password", hide_input=True)
    api.set_password(target, _new_password(password_stdin), current)
    output.info(f"password of {target} changed; log in again" if target == me else
                f"password of {target} changed; its sessions ended")


@app.command("unlock")
def unlock(ctx: typer.Context, username: str,
           data_dir: Annotated[Path | None, Opt(
               "--data-dir", help="On the server's host, without logging in: unlock in the "
               "database of the server with this data dir (its audit log records it).",
               show_default=False)] = None,
           database_url: Annotated[str | None, Opt(
               "--database-url", envvar="PODCAP_DATABASE_URL", help="With --data-dir: the "
               "server's database when it is not SQLite in the data dir.",
               show_default=False)] = None) -> None:
    """Clear a user's failed logins and lockouts, from every address (admin only; with
    --data-dir, whoever may read the server's data dir)."""
    if data_dir is None:
        ctx.obj.api.unlock_user(username)
        output.info(f"user {username} unlocked")
        return
    from podcap.controller.offline import unlock as unlock_offline

    cleared = unlock_offline(username, data_dir, database_url)
    output.info(f"user {username} unlocked in the database of {data_dir} ({cleared} failed "
                "login count(s) cleared)")
