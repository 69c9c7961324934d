"""Names for the protocol mix: EtherTypes, IP protocol numbers, well-known ports.

A short built-in table, not /etc/services: agents run in slim images without one, and the
same number must read the same on every node.
"""

from __future__ import annotations

ETHERTYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "VLAN", 0x88CC: "LLDP",
              0x8035: "RARP", 0x8863: "PPPoE discovery", 0x8864: "PPPoE session",
              0x0004: "802.2 LLC"}
IP_PROTOCOLS = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre",
                50: "esp", 51: "ah", 58: "icmpv6", 89: "ospf", 112: "vrrp", 132: "sctp",
                0: "ipv6-hopopt", 43: "ipv6-route", 44: "ipv6-frag", 60: "ipv6-opts"}
PORTS = {20: "ftp-data", 21: "ftp", 22: "ssh", 23: "telnet", 25: "smtp", 53: "dns", 67: "dhcp",
         68: "dhcp", 69: "tftp", 80: "http", 110: "pop3", 123: "ntp", 137: "netbios-ns",
         143: "imap", 161: "snmp", 179: "bgp", 389: "ldap", 443: "https", 465: "smtps",
         514: "syslog", 587: "submission", 636: "ldaps", 853: "dns-over-tls", 993: "imaps",
         995: "pop3s", 1433: "mssql", 1883: "mqtt", 2049: "nfs", 2379: "etcd", 2380: "etcd",
         3000: "http-alt", 3306: "mysql", 4222: "nats", 5000: "http-alt", 5353: "mdns",
         5432: "postgresql", 5672: "amqp", 6379: "redis", 6443: "kube-apiserver",
         8000: "http-alt", 8080: "http-alt", 8443: "https-alt", 9000: "http-alt",
         9090: "prometheus", 9092: "kafka", 9200: "elasticsearch", 10250: "kubelet",
         11211: "memcached", 27017: "mongodb"}


def ethertype(number: int) -> str:
    return ETHERTYPES.get(number, f"0x{number:04x}")


def ip_protocol(number: int) -> str:
    return IP_PROTOCOLS.get(number, f"ip-{number}")


def port(number: int) -> str:
    if number == 0:
        return "ephemeral"
    return PORTS.get(number, "")
