"""What a capture holds, computed on the node that holds its files (issue 13).

- ``reader``: one streaming pass over a pcap file into a ``partial.Partial`` (the hot loop);
- ``cache``: one partial per ring file beside the capture, resumable for the growing file;
- ``worker``: the low-priority process that brings the cache up to date;
- ``summary``: the "summary" document (merged partials, top-N, ring-wrap note);
- ``series``: the live rate series kept from tcpdump's per-second counters ("series");
- ``conversation``: one conversation as validated fields, and the BPF filter made from them;
- ``filtered``: a capture's files through ``tcpdump -r FILE -w - FILTER``, as one pcap stream.
"""
