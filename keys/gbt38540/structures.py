# asn1crypto has no type information: its base classes are Any to mypy.
# mypy: disable-error-code="misc"
"""The ASN.1 structures of GB/T 38540-2020 (安全电子签章密码技术规范), as asn1crypto classes.

Version 4 is the standard's; version 5 is the same layout with ``version`` 5, as some
readers write it. Both parse and re-encode byte for byte (asn1crypto keeps the bytes it
read). GM/T 0031-2014 (version 1) lays the seal out differently and is refused by the
readers of :mod:`tongban.keys.gbt38540` before these classes see it.

Names follow the standard (``eSealInfo``, ``toSign``, ``dataHash``…) so that a field can
be looked up in it; the classes are public so that a verifier may read any field.
"""

from __future__ import annotations

from asn1crypto import core

__all__ = [
    "CertDigestList",
    "CertDigestObj",
    "CertInfoList",
    "ExtData",
    "ExtensionDatas",
    "SesEsPictureInfo",
    "SesEsPropertyInfo",
    "SesHeader",
    "SesSeal",
    "SesSealInfo",
    "SesSignature",
    "TbsSign",
]


class SesHeader(core.Sequence):
    """SES_Header: the identifier "ES", the format version and the vendor id."""

    _fields = [  # noqa: RUF012 - asn1crypto reads the class attribute
        ("id", core.IA5String),
        ("version", core.Integer),
        ("vid", core.IA5String),
    ]


class CertInfoList(core.SequenceOf):
    """CertInfoList: the DER certificates allowed to use the seal."""

    _child_spec = core.OctetString


class CertDigestObj(core.Sequence):
    """CertDigestObj: a certificate named by a digest (algorithm name and value)."""

    _fields = [  # noqa: RUF012
        ("type", core.PrintableString),
        ("value", core.OctetString),
    ]


class CertDigestList(core.SequenceOf):
    """CertDigestList: the certificates allowed to use the seal, by digest."""

    _child_spec = CertDigestObj


def _cert_list_spec(property_info: SesEsPropertyInfo) -> type[core.Asn1Value]:
    # SES_CertList is a CHOICE of two untagged SEQUENCE OFs: only certListType tells them
    # apart (1: certificates, 2: digests).
    if property_info["cert_list_type"].native == 2:
        return CertDigestList
    return CertInfoList


class SesEsPropertyInfo(core.Sequence):
    """SES_ESPropertyInfo: seal type, name, certificate list, creation date and window.

    ``cert_list`` is a :class:`CertInfoList` when ``cert_list_type`` is 1 and a
    :class:`CertDigestList` when it is 2 (the standard's SES_CertList CHOICE).
    """

    _fields = [  # noqa: RUF012
        ("type", core.Integer),
        ("name", core.UTF8String),
        ("cert_list_type", core.Integer),
        ("cert_list", core.Any),
        ("create_date", core.GeneralizedTime),
        ("valid_start", core.GeneralizedTime),
        ("valid_end", core.GeneralizedTime),
    ]
    _spec_callbacks = {"cert_list": _cert_list_spec}  # noqa: RUF012


class SesEsPictureInfo(core.Sequence):
    """SES_ESPictrueInfo (sic): picture type ("PNG"…), data, width and height in mm."""

    _fields = [  # noqa: RUF012
        ("type", core.IA5String),
        ("data", core.OctetString),
        ("width", core.Integer),
        ("height", core.Integer),
    ]


class ExtData(core.Sequence):
    """ExtData: one extension (an OID, whether it is critical, and its value)."""

    _fields = [  # noqa: RUF012
        ("extn_id", core.ObjectIdentifier),
        ("critical", core.Boolean, {"default": False}),
        ("extn_value", core.OctetString),
    ]


class ExtensionDatas(core.SequenceOf):
    """ExtensionDatas: a sequence of :class:`ExtData`."""

    _child_spec = ExtData


class SesSealInfo(core.Sequence):
    """SES_SealInfo: what the seal maker signs (header, seal id, properties, picture)."""

    _fields = [  # noqa: RUF012
        ("header", SesHeader),
        ("es_id", core.IA5String),
        ("property", SesEsPropertyInfo),
        ("picture", SesEsPictureInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SesSeal(core.Sequence):
    """SES_Seal: the seal info, the maker's certificate, algorithm and signature."""

    _fields = [  # noqa: RUF012
        ("e_seal_info", SesSealInfo),
        ("cert", core.OctetString),
        ("sign_alg_id", core.ObjectIdentifier),
        ("signed_value", core.OctetBitString),
    ]


class TbsSign(core.Sequence):
    """TBS_Sign: what the seal user signs (seal, time, data hash, property info)."""

    _fields = [  # noqa: RUF012
        ("version", core.Integer),
        ("eseal", SesSeal),
        ("time_info", core.GeneralizedTime),
        ("data_hash", core.OctetBitString),
        ("property_info", core.IA5String),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SesSignature(core.Sequence):
    """SES_Signature: TBS_Sign, the signer's certificate, algorithm, signature, timestamp."""

    _fields = [  # noqa: RUF012
        ("to_sign", TbsSign),
        ("cert", core.OctetString),
        ("signature_algorithm", core.ObjectIdentifier),
        ("signature", core.OctetBitString),
        ("time_stamp", core.OctetBitString, {"implicit": 0, "optional": True}),
    ]
