"""The network-state snapshot: what a capture's namespace looked like when the capture started.

Addresses, routes, neighbours (``ip -j``) and the TCP/UDP socket table (``ss``) are read from
*inside* the namespace tcpdump captures in (take.py), parsed into a shape that does not change
with iproute2's version (parse.py), kept as ``netstate.json`` beside the capture's record
(disk.py) and served as the capture's ``netstate`` document, or as text for people (text.py).
Import from here: these are the names other rooms use.
"""

from podcap.agent.netstate.disk import FILE, load, save
from podcap.agent.netstate.parse import Doc, interfaces, neighbours, routes, sockets
from podcap.agent.netstate.take import Snapshots, snapshot
from podcap.agent.netstate.text import as_text

__all__ = ["FILE", "Doc", "Snapshots", "as_text", "interfaces", "load", "neighbours", "routes",
           "save", "snapshot", "sockets"]
