"""The names a podcap certificate carries, and reading them back from a verified peer.

The controller answers to one DNS name (``CONTROLLER_NAME``) on both listeners; an agent's
certificate names it by URI SAN (``AGENT_URI_PREFIX`` + agent id, ``NODE_URI_PREFIX`` + the node
name it joined with). The controller takes who is calling from these, never from a message.
A CA is pinned by its fingerprint (in the join token).
"""

from __future__ import annotations

import hashlib
import re

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from podcap.errors import InvalidArgument, Unauthenticated

CONTROLLER_NAME = "podcap-controller"
AGENT_URI_PREFIX = "podcap://agent/"
NODE_URI_PREFIX = "podcap://node/"  # the node name an agent joined with (checks.node_name)

# An agent id names a row (String(64)) and ends a URI: no '/', '%', spaces or '..'.
_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def check_agent_id(agent_id: str) -> None:
    """InvalidArgument unless ``agent_id`` can be written into a certificate and read back."""
    if not isinstance(agent_id, str) or not _AGENT_ID.fullmatch(agent_id):
        raise InvalidArgument(f"invalid agent id {str(agent_id)[:70]!r}: expected letters, "
                              "digits, '.', '_' or '-', at most 64 characters")


def fingerprint(cert_pem_or_der: bytes) -> str:
    """SHA-256 hex (64 lowercase characters) of a certificate's DER encoding."""
    if cert_pem_or_der.lstrip().startswith(b"-----BEGIN"):
        try:
            cert = x509.load_pem_x509_certificate(cert_pem_or_der)
        except ValueError as exc:
            raise InvalidArgument(f"not a PEM certificate: {exc}") from exc
        der = cert.public_bytes(serialization.Encoding.DER)
    else:
        der = cert_pem_or_der
    return hashlib.sha256(der).hexdigest()


def agent_id_of(cert_pem: bytes) -> str:
    """The agent id from a peer certificate's URI SAN; raises Unauthenticated if there is none.

    Trusts the certificate: call it only on one the TLS layer has verified against the CA."""
    try:
        if cert_pem.lstrip().startswith(b"-----BEGIN"):
            cert = x509.load_pem_x509_certificate(cert_pem)
        else:
            cert = x509.load_der_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound as exc:
        raise Unauthenticated("the peer certificate has no subject alternative name; join "
                              "the agent to get a podcap agent certificate") from exc
    except ValueError as exc:
        raise Unauthenticated(f"the peer certificate cannot be read: {exc}") from exc
    ids = [uri[len(AGENT_URI_PREFIX):]
           for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
           if uri.startswith(AGENT_URI_PREFIX)]
    if len(ids) != 1 or not _AGENT_ID.fullmatch(ids[0]):
        raise Unauthenticated("the peer certificate names no podcap agent (expected one URI "
                              f"SAN {AGENT_URI_PREFIX}<agent id>)")
    return ids[0]


def node_of(cert_pem: bytes) -> str:
    """The node name a verified agent certificate was issued for; "" for certificates issued
    before names were bound (the controller's record of the join decides then)."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem) if cert_pem.lstrip().startswith(
            b"-----BEGIN") else x509.load_der_x509_certificate(cert_pem)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (x509.ExtensionNotFound, ValueError):
        return ""
    names = [uri[len(NODE_URI_PREFIX):]
             for uri in san.get_values_for_type(x509.UniformResourceIdentifier)
             if uri.startswith(NODE_URI_PREFIX)]
    return names[0] if len(names) == 1 else ""
