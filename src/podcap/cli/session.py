"""The one factory that decides how the CLI reaches a server.

The root callback stores a ``Session`` in the Typer context; commands ask it for ``.api`` and never
look at flags, environment or the login file themselves. The client is built on first use, so
`podcap serve` and `--help` never need a server, and a test can hand in a ready ``Session``
(``CliRunner().invoke(app, args, obj=Session(api=...))``).

Precedence: flags, then PODCAP_* variables (Typer reads them for the flags), then the login file.
The login file's token is only sent to the server it was issued by.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

import httpx

from podcap.cli import config
from podcap.cli.client import ApiClient
from podcap.errors import InvalidArgument, Unauthenticated

DEFAULT_SERVER = "https://127.0.0.1:10443"


@dataclass
class Connection:
    """What the user said about reaching the server; None means "not said"."""

    server: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    cacert: str | None = None
    insecure: bool = False
    timeout: float = 30.0


class Session:
    """Lazily built client shared by every command of one invocation."""

    def __init__(self, connection: Connection | None = None, api: ApiClient | None = None) -> None:
        self.connection = connection or Connection()
        self.api_client = api
        self._owned = api is None  # a client handed in belongs to the caller, who closes it

    @property
    def api(self) -> ApiClient:
        """An authenticated client: logged in with user/password, or carrying a stored token."""
        if self.api_client is None:
            self.api_client = connect(self.connection)
        return self.api_client

    def close(self) -> None:
        """Called when the command ends: logs out a per-command login, closes connections."""
        if self._owned and self.api_client is not None:
            self.api_client.close()
            self.api_client = None

    def anonymous(self, server: str | None = None) -> ApiClient:
        """A client without credentials, for `podcap login` (the caller closes it)."""
        conn = self.connection
        url, login = resolve_server(server or conn.server)
        return ApiClient(http_client(url, conn.cacert or (login.cacert if login else None),
                                     conn.insecure or bool(login and login.insecure),
                                     conn.timeout))


def normalize(server: str) -> str:
    server = server.strip().rstrip("/")
    if "://" not in server:
        server = "https://" + server
    if not server.startswith(("http://", "https://")):
        raise InvalidArgument(f"--server must be an http:// or https:// URL, got {server!r}")
    return server


def resolve_server(server: str | None) -> tuple[str, config.LoginFile | None]:
    """The server URL, and the login file when it belongs to that server."""
    login = config.load()
    if server is None:
        url = normalize(login.server) if login else DEFAULT_SERVER
    else:
        url = normalize(server)
    if login is not None and normalize(login.server) != url:
        login = None
    return url, login


def http_client(server: str, cacert: str | None, insecure: bool,
                timeout: float = 30.0) -> httpx.Client:
    verify: ssl.SSLContext | bool
    if insecure:
        verify = False
    elif cacert:
        try:
            verify = ssl.create_default_context(cafile=cacert)
        except (OSError, ssl.SSLError) as exc:
            raise InvalidArgument(f"cannot load --cacert {cacert}: {exc}") from exc
    else:
        verify = True
    return httpx.Client(base_url=server, verify=verify, timeout=timeout)


def connect(conn: Connection) -> ApiClient:
    url, login = resolve_server(conn.server)
    cacert = conn.cacert or (login.cacert if login else None)
    insecure = conn.insecure or bool(login and login.insecure)
    api = ApiClient(http_client(url, cacert, insecure, conn.timeout))
    if conn.user is not None or conn.password is not None:
        if not (conn.user and conn.password):
            api.close()
            raise InvalidArgument("give both --user and --password (or PODCAP_USER and "
                                  "PODCAP_PASSWORD), or run `podcap login`")
        try:
            api.login_for_session(conn.user, conn.password)
        except BaseException:
            api.close()
            raise
    elif conn.token:
        api.token, api.token_source = conn.token, "PODCAP_TOKEN / --token"
    elif login is not None:
        api.token, api.token_source = login.token, str(config.config_path())
    else:
        api.close()
        raise Unauthenticated(f"not logged in to {url}: run `podcap login`, or pass --user and "
                              "--password, or set PODCAP_TOKEN")
    return api
