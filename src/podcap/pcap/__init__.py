"""The classic pcap format and what podcap does with it: reading, ordering a ring of files,
following it while tcpdump writes, re-framing it as pcapng. Knows bytes and files — never
processes, namespaces or Kubernetes (those are ``capture/``'s). Import from the submodules."""
