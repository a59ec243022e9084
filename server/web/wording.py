"""The site's words: Chinese first, with the ETSI and report terms beside them."""

from __future__ import annotations

from tongban.keys.ecert import ECertStatus
from tongban.keys.verification import CheckOutcome, Indication, SubIndication

__all__ = [
    "CHECK_NAMES",
    "INDICATION_WORDS",
    "OUTCOME_WORDS",
    "STATUS_WORDS",
    "reason_words",
]

INDICATION_WORDS: dict[Indication, str] = {
    Indication.VALID: "有效",
    Indication.INVALID: "无效",
    Indication.INDETERMINATE: "无法确定",
}

STATUS_WORDS: dict[ECertStatus, str] = {
    ECertStatus.VALID: "有效",
    ECertStatus.REVOKED: "已撤销",
    ECertStatus.CANCELLED: "已注销",
    ECertStatus.EXPIRED: "已失效",
}

OUTCOME_WORDS: dict[CheckOutcome, str] = {
    CheckOutcome.PASSED: "通过",
    CheckOutcome.FAILED: "未通过",
    CheckOutcome.INDETERMINATE: "无法确定",
    CheckOutcome.SKIPPED: "未检查",
}

CHECK_NAMES: dict[str, str] = {
    "format": "签章格式",
    "document_integrity": "文件完整性",
    "signature": "签名",
    "certificate_chain": "证书链",
    "seal_registered": "印章登记",
    "key_validity": "印章有效期",
    "ecert_identifier": "证照标识",
    "ecert_issued": "签发记录",
    "ecert_status": "证照状态",
}

_REASONS: dict[SubIndication, str] = {
    SubIndication.FORMAT_FAILURE: "签章格式无法识别，或不是盖章文件",
    SubIndication.HASH_FAILURE: "文件内容与签章不符：文件在盖章后被改动过",
    SubIndication.SIG_CRYPTO_FAILURE: "签名校验失败",
    SubIndication.REVOKED: "盖章时印章已被撤销",
    SubIndication.REVOKED_NO_POE: "印章已因可能泄露而撤销，且盖章时间没有时间戳证明",
    SubIndication.EXPIRED: "盖章时印章或证书已过期",
    SubIndication.NOT_YET_VALID: "盖章时印章或证书尚未生效",
    SubIndication.OUT_OF_BOUNDS_NO_POE: "盖章时间超出印章有效期，且没有时间戳证明",
    SubIndication.SIG_CONSTRAINTS_FAILURE: "签章不符合要求",
    SubIndication.CHAIN_CONSTRAINTS_FAILURE: "印章证书不是受信任的印章证书",
    SubIndication.CRYPTO_CONSTRAINTS_FAILURE: "签章使用的算法不被接受",
    SubIndication.NO_SIGNING_CERTIFICATE_FOUND: "找不到已登记的印章",
    SubIndication.NO_CERTIFICATE_CHAIN_FOUND: "印章证书无法连到受信任的根证书",
    SubIndication.NO_POE: "缺少时间证明",
    SubIndication.TRY_LATER: "暂时无法查询证照的当前状态，请稍后再试",
    SubIndication.SIGNED_DATA_NOT_FOUND: "找不到签章数据",
    SubIndication.ECERT_REVOKED: "电子证照已被撤销",
    SubIndication.ECERT_CANCELLED: "电子证照已被注销",
    SubIndication.ECERT_EXPIRED: "电子证照已失效",
}


def reason_words(sub: SubIndication | None) -> str:
    """Why a verification is not 有效, in one Chinese sentence ("" when it is)."""
    return "" if sub is None else _REASONS.get(sub, sub.value)
