"""Keys and certificate requests: the agent makes its key and CSR, the CA checks what it got.

The CA takes only the key from a CSR (the names are its own, pki/ca.py), so the check here
is of what it would sign: a bounded, well-formed request whose signature proves the key, on a
curve or size worth trusting.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.x509.oid import NameOID

from podcap import limits
from podcap.errors import InvalidArgument

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_key() -> ec.EllipticCurvePrivateKey:
    """Every key podcap makes: EC P-256."""
    return ec.generate_private_key(ec.SECP256R1())


def key_pem(key: PrivateKey) -> bytes:
    """A private key as unencrypted PKCS#8 PEM (kept 0600, see files.py)."""
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def new_key_and_csr(node_name: str) -> tuple[bytes, bytes]:
    """Agent side: (key_pem, csr_pem). The subject only helps a human reading the CSR; the CA
    decides the certificate's names."""
    key = new_key()
    cn = node_name[:64]  # X.509's upper bound for a common name
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
    return key_pem(key), csr.public_bytes(serialization.Encoding.PEM)


def public_key_of(csr_pem: bytes) -> CertificatePublicKeyTypes:
    """CA side: the key a CSR proves it holds; InvalidArgument for an oversized, unreadable or
    badly signed request, or a weak key."""
    if len(csr_pem) > limits.CSR_MAX_BYTES:
        raise InvalidArgument(f"the CSR has {len(csr_pem)} bytes; at most "
                              f"{limits.CSR_MAX_BYTES} are accepted")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise InvalidArgument(f"the CSR is not a PEM certificate request: {exc}") from exc
    try:
        valid = csr.is_signature_valid
    except (ValueError, InvalidSignature, NotImplementedError) as exc:
        raise InvalidArgument(f"the CSR's signature cannot be checked: {exc}") from exc
    if not valid:
        raise InvalidArgument("the CSR's signature does not match its public key")
    public_key = csr.public_key()
    _check_public_key(public_key)
    return public_key


def _check_public_key(key: object) -> None:
    if isinstance(key, ec.EllipticCurvePublicKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1):
            raise InvalidArgument(f"the CSR's EC key is on {key.curve.name}; use P-256 or P-384")
    elif isinstance(key, rsa.RSAPublicKey):
        if key.key_size < 2048:
            raise InvalidArgument(f"the CSR's RSA key has {key.key_size} bits; use 2048 or more")
    else:
        raise InvalidArgument("the CSR's key must be EC (P-256, P-384) or RSA")
