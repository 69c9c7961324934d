"""Files for Wireshark that podcap installs: ``podcap.lua`` (docs/WIRESHARK.md)."""
