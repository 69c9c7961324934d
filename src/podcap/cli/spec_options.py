"""The capture-spec options of `podcap capture start` and `podcap capture live`, made from
``CaptureSpec``'s fields: each option's range and default come from the field (and so from
``limits``), its parameter is named as the field, and ``values`` turns a command's parameters
into the API body's spec. Only the flags and the words are the CLI's own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer

from podcap.model import CaptureSpec

_FIELDS = {f.name: f for f in dataclasses.fields(CaptureSpec)}
FLAGS: dict[str, tuple[str, ...]] = {
    "duration": ("--duration", "-d"),
    "file_number": ("--files", "-n"),
    "file_size_mb": ("--file-size",),
    "filter": ("--filter", "-f"),
    "snaplen": ("--snaplen",),
    "buffer_kib": ("--buffer-kib",),
}
WORDS: dict[str, str] = {
    "duration": "Seconds, 0 = until stopped",
    "file_number": "Ring of this many files",
    "file_size_mb": "MB (1,000,000 bytes) per file",
    "filter": "BPF filter, e.g. 'tcp port 80' (checked by the server)",
    "snaplen": "Bytes kept per packet, 0 = whole packets",
    "buffer_kib": "Kernel buffer",
}
assert FLAGS.keys() == WORDS.keys() == _FIELDS.keys(), "a CaptureSpec field has no CLI option"


def option(name: str, help: str | None = None) -> Any:
    """The option of spec field ``name``: its flags, the field's range, its default named."""
    f = _FIELDS[name]
    ranged = {"min": f.metadata["min"], "max": f.metadata["max"]} if "min" in f.metadata else {}
    if help is None:
        help = WORDS[name] + (f" (default {f.default})." if ranged else ".")
    return typer.Option(*FLAGS[name], help=help, **ranged)


def values(params: dict[str, Any]) -> dict[str, Any]:
    """The spec fields among a command's parameters (named as the fields): the API body's
    settings; a None is left to the server's default."""
    return {name: params[name] for name in _FIELDS if name in params}
