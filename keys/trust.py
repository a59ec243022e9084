"""Who a TLS certificate names, decided by the federation directory.

The TLS handshake proves that the peer holds a key certified somewhere under the federation
root. That alone would let any CA under the root vouch for any name: a node's seal CA, or a
certificate from before the hierarchy of docs/adr/0004-certificate-hierarchy.md. A
certificate is therefore the identity it names only if

- it is an end-entity certificate of a node, hall or admin (not a CA, not a seal),
- it carries the extended key usage the connection needs (clientAuth for a caller,
  serverAuth for a node answering a peer), and
- the identity CA that the signed directory lists for the node in its subject issued it.

Example:
    >>> identity = authenticate_certificate(cert, directory, usage=CLIENT_AUTH)  # doctest: +SKIP
"""

from __future__ import annotations

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID

from tongban.keys.directory import FederationDirectory, UnknownNodeError
from tongban.keys.errors import BadPeerData
from tongban.keys.pki import Identity, Role, extended_key_usages, identity_from_certificate, is_ca

__all__ = [
    "CLIENT_AUTH",
    "SERVER_AUTH",
    "UntrustedCertificate",
    "authenticate_certificate",
]

CLIENT_AUTH = ExtendedKeyUsageOID.CLIENT_AUTH
SERVER_AUTH = ExtendedKeyUsageOID.SERVER_AUTH
_USAGE_NAMES = {CLIENT_AUTH: "clientAuth", SERVER_AUTH: "serverAuth"}
_TLS_ROLES = (Role.NODE, Role.HALL, Role.ADMIN)


class UntrustedCertificate(BadPeerData):
    """A certificate that the TLS handshake accepted names an identity it may not claim."""

    code = "untrusted-certificate"


def authenticate_certificate(
    cert: x509.Certificate, directory: FederationDirectory, *, usage: x509.ObjectIdentifier
) -> Identity:
    """The identity ``cert`` names, if the directory's identity CA for that node issued it.

    Raises:
        UntrustedCertificate: with a message naming what is wrong.
    """
    try:
        identity = identity_from_certificate(cert)
    except BadPeerData as exc:
        raise UntrustedCertificate(f"the certificate is not a tongban identity: {exc}") from None
    if identity.role not in _TLS_ROLES:
        raise UntrustedCertificate(f"a {identity.role.value} certificate is not a TLS identity")
    if is_ca(cert):
        raise UntrustedCertificate(f"the certificate of {identity} is a CA certificate")
    usages = extended_key_usages(cert)
    if usages is None or usage not in usages:
        wanted = _USAGE_NAMES.get(usage, usage.dotted_string)
        raise UntrustedCertificate(
            f"the certificate of {identity} lacks the {wanted} extended key usage"
        )
    try:
        entry = directory.node(identity.node_id)
    except UnknownNodeError:
        raise UntrustedCertificate(
            f"the certificate of {identity} names node {identity.node_id}, which is not a "
            "member of the federation"
        ) from None
    try:
        cert.verify_directly_issued_by(entry.identity_ca)
    except (ValueError, TypeError, InvalidSignature):
        raise UntrustedCertificate(
            f"the certificate of {identity} was not issued by the identity CA the directory "
            f"lists for node {entry.node_id} (its issuer: {cert.issuer.rfc4514_string()})"
        ) from None
    return identity
