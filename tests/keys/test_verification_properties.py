"""The hand-written DER reader of keys/verification/_der.py against asn1crypto as an oracle.

The reader (``_parse_signed_data`` and the ``_node``/``_children`` walker under it) stays:
it is many times faster than a general ASN.1 library. These properties hold it to what
asn1crypto reads from the same bytes: on seals the project makes, on variants of them
built with asn1crypto (fields the project never writes, such as negative serials or other
time forms), and on arbitrarily damaged bytes, where the reader must either raise its own
``_FormatError`` or agree with asn1crypto on every field it returns.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import pytest
from asn1crypto import algos, cms, core
from cryptography import x509
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.fixtures_seal import ECERT, NOW, forge_detached, seal_world
from tongban.keys.seals import ECERT_IDENTIFIER_ATTRIBUTE
from tongban.keys.verification._der import _FormatError, _parse_signed_data, _Signed

CRYPTO = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def oracle(der: bytes) -> _Signed:
    """The fields the reader returns, read by asn1crypto (which raises on what it cannot
    read)."""
    info = cms.ContentInfo.load(der)
    assert info["content_type"].native == "signed_data"
    signed = info["content"]
    (signer,) = list(signed["signer_infos"])
    sid = signer["sid"]
    issuer_der = serial = None
    if sid.name == "issuer_and_serial_number":
        issuer_der = sid.chosen["issuer"].dump()
        serial = sid.chosen["serial_number"].native
    attrs_der = signer["signed_attrs"].dump()
    attrs: dict[str, Any] = {}
    for attribute in signer["signed_attrs"]:
        attrs[attribute["type"].dotted] = attribute["values"][0]
    time = attrs.get("1.2.840.113549.1.9.5")
    ident = attrs.get(ECERT_IDENTIFIER_ATTRIBUTE)
    ess = attrs.get("1.2.840.113549.1.9.16.2.47")
    certificates = signed["certificates"]
    return _Signed(
        digest_algorithm=_name(signer["digest_algorithm"]["algorithm"]),
        signature_algorithm=_name(signer["signature_algorithm"]["algorithm"]),
        signature=signer["signature"].native,
        signed_attrs_der=b"\x31" + attrs_der[1:],
        message_digest=attrs["1.2.840.113549.1.9.4"].native,
        signing_time=time.native.replace(microsecond=0) if time is not None else None,
        identifier=core.UTF8String.load(ident.dump()).native if ident is not None else None,
        ess_cert_hashes=tuple(
            (_name(c["hash_algorithm"]["algorithm"]), c["cert_hash"].native) for c in ess["certs"]
        )
        if ess is not None
        else (),
        issuer_der=issuer_der,
        serial=serial,
        certificates=tuple(
            c.chosen.dump() for c in (certificates or []) if c.name == "certificate"
        ),
    )


_NAMES = {
    "sha256": "sha256",
    "sha384": "sha384",
    "sha512": "sha512",
    "sha256_ecdsa": "sha256_ecdsa",
    "sha384_ecdsa": "sha384_ecdsa",
    "sha512_ecdsa": "sha512_ecdsa",
}


def _name(oid: core.ObjectIdentifier) -> str:
    native = oid.native
    if native in _NAMES:
        return _NAMES[native]
    return f"unknown OID {oid.contents.hex()}"


def read(der: bytes) -> _Signed:
    return _parse_signed_data(der, "the seal")


def seal(document: bytes, *, signing_time: datetime, identifier: str | None, chain: bool) -> bytes:
    world = seal_world()
    return forge_detached(
        document,
        world.signer,
        world.record.certificate,
        signing_time=signing_time,
        identifier=identifier,
        chain=[world.root] if chain else [],
    )


# Times the project writes: UTCTime until 2049, GeneralizedTime from 2050.
signing_times = st.datetimes(
    min_value=datetime(1950, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)
identifier_texts = st.none() | st.just(str(ECERT)) | st.text(max_size=40)


@CRYPTO
@given(
    document=st.binary(max_size=64),
    signing_time=signing_times,
    identifier=identifier_texts,
    chain=st.booleans(),
)
def test_the_reader_agrees_with_asn1crypto_on_seals_the_project_makes(
    document: bytes, signing_time: datetime, identifier: str | None, chain: bool
) -> None:
    der = seal(document, signing_time=signing_time, identifier=identifier, chain=chain)
    assert read(der) == oracle(der)
    assert read(der).message_digest == hashlib.sha256(document).digest()


@pytest.fixture(scope="module")
def good_seal() -> bytes:
    return seal(b"permit", signing_time=NOW, identifier=str(ECERT), chain=True)


def _tlv(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(octets)]) + octets + content


def _rebuilt(der: bytes, change: Any) -> bytes:
    """``der`` with its signer info changed by ``change`` and encoded by asn1crypto.

    Only the signer infos are re-encoded (dump(force=True) of the whole ContentInfo
    re-encodes every certificate and takes a fifth of a second); the rest keeps its bytes.
    """
    info = cms.ContentInfo.load(der)
    signed = info["content"]
    change(signed)
    kept = [signed[name].dump() for name in ("version", "digest_algorithms", "encap_content_info")]
    if signed["certificates"]:
        kept.append(signed["certificates"].dump())
    body = _tlv(0x30, b"".join(kept) + signed["signer_infos"].dump(force=True))
    return _tlv(0x30, info["content_type"].dump() + _tlv(0xA0, body))


def _set_serial(value: int) -> Any:
    def change(signed: cms.SignedData) -> None:
        signed["signer_infos"][0]["sid"].chosen["serial_number"] = value

    return change


def _set_signing_time(value: datetime, generalized: bool) -> Any:
    def change(signed: cms.SignedData) -> None:
        attrs = signed["signer_infos"][0]["signed_attrs"]
        for attribute in attrs:
            if attribute["type"].native == "signing_time":
                time = core.GeneralizedTime(value) if generalized else core.UTCTime(value)
                attribute["values"] = cms.SetOfTime(
                    [cms.Time(name=time_name(generalized), value=time)]
                )

    return change


def time_name(generalized: bool) -> str:
    return "generalized_time" if generalized else "utc_time"


def _set_ess_algorithm(name: str) -> Any:
    def change(signed: cms.SignedData) -> None:
        for attribute in signed["signer_infos"][0]["signed_attrs"]:
            if attribute["type"].native == "signing_certificate_v2":
                for cert in attribute["values"][0]["certs"]:
                    cert["hash_algorithm"] = algos.DigestAlgorithm({"algorithm": name})

    return change


def _set_algorithms(digest: str, signature: str) -> Any:
    def change(signed: cms.SignedData) -> None:
        signer = signed["signer_infos"][0]
        signer["digest_algorithm"] = algos.DigestAlgorithm({"algorithm": digest})
        signer["signature_algorithm"] = algos.SignedDigestAlgorithm({"algorithm": signature})

    return change


@CRYPTO
@given(serial=st.integers(-(2**160), 2**160))
@example(serial=-1)
@example(serial=-(2**63))
@example(serial=2**159)
def test_the_reader_reads_serial_numbers_as_asn1crypto_does(good_seal: bytes, serial: int) -> None:
    der = _rebuilt(good_seal, _set_serial(serial))
    assert oracle(der).serial == serial
    assert read(der) == oracle(der)


@CRYPTO
@given(
    moment=st.datetimes(
        min_value=datetime(1950, 1, 1), max_value=datetime(2049, 12, 31), timezones=st.just(UTC)
    ),
    generalized=st.booleans(),
)
def test_the_reader_reads_either_time_form_as_asn1crypto_does(
    good_seal: bytes, moment: datetime, generalized: bool
) -> None:
    der = _rebuilt(good_seal, _set_signing_time(moment.replace(microsecond=0), generalized))
    assert read(der) == oracle(der)
    assert read(der).signing_time == moment.replace(microsecond=0)


@pytest.mark.parametrize("ess", ["sha256", "sha384", "sha512", "sha1", "md5"])
@pytest.mark.parametrize(
    ("digest", "signature"),
    [("sha256", "sha256_ecdsa"), ("sha384", "sha384_ecdsa"), ("sha1", "sha1_ecdsa")],
)
def test_the_reader_names_algorithms_as_asn1crypto_does(
    good_seal: bytes, ess: str, digest: str, signature: str
) -> None:
    der = _rebuilt(_rebuilt(good_seal, _set_ess_algorithm(ess)), _set_algorithms(digest, signature))
    assert read(der) == oracle(der)


@settings(max_examples=300, deadline=None)
@given(data=st.data())
@example(data=None)  # the SignedData version's tag changed: asn1crypto refuses, the reader not
def test_damaged_bytes_are_refused_or_read_as_asn1crypto_reads_them(
    good_seal: bytes, data: st.DataObject | None
) -> None:
    der = bytearray(good_seal)
    if data is None:
        der[23] = 0x42
    else:
        position = data.draw(st.integers(0, len(der) - 1), label="position")
        how = data.draw(st.sampled_from(["flip", "set", "insert", "delete", "cut"]), label="how")
        if how == "flip":
            der[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
        elif how == "set":
            der[position] = data.draw(st.sampled_from([0x00, 0x7F, 0x80, 0x81, 0x84, 0xFF]))
        elif how == "insert":
            der[position:position] = data.draw(st.binary(min_size=1, max_size=4), label="bytes")
        elif how == "delete":
            del der[position]
        else:
            del der[position:]
    damaged = bytes(der)
    try:
        signed = read(damaged)
    except _FormatError:
        return
    try:
        expected = oracle(damaged)
    except ValueError:
        # asn1crypto refuses a part the reader does not interpret: the SignedData version,
        # the tag of a certificate entry it skips, or a signer identifier it cannot use.
        # Then the reader must report the signature exactly as for the undamaged seal, and
        # name no certificate it did not carry (the pieces of a damaged certificate set it
        # passes on are not certificates: the verifier skips what it cannot load).
        original = read(good_seal)
        assert _signature_facts(signed) == _signature_facts(original)
        for certificate in set(signed.certificates) - set(original.certificates):
            with pytest.raises(ValueError):
                x509.load_der_x509_certificate(certificate)
        assert (signed.issuer_der, signed.serial) == (original.issuer_der, original.serial) or (
            signed.serial is None or signed.issuer_der != original.issuer_der
        )
    else:
        assert signed == expected


def _signature_facts(signed: _Signed) -> tuple[Any, ...]:
    return (
        signed.digest_algorithm,
        signed.signature_algorithm,
        signed.signature,
        signed.signed_attrs_der,
        signed.message_digest,
        signed.signing_time,
        signed.identifier,
        signed.ess_cert_hashes,
    )
