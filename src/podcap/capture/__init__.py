"""tcpdump as a process: argv, start, statistics, stop (the pcap format is ``podcap.pcap``'s).
Knows pids, namespaces, argv and files — never Kubernetes."""
