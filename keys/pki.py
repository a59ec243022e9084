"""The federation's X.509 hierarchy: one root, and under it two CAs for each node.

::

    federation root (offline)
    ├── identity CA of node N (offline, with N's administrators): TLS only
    │     ├── node N      serverAuth + clientAuth, SAN node-N.tongban
    │     ├── hall H      clientAuth, SAN H.hall.node-N.tongban
    │     └── admin A     clientAuth, SAN A.admin.node-N.tongban
    └── seal CA of node N (online on N, to register seals): documents only
          └── seal S      nonRepudiation, documentSigning + emailProtection

A key does one job: the identity CA carries the TLS extended key usages and X.509 name
constraints that keep it inside ``O=N`` and ``node-N.tongban``; the seal CA carries only
document-signing usages, so no TLS stack accepts what it issues. The directory lists each
node's identity CA, and a caller is who its certificate says only if that CA issued it
(:mod:`tongban.keys.trust`). See docs/adr/0004-certificate-hierarchy.md.

Every certificate names its holder as ``O=<node id>, OU=<role>, CN=<principal>``; the
identity of a caller is read from its verified mTLS certificate with
:func:`identity_from_certificate`, never from a request field.

Why one module of about 520 lines: issuing a certificate and reading one back are two
halves of one naming rule (subject, SAN, name constraints); apart, they could drift.

Example:
    >>> from datetime import UTC, datetime
    >>> now = datetime(2026, 1, 1, tzinfo=UTC)
    >>> root_key, root = generate_root(now=now)
    >>> key = generate_signing_key()
    >>> ca_key = generate_signing_key()
    >>> ca = issue_ca(root_key, root, ca_key.public_key(), kind=CaKind.IDENTITY,
    ...     node_id="420700", now=now)
    >>> cert = issue_certificate(ca_key, ca, key.public_key(), role=Role.HALL,
    ...     node_id="420700", name="420700-hall-1", now=now)
    >>> identity_from_certificate(cert).name
    '420700-hall-1'
"""

from __future__ import annotations

import enum
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tongban.keys.clock import require_aware
from tongban.keys.errors import BadPeerData, CallerError

__all__ = [
    "DOCUMENT_SIGNING",
    "CaKind",
    "CertificatePublicKey",
    "Identity",
    "PrivateKey",
    "Role",
    "certificate_fingerprint",
    "certificate_pem",
    "check_node_ca",
    "extended_key_usages",
    "generate_encryption_key",
    "generate_root",
    "generate_signing_key",
    "identity_from_certificate",
    "is_ca",
    "issue_ca",
    "issue_certificate",
    "load_certificate",
    "load_certificates",
    "load_private_key",
    "node_host_name",
    "private_key_pem",
    "public_key_der",
    "write_private_key",
]

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey
CertificatePublicKey = ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey

DEFAULT_ROOT_NAME = "tongban federation root"

# id-kp-documentSigning (RFC 9336); emailProtection beside it for S/MIME-style CMS verifiers.
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
_SEAL_USAGES = (DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION)
_TLS_USAGES = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
_DNS_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


class Role(enum.StrEnum):
    """What a certificate's holder is allowed to be."""

    ROOT = "root"
    NODE = "node"
    HALL = "hall"
    ADMIN = "admin"
    SEAL = "seal"


class CaKind(enum.StrEnum):
    """The two CAs every node has: one for TLS identities, one for seal certificates."""

    IDENTITY = "identity-ca"
    SEAL = "seal"


def node_host_name(node_id: str) -> str:
    """The TLS host name of a node: the name peers and halls check its certificate for."""
    return f"node-{node_id}.tongban"


def _client_host_name(role: Role, node_id: str, name: str) -> str:
    label = name.lower()
    if not _DNS_LABEL.fullmatch(label):
        raise CallerError(
            f"{role.value} name {name!r} must be a DNS label (letters, digits and '-', "
            "at most 63 characters) to go in a TLS certificate"
        )
    return f"{label}.{role.value}.{node_host_name(node_id)}"


@dataclass(frozen=True)
class Identity:
    """Who holds a certificate: a role, the node it belongs to and its own name."""

    role: Role
    node_id: str
    name: str

    def __str__(self) -> str:
        return f"{self.role.value} {self.name} of node {self.node_id}"


def generate_signing_key() -> ec.EllipticCurvePrivateKey:
    """A new ECDSA P-256 key (TLS, certificates and seals)."""
    return ec.generate_private_key(ec.SECP256R1())


def generate_encryption_key() -> x25519.X25519PrivateKey:
    """A new X25519 key for HPKE (DHKEM(X25519, HKDF-SHA256))."""
    return x25519.X25519PrivateKey.generate()


def _name(role: Role, node_id: str, name: str) -> x509.Name:
    return _name_of(role.value, node_id, name)


def _name_of(unit: str, node_id: str, name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, node_id),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, unit),
            x509.NameAttribute(NameOID.COMMON_NAME, name),
        ]
    )


def _hash_for(key: PrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


def generate_root(
    *,
    now: datetime,
    name: str = DEFAULT_ROOT_NAME,
    valid_days: int = 3650,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """Create the federation root key and its self-signed CA certificate."""
    now = require_aware(now, "now")
    key = key or generate_signing_key()
    subject = _name(Role.ROOT, "federation", name)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _key_usage(*, ca: bool, non_repudiation: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=non_repudiation,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _window(
    now: datetime, not_before: datetime | None, not_after: datetime | None, valid_days: int
) -> tuple[datetime, datetime]:
    now = require_aware(now, "now")
    start = require_aware(not_before, "not_before") if not_before else now - timedelta(minutes=5)
    end = require_aware(not_after, "not_after") if not_after else now + timedelta(days=valid_days)
    if end <= start:
        raise CallerError(f"certificate window is empty: {start.isoformat()} .. {end.isoformat()}")
    return start, end


def _node_subtree(node_id: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, node_id),
        ]
    )


def issue_ca(
    root_key: ec.EllipticCurvePrivateKey,
    root_cert: x509.Certificate,
    public_key: ec.EllipticCurvePublicKey,
    *,
    kind: CaKind,
    node_id: str,
    now: datetime,
    valid_days: int = 3650,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> x509.Certificate:
    """Issue one of a node's two CAs under the federation root.

    An identity CA may issue only TLS certificates (serverAuth, clientAuth) for names
    inside ``C=CN, O=<node_id>`` and ``node-<node_id>.tongban`` (name constraints); a seal
    CA only document-signing certificates (documentSigning, emailProtection). Both have
    pathLen 0.

    Raises:
        CallerError: the window is empty.
    """
    start, end = _window(now, not_before, not_after, valid_days)
    if kind is CaKind.IDENTITY:
        subject = _name_of(kind.value, node_id, f"{node_id} identity CA")
        usages: tuple[x509.ObjectIdentifier, ...] = _TLS_USAGES
    else:
        subject = _name(Role.SEAL, node_id, f"{node_id} seal CA")
        usages = _SEAL_USAGES
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, non_repudiation=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
    )
    if kind is CaKind.IDENTITY:
        # TLS stacks enforce these; document verifiers often cannot read directoryName
        # constraints, so the seal CA relies on its usages and the directory instead.
        permitted: list[x509.GeneralName] = [
            x509.DirectoryName(_node_subtree(node_id)),
            x509.DNSName(node_host_name(node_id)),
        ]
        builder = builder.add_extension(
            x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None),
            critical=True,
        )
    return builder.sign(root_key, hashes.SHA256())


def issue_certificate(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_cert: x509.Certificate,
    subject_public_key: CertificatePublicKey,
    *,
    role: Role,
    node_id: str,
    name: str,
    now: datetime,
    valid_days: int = 825,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    subject: x509.Name | None = None,
    uris: Sequence[str] = (),
    extensions: Sequence[x509.ExtensionType] = (),
) -> x509.Certificate:
    """Issue an end-entity certificate for a node, hall, admin or seal key.

    ``subject`` replaces ``C=CN, O=<node_id>, OU=<role>, CN=<name>`` (seals name their
    organisation, :mod:`tongban.keys.seal_subject`); ``uris`` are added to the subject
    alternative name and ``extensions`` as non-critical extensions.

    Nodes get serverAuth and clientAuth and the DNS name ``node-<id>.tongban``; halls and
    admins clientAuth and ``<name>.<role>.node-<id>.tongban``; seals non-repudiation with
    documentSigning and emailProtection. Sign node, hall and admin certificates with the
    node's identity CA and seals with its seal CA (:func:`issue_ca`).
    ``not_before``/``not_after`` override the default window.

    Raises:
        CallerError: the role is ROOT, a name cannot be a DNS label, or the window is empty.
    """
    if role is Role.ROOT:
        raise CallerError("use generate_root() for the federation root")
    start, end = _window(now, not_before, not_after, valid_days)
    seal = role is Role.SEAL
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject or _name(role, node_id, name))
        .issuer_name(issuer_cert.subject)
        .public_key(subject_public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False, non_repudiation=seal), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_public_key), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    alt_names: list[x509.GeneralName] = []
    if role is Role.NODE:
        usages: Sequence[x509.ObjectIdentifier] = _TLS_USAGES
        alt_names.append(x509.DNSName(node_host_name(node_id)))
    elif role in (Role.HALL, Role.ADMIN):
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        alt_names.append(x509.DNSName(_client_host_name(role, node_id, name)))
    else:
        usages = _SEAL_USAGES
    builder = builder.add_extension(x509.ExtendedKeyUsage(list(usages)), critical=False)
    alt_names += [x509.DNSName(d) for d in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses]
    alt_names += [x509.UniformResourceIdentifier(u) for u in uris]
    for extension in extensions:
        builder = builder.add_extension(extension, critical=False)
    if alt_names:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def extended_key_usages(cert: x509.Certificate) -> frozenset[x509.ObjectIdentifier] | None:
    """The certificate's extended key usages, or None if it has no such extension."""
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return frozenset(ext.value)


def is_ca(cert: x509.Certificate) -> bool:
    """Whether basic constraints mark ``cert`` as a CA (no such extension: not a CA)."""
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def check_node_ca(cert: x509.Certificate, *, kind: CaKind, node_id: str) -> None:
    """Check that ``cert`` can be node ``node_id``'s CA of that kind and no other.

    Raises:
        BadPeerData: not a CA, of another node, or allowed usages of the other kind.
    """
    what = f"the {kind.value} certificate of node {node_id}"
    if not is_ca(cert):
        raise BadPeerData(f"{what} is not a CA certificate")
    owners = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    if owners != [node_id]:
        raise BadPeerData(f"{what} names organisation {owners!r}, not {node_id!r}")
    usages = extended_key_usages(cert)
    wanted, foreign = (
        (_TLS_USAGES, _SEAL_USAGES) if kind is CaKind.IDENTITY else (_SEAL_USAGES, _TLS_USAGES)
    )
    if usages is None or not usages >= set(wanted) or usages & set(foreign):
        shown = sorted(u.dotted_string for u in usages or ())
        raise BadPeerData(f"{what} must be limited to its own extended key usages, has {shown}")


def _single(name: x509.Name, oid: x509.ObjectIdentifier, what: str) -> str:
    values = name.get_attributes_for_oid(oid)
    if len(values) != 1:
        raise BadPeerData(f"certificate subject has {len(values)} {what} attributes, expected 1")
    value = values[0].value
    return value if isinstance(value, str) else value.decode()


def identity_from_certificate(cert: x509.Certificate) -> Identity:
    """Read the holder's identity from a certificate issued by :func:`issue_certificate`.

    Raises:
        BadPeerData: the subject does not name a known role, node and principal.
    """
    subject = cert.subject
    role_text = _single(subject, NameOID.ORGANIZATIONAL_UNIT_NAME, "OU")
    try:
        role = Role(role_text)
    except ValueError:
        raise BadPeerData(f"certificate role {role_text!r} is not a tongban role") from None
    return Identity(
        role=role,
        node_id=_single(subject, NameOID.ORGANIZATION_NAME, "O"),
        name=_single(subject, NameOID.COMMON_NAME, "CN"),
    )


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 fingerprint of the DER certificate, lowercase hex."""
    return cert.fingerprint(hashes.SHA256()).hex()


def certificate_pem(cert: x509.Certificate) -> bytes:
    """The certificate in PEM, as written to files and into the directory."""
    return cert.public_bytes(serialization.Encoding.PEM)


def public_key_der(key: CertificatePublicKey | x25519.X25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER of a public key."""
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def private_key_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM; callers write it with owner-only permissions."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_private_key(path: Path, key: PrivateKey) -> None:
    """Write a private key readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_bytes(private_key_pem(key))


def load_private_key(data: bytes) -> PrivateKey:
    """Load a PEM private key of a supported type.

    Raises:
        CallerError: not a PEM key, or of an unsupported type.
    """
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise CallerError(f"not a usable PEM private key: {exc}") from None
    if not isinstance(
        key, ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | x25519.X25519PrivateKey
    ):
        raise CallerError(f"unsupported private key type {type(key).__name__}")
    return key


def load_certificate(data: bytes) -> x509.Certificate:
    """Load one PEM or DER certificate.

    Raises:
        BadPeerData: the bytes are not a certificate.
    """
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as exc:
        raise BadPeerData(f"not an X.509 certificate: {exc}") from None


def load_certificates(data: bytes) -> list[x509.Certificate]:
    """Load every certificate of a PEM bundle.

    Raises:
        BadPeerData: the bundle holds no certificate.
    """
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise BadPeerData(f"not a PEM certificate bundle: {exc}") from None
    return certs
