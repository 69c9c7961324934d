"""`podcap extcap install`: put ``podcap-extcap`` where this machine's Wireshark looks for extcap
programs, so "podcap" shows in its interface list (and in ``tshark -D``).

Wireshark 4.2 and newer print their personal extcap folder in ``tshark -G folders`` ("Personal
Extcap path"; it moved in 4.2 and again in 4.4, so we ask rather than guess). 4.0 (Debian 12)
prints only its global folder; there the personal one is ``<Personal configuration>/extcap``,
i.e. ``~/.config/wireshark/extcap``. The program is linked, not copied, so it always runs this
installation's podcap. ``podcap.lua`` (the podcap.* fields) is linked the same way into the
"Personal Lua Plugins" folder that every version prints.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from podcap.cli import output
from podcap.errors import FailedPrecondition

app = typer.Typer(no_args_is_help=True)
PROGRAM = "podcap-extcap"
PLUGIN = Path(__file__).resolve().parent.parent / "wireshark" / "podcap.lua"


@app.command("install")
def install(
    folder: Annotated[Path | None, typer.Option(
        "--dir", help="Install into this folder instead of Wireshark's personal extcap folder.")
    ] = None,
    plugin_folder: Annotated[Path | None, typer.Option(
        "--plugin-dir", help="Put podcap.lua into this folder instead of Wireshark's personal "
        "Lua plugins folder.")] = None,
) -> None:
    """Install the Wireshark extcap (a link to podcap-extcap) into Wireshark's extcap folder,
    and the podcap.lua plugin (fields podcap.pod, podcap.peer, ...) into its plugins folder."""
    target = _link(_program(), folder or personal_extcap_dir(), PROGRAM)
    plugin = _link(PLUGIN, plugin_folder or personal_plugin_dir(), PLUGIN.name)
    output.info("Restart Wireshark; capture on the \"podcap\" interface (it uses the login of "
                "`podcap login`); filter on podcap.pod, podcap.namespace, podcap.peer, ...")
    output.line(str(target))
    output.line(str(plugin))


def _link(source: Path, target_dir: Path, name: str) -> Path:
    """``target_dir/name`` -> ``source``, replaced atomically."""
    target_dir.mkdir(parents=True, exist_ok=True)
    target = target_dir / name
    tmp = target_dir / f".{name}.{os.getpid()}.tmp"
    tmp.unlink(missing_ok=True)
    os.symlink(source, tmp)
    os.replace(tmp, target)
    output.info(f"Installed {target} -> {source}")
    return target


@app.command("path")
def path() -> None:
    """Print the folder `install` would use."""
    output.line(str(personal_extcap_dir()))


def _program() -> Path:
    here = Path(sys.executable).parent / PROGRAM
    if here.exists():
        return here
    found = shutil.which(PROGRAM)
    if found:
        return Path(found).resolve()
    raise FailedPrecondition(f"{PROGRAM} is not installed next to {sys.executable}; reinstall "
                             "podcap (pip install -e .)")


def personal_extcap_dir() -> Path:
    folders = _tshark_folders()
    if "Personal Extcap path" in folders:
        return Path(folders["Personal Extcap path"])
    if "Personal configuration" in folders:
        return Path(folders["Personal configuration"]) / "extcap"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "wireshark" / "extcap"


def personal_plugin_dir() -> Path:
    """Where Wireshark loads a user's Lua plugins from (4.0: ``~/.local/lib/wireshark/
    plugins``)."""
    folders = _tshark_folders()
    if "Personal Lua Plugins" in folders:
        return Path(folders["Personal Lua Plugins"])
    return Path.home() / ".local" / "lib" / "wireshark" / "plugins"


def _tshark_folders() -> dict[str, str]:
    tshark = shutil.which("tshark")
    if tshark is None:
        return {}
    try:
        done = subprocess.run([tshark, "-G", "folders"], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    folders: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, sep, value = line.partition(":")
        if sep and value.strip():
            folders.setdefault(name.strip(), value.strip())
    return folders
