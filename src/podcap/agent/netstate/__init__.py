"""The network-state snapshot: what a capture's namespace looked like when the capture started.

Addresses, routes, neighbours (``ip -j``) and the TCP/UDP socket table (``ss``) are read from
*inside* the namespace tcpdump captures in (take.py), parsed into a shape that does not change
with iproute2's version (parse.py), kept as ``netstate.json`` beside the capture's record
(disk.py) and served as the capture's ``netstate`` document (its text for people is the
controller's: controller/netstate_note.py).
Import from here: these are the names other rooms use.
"""

from podcap.agent.netstate.disk import FILE, load, save
from podcap.agent.netstate.parse import Doc, interfaces, neighbours, routes, sockets
from podcap.agent.netstate.take import Snapshots, snapshot

__all__ = ["FILE", "Doc", "Snapshots", "interfaces", "load", "neighbours", "routes",
           "save", "snapshot", "sockets"]
