"""Who a seal certificate names, as a third party reads it, and as the verifier reads it.

A seal certificate's subject names the organisation and the seal the way EN 319 412-3 asks
of a certificate for a legal person: ``C=CN``, ``O=`` the organisation's name,
``organizationIdentifier`` (2.5.4.97) with its 统一社会信用代码 in the legal-person
semantics of ETSI EN 319 412-1 clause 5.1.4 (``NTR`` for a national trade register
identifier, the ISO 3166 country code, ``-``, the code: ``NTRCN-91350100M000100Y43``), and
``CN=`` the registered seal name. A ``qcStatements`` extension declares that semantics
(id-etsi-qcs-semanticsId-Legal, EN 319 412-1 clause 5.1.2), as the standard asks.

Which node and which registered seal a certificate belongs to is machine data, carried in the
subject alternative name as ``urn:tongban:seal:<node id>:<seal id>``; the verifier reads it
from there, and from the older subject ``O=<node>, OU=seal, CN=<seal id>`` for certificates
issued before (they keep verifying).

>>> seal_subject(org_name="武汉市行政审批局", org_uscc="11420100MB1646962Q",
...              seal_name="武汉市行政审批局行政审批专用章").rfc4514_string()  # doctest: +SKIP
'CN=武汉市行政审批局行政审批专用章,2.5.4.97=NTRCN-11420100MB1646962Q,O=武汉市行政审批局,C=CN'
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from tongban.keys.errors import BadPeerData
from tongban.keys.pki import Identity, Role, identity_from_certificate

__all__ = [
    "SEAL_URN_PREFIX",
    "legal_person_identifier",
    "seal_identity",
    "seal_subject",
    "seal_uri",
    "semantics_statement",
]

SEAL_URN_PREFIX = "urn:tongban:seal:"

# ETSI EN 319 412-1 clause 5.1.4: "NTR" + ISO 3166-1 alpha-2 country code + "-" + identifier.
_NTR = "NTRCN-"

# qcStatements (RFC 3739) holding one QCStatement: id-qcs-pkixQCSyntax-v2 (1.3.6.1.5.5.7.11.2)
# with SemanticsInformation naming id-etsi-qcs-semanticsId-Legal (0.4.0.194121.1.2). Fixed DER.
_QC_STATEMENTS_OID = x509.ObjectIdentifier("1.3.6.1.5.5.7.1.3")
_QC_SEMANTICS_LEGAL = bytes.fromhex("3017301506082b06010505070b023009060704008bec490102")


def legal_person_identifier(org_uscc: str) -> str:
    """The ``organizationIdentifier`` value for an organisation's 统一社会信用代码."""
    return f"{_NTR}{org_uscc}"


def seal_subject(*, org_name: str, org_uscc: str, seal_name: str) -> x509.Name:
    """The subject of a seal certificate: country, organisation, its identifier, seal name."""
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org_name),
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, legal_person_identifier(org_uscc)),
            x509.NameAttribute(NameOID.COMMON_NAME, seal_name),
        ]
    )


def seal_uri(node_id: str, seal_id: str) -> str:
    """The subject alternative name that says which node's registered seal this is."""
    return f"{SEAL_URN_PREFIX}{node_id}:{seal_id}"


def semantics_statement() -> x509.UnrecognizedExtension:
    """The qcStatements extension declaring the legal-person semantics identifier."""
    return x509.UnrecognizedExtension(_QC_STATEMENTS_OID, _QC_SEMANTICS_LEGAL)


def seal_identity(cert: x509.Certificate) -> Identity:
    """The node and seal id a seal certificate belongs to (``Role.SEAL``), or, for any other
    certificate, the identity its subject names.

    Raises:
        BadPeerData: neither a seal URI nor a tongban subject, or more than one seal URI.
    """
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        uris: list[str] = []
    else:
        uris = [
            u
            for u in names.get_values_for_type(x509.UniformResourceIdentifier)
            if u.startswith(SEAL_URN_PREFIX)
        ]
    if not uris:
        return identity_from_certificate(cert)
    uri, *others = uris
    if others:
        raise BadPeerData(f"the certificate names {len(uris)} seals, expected 1")
    node_id, sep, seal_id = uri.removeprefix(SEAL_URN_PREFIX).partition(":")
    if not sep or not node_id or not seal_id:
        raise BadPeerData(f"malformed seal name {uri!r}")
    return Identity(Role.SEAL, node_id, seal_id)
