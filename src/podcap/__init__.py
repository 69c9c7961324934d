"""podcap: capture container traffic, hand back one pcap.

The package has no flat public face on purpose: import from the submodule that holds what you
need (``podcap.model``, ``podcap.errors``, ``podcap.limits``...). The CLI and the REST API are
the supported interfaces.
"""

__version__ = "0.1.0"
