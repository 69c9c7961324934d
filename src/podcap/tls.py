"""A self-signed certificate for first start, kept in the data dir so clients can pin it.

It is a leaf (``CA:FALSE``, server authentication only) with SANs for the loopback names, the
host name and the listen address: pinned as a trust anchor it vouches for this server and can
sign nothing else. A certificate an older podcap made as a CA is replaced on start.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("podcap.tls")


def is_loopback(host: str) -> bool:
    """Whether a listen address is loopback only: where plain HTTP (``--insecure-http``, the
    metrics listener without a token) reaches no one but this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ensure_self_signed(data_dir: Path, hostname: str, listen_host: str = "") -> tuple[Path, Path]:
    cert_path, key_path = data_dir / "tls.crt", data_dir / "tls.key"
    sans = _sans(hostname, listen_host)
    if cert_path.exists() and key_path.exists():
        if _still_good(cert_path, sans):
            return cert_path, key_path
        log.warning("replacing %s: it is a CA or lacks a name this server answers to; clients "
                    "that pinned it need the new one", cert_path)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"podcap {hostname}")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=825))
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.PKCS8,
                                   serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def _sans(hostname: str, listen_host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.DNSName("localhost"), x509.DNSName(hostname)]
    ips = {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")}
    try:
        listen_ip = ipaddress.ip_address(listen_host)
        if not listen_ip.is_unspecified:
            ips.add(listen_ip)
    except ValueError:
        if listen_host and listen_host not in (hostname, "localhost"):
            names.append(x509.DNSName(listen_host))
    return names + [x509.IPAddress(ip) for ip in sorted(ips, key=str)]


def _still_good(cert_path: Path, sans: list[x509.GeneralName]) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        if cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
            return False
        have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return all(name in have for name in sans)
