"""tcpdump and pcap files. Knows pids, namespaces, argv and files — never Kubernetes."""
