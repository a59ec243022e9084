"""The checks of the seal itself: signature, certificate path, registration, key validity.

Each check writes one result into the :class:`_Checks` collector: passed, skipped, failed
(INVALID) or undecided (INDETERMINATE), with the sub-indication and the detail a reader
needs. The verifier calls them in the order of the report's table; the e-certificate
the seal carries is checked in ``_ecert``.

The signing time is the one the signer wrote: a claim, not a proof (ADR 0006). It is
believed for expiry and for an orderly revocation, never against a revocation that says
the key may have been in other hands.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.keys.clock import format_time
from tongban.keys.seals import RevocationReason, SealRecord
from tongban.keys.verification._der import _Signed
from tongban.keys.verification._paths import _CertFacts, _CertificatePaths, _der
from tongban.keys.verification._report import SealIdentity, SubIndication, _Checks, _Context

_CLOCK_SKEW = timedelta(minutes=5)
_DIGESTS: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256,
    "sha384": hashes.SHA384,
    "sha512": hashes.SHA512,
}
_ECDSA = {"sha256_ecdsa": "sha256", "sha384_ecdsa": "sha384", "sha512_ecdsa": "sha512"}


def _check_signature(signed: _Signed, cert: x509.Certificate, checks: _Checks) -> None:
    """The signature over the signed attributes, with the certificate's key."""
    key = cert.public_key()
    hash_name = _ECDSA.get(signed.signature_algorithm)
    if hash_name is None or not isinstance(key, ec.EllipticCurvePublicKey):
        checks.undecided(
            "signature",
            SubIndication.CRYPTO_CONSTRAINTS_FAILURE,
            f"signature algorithm {signed.signature_algorithm} with a "
            f"{type(key).__name__} is not accepted for seals",
        )
        return
    try:
        key.verify(signed.signature, signed.signed_attrs_der, ec.ECDSA(_DIGESTS[hash_name]()))
    except InvalidSignature:
        checks.failed(
            "signature",
            SubIndication.SIG_CRYPTO_FAILURE,
            "the signature does not verify with the seal certificate's key",
        )
        return
    checks.passed(
        "signature",
        f"ECDSA {key.curve.name} with {hash_name.upper()} over the signed attributes verifies",
    )


def _check_chain(
    paths: _CertificatePaths,
    leaf: _CertFacts,
    signed: _Signed,
    checks: _Checks,
    context: _Context,
) -> tuple[x509.Certificate, ...] | None:
    """The path to a trusted root, and that the certificate is a seal's; the path or None."""
    try:
        chain, problem = paths.path(
            leaf, signed.certificates, context.proven_time or context.signing_time or context.at
        )
    except ValueError as exc:  # an extra certificate in the seal is unreadable
        chain, problem = None, f"a certificate in the seal is malformed: {exc}"
    if chain is None:
        checks.undecided(
            "certificate_chain",
            SubIndication.NO_CERTIFICATE_CHAIN_FOUND,
            f"the seal certificate does not chain to a trusted root: {problem}",
        )
        return None
    if not leaf.seal_certificate:
        checks.undecided(
            "certificate_chain",
            SubIndication.CHAIN_CONSTRAINTS_FAILURE,
            f"the certificate is not a seal certificate with non-repudiation: {leaf.holder}",
        )
        return chain
    root = paths.facts_of(_der(chain[-1])).subject
    checks.passed(
        "certificate_chain", f"{leaf.holder}; chains to {root} ({len(chain)} certificates)"
    )
    return chain


def _check_registered(
    leaf: _CertFacts,
    records: Sequence[SealRecord],
    by_fingerprint: Mapping[str, SealRecord],
    checks: _Checks,
    context: _Context,
) -> SealRecord | None:
    """That the certificate is a published seal's; its record, or None."""
    seal_id, node_id = leaf.seal_id, leaf.node_id
    record = by_fingerprint.get(leaf.fingerprint)
    context.signer = SealIdentity(
        seal_id=seal_id,
        node_id=node_id,
        certificate_subject=leaf.subject,
        certificate_sha256=leaf.fingerprint,
        seal_name=record.name if record else None,
        org_uscc=record.org_uscc if record else None,
    )
    if record is None:
        known = any(r.seal_id == seal_id for r in records)
        detail = (
            f"seal {seal_id!r} is registered with a different certificate"
            if known
            else f"seal id {seal_id!r} is not in the published seal records"
        )
        checks.undecided("seal_registered", SubIndication.SIG_CONSTRAINTS_FAILURE, detail)
        return None
    if record.node_id != node_id or record.seal_id != seal_id:
        checks.undecided(
            "seal_registered",
            SubIndication.SIG_CONSTRAINTS_FAILURE,
            f"the record of seal {record.seal_id!r} (node {record.node_id}) does not match "
            f"its certificate (seal {seal_id!r}, node {node_id})",
        )
        return None
    checks.passed(
        "seal_registered",
        f"{record.name} ({record.seal_id}) of {record.org_uscc}, node {record.node_id}",
    )
    return record


def _check_key_validity(
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate] | None,
    record: SealRecord | None,
    checks: _Checks,
    context: _Context,
    *,
    proven_time: datetime | None,
) -> None:
    """Certificates, seal window and revocation at the moment of sealing (ADR 0006).

    ``proven_time`` is a time the seal is proven to have existed by (a trusted time
    stamp); none is read yet, so it is None. The claimed signing time is the signer's
    own word: it is believed for expiry and for an orderly revocation, never against a
    revocation that says the key may have been in other hands.
    """
    name = "key_validity"
    signing_time = context.signing_time
    if signing_time is not None and signing_time > context.at + _CLOCK_SKEW:
        checks.undecided(
            name,
            SubIndication.NO_POE,
            f"the signing time {format_time(signing_time)} is after the verification "
            f"time {format_time(context.at)}",
        )
        return
    moment = proven_time or signing_time or context.at
    if proven_time is not None:
        when = f"the proven time {format_time(moment)}"
    elif signing_time is not None:
        when = f"the signing time {format_time(moment)}"
    else:
        when = f"the verification time {format_time(moment)} (the seal states no signing time)"
    for each in chain or (cert,):
        if moment > each.not_valid_after_utc or moment < each.not_valid_before_utc:
            late = moment > each.not_valid_after_utc
            detail = (
                f"certificate {each.subject.rfc4514_string()} (valid {_window(each)}) is "
                f"{'expired' if late else 'not yet valid'} at {when}"
            )
            if signing_time is None and proven_time is None:
                checks.undecided(name, SubIndication.OUT_OF_BOUNDS_NO_POE, detail)
            else:
                sub = SubIndication.EXPIRED if late else SubIndication.NOT_YET_VALID
                checks.failed(name, sub, detail)
            return
    if record is None:
        checks.undecided(
            name,
            SubIndication.TRY_LATER,
            f"certificates valid at {when}; revocation unknown: the seal is not in the "
            "published records",
        )
        return
    revoked_at = record.revoked_at
    if revoked_at is not None and moment >= revoked_at:
        detail = (
            f"seal {record.seal_id} was revoked at {format_time(revoked_at)} "
            f"({record.revocation_text}), not later than {when}"
        )
        if proven_time is None and signing_time is None:
            checks.undecided(name, SubIndication.REVOKED_NO_POE, detail)
        else:
            checks.failed(name, SubIndication.REVOKED, detail)
        return
    reason = record.revocation_reason or RevocationReason.UNSPECIFIED
    if (
        revoked_at is not None
        and proven_time is None
        and context.at >= revoked_at
        and reason.key_possibly_compromised
    ):
        # Only the signer's word puts the seal before the revocation, and after a
        # compromise whoever holds the key can write any time. The verification time
        # proves nothing either: it is after the revocation.
        checks.undecided(
            name,
            SubIndication.REVOKED_NO_POE,
            f"the key of seal {record.seal_id} was revoked at {format_time(revoked_at)} "
            f"{_COMPROMISE[reason]} ({record.revocation_text}); {when} is only the "
            "signer's claim, and nothing proves the seal existed before the revocation",
        )
        return
    if not record.not_before <= moment <= record.not_after:
        late = moment > record.not_after
        checks.failed(
            name,
            SubIndication.EXPIRED if late else SubIndication.NOT_YET_VALID,
            f"seal {record.seal_id} is registered for {format_time(record.not_before)} .. "
            f"{format_time(record.not_after)}, not {when}",
        )
        return
    later = ""
    if revoked_at is not None and revoked_at > context.at:
        later = (
            f"; revoked at {format_time(revoked_at)} ({record.revocation_text}), after "
            "the verification time"
        )
    elif revoked_at is not None:
        later = (
            f"; revoked later, at {format_time(revoked_at)} ({record.revocation_text}), "
            "which does not affect seals made before"
        )
    checks.passed(name, f"certificates and seal valid and not revoked at {when}{later}")


_COMPROMISE = {
    RevocationReason.KEY_COMPROMISE: "for key compromise",
    RevocationReason.CA_COMPROMISE: "for compromise of its certificate authority",
    RevocationReason.UNSPECIFIED: "for an unspecified reason, which counts as a possible "
    "key compromise",
}


def _window(cert: x509.Certificate) -> str:
    return f"{format_time(cert.not_valid_before_utc)} .. {format_time(cert.not_valid_after_utc)}"
