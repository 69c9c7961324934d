"""The login file written by `podcap login`: server, token and how to trust the server's TLS.

It holds a bearer token, so it is written 0600 through a temporary file and a rename (never a
half-written or briefly world-readable file). ``PODCAP_CONFIG`` names the file outright, which is
how tests keep away from the real home directory; otherwise it follows ``XDG_CONFIG_HOME``.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from podcap.errors import InvalidArgument
from podcap.files import write_atomic


@dataclass
class LoginFile:
    server: str
    token: str
    username: str = ""
    cacert: str | None = None  # kept so `login --cacert` need not be repeated on every command
    insecure: bool = False


def config_path() -> Path:
    explicit = os.environ.get("PODCAP_CONFIG")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "podcap" / "config.json"


def load() -> LoginFile | None:
    path = config_path()
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read {path}: {exc}; run `podcap login` again") from exc
    if not isinstance(data, dict) or not data.get("server") or not data.get("token"):
        return None
    return LoginFile(server=str(data["server"]), token=str(data["token"]),
                     username=str(data.get("username", "")), cacert=data.get("cacert"),
                     insecure=bool(data.get("insecure", False)))


def save(login: LoginFile) -> Path:
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(path, (json.dumps(asdict(login), indent=2) + "\n").encode(), 0o600)
    return path


def remove() -> bool:
    try:
        config_path().unlink()
    except FileNotFoundError:
        return False
    return True
