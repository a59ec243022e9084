"""Shared material for the GB/T 38540 tests: an SM2 test PKI, a seal, and the outside checkers.

Everything is generated here; no key or certificate is stored in the repository.
"""

from __future__ import annotations

import functools
import io
import json
import re
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PIL import Image

from tests.availability import require_programs, unavailable
from tongban.keys.gbt38540 import SealPicture, Sm2Role, issue_sm2_certificate, make_seal
from tongban.keys.signing import Sm2PrivateKeySigner

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SEAL_NAME = "鄂州市行政审批局行政审批专用章"
SEAL_ID = "ezhou-approval-sm2"
NODE = "node-a"
NODE_MODULES = Path(__file__).parent / "node" / "node_modules"
SM_CRYPTO_SCRIPT = Path(__file__).parent / "node" / "verify_ses.js"


@dataclass(frozen=True)
class Sm2Pki:
    """An SM2 root, a node's SM2 seal CA, its seal maker and one seal user."""

    root_key: Sm2PrivateKeySigner
    root: bytes
    ca_key: Sm2PrivateKeySigner
    ca: bytes
    maker_key: Sm2PrivateKeySigner
    maker: bytes
    user_key: Sm2PrivateKeySigner
    user: bytes

    def issue(
        self,
        key: Sm2PrivateKeySigner,
        common_name: str,
        *,
        unit: str = "seal",
        serial: int = 10,
        start: datetime = NOW - timedelta(days=30),
        end: datetime = NOW + timedelta(days=3650),
    ) -> bytes:
        """A further end-entity certificate from the seal CA."""
        return issue_sm2_certificate(
            issuer=self.ca_key,
            issuer_certificate=self.ca,
            subject={
                "country_name": "CN",
                "organization_name": NODE,
                "organizational_unit_name": unit,
                "common_name": common_name,
            },
            public_key_der=key.public_key_der,
            serial=serial,
            not_before=start,
            not_after=end,
            role=Sm2Role.SEAL if unit == "seal" else Sm2Role.SEAL_MAKER,
        )


@functools.cache
def sm2_pki() -> Sm2Pki:
    """One SM2 hierarchy for the whole test session (SM2 keys are cheap, but not free)."""
    root_key = Sm2PrivateKeySigner.generate()
    start, end = NOW - timedelta(days=365), NOW + timedelta(days=3650)
    root = issue_sm2_certificate(
        issuer=root_key,
        issuer_certificate=None,
        subject={"country_name": "CN", "organization_name": "tongban", "common_name": "SM2 root"},
        public_key_der=root_key.public_key_der,
        serial=1,
        not_before=start,
        not_after=end,
        role=Sm2Role.ROOT,
    )
    ca_key = Sm2PrivateKeySigner.generate()
    ca = issue_sm2_certificate(
        issuer=root_key,
        issuer_certificate=root,
        subject={
            "country_name": "CN",
            "organization_name": NODE,
            "organizational_unit_name": "seal",
            "common_name": f"{NODE} SM2 seal CA",
        },
        public_key_der=ca_key.public_key_der,
        serial=2,
        not_before=start,
        not_after=end,
        role=Sm2Role.SEAL_CA,
    )
    maker_key = Sm2PrivateKeySigner.generate()
    user_key = Sm2PrivateKeySigner.generate()
    pki = Sm2Pki(root_key, root, ca_key, ca, maker_key, b"", user_key, b"")
    maker = pki.issue(maker_key, f"{NODE} seal maker", unit="seal-maker", serial=3)
    user = pki.issue(user_key, SEAL_ID, serial=4)
    return Sm2Pki(root_key, root, ca_key, ca, maker_key, maker, user_key, user)


@functools.cache
def seal_png() -> bytes:
    """A small red PNG standing for the registered seal image."""
    out = io.BytesIO()
    Image.new("RGBA", (64, 64), (220, 0, 0, 255)).save(out, format="PNG")
    return out.getvalue()


def a_seal(
    pki: Sm2Pki | None = None,
    *,
    users: tuple[bytes, ...] | None = None,
    start: datetime = NOW - timedelta(days=1),
    end: datetime = NOW + timedelta(days=365),
) -> bytes:
    """A version-4 seal made by the test seal maker for the test seal user."""
    pki = pki or sm2_pki()
    return make_seal(
        maker=pki.maker_key,
        maker_certificate=pki.maker,
        seal_id=SEAL_ID,
        name=SEAL_NAME,
        user_certificates=users if users is not None else (pki.user,),
        created=start,
        valid_start=start,
        valid_end=end,
        picture=SealPicture(seal_png(), 40, 40),
    )


# --- the outside checkers -------------------------------------------------------------------

_ASN1_LINE = re.compile(r"^\s*(\d+):d=(\d+)\s+hl=(\d+)\s+l=\s*(\d+)\s+(prim|cons):\s+(.*?)\s*$")


@dataclass(frozen=True)
class Asn1Node:
    """One line of ``openssl asn1parse``: where a value sits, as OpenSSL reads it."""

    offset: int
    depth: int
    header: int
    length: int
    kind: str

    def whole(self, der: bytes) -> bytes:
        """The value with its header."""
        return der[self.offset : self.offset + self.header + self.length]

    def content(self, der: bytes) -> bytes:
        """The value without its header."""
        return der[self.offset + self.header : self.offset + self.header + self.length]


def openssl_asn1(der: bytes, tmp: Path) -> list[Asn1Node]:
    """The structure of ``der`` as ``openssl asn1parse`` lists it."""
    require_programs("openssl", install="apt-get install openssl")
    path = tmp / "asn1.der"
    path.write_bytes(der)
    out = subprocess.run(
        ["openssl", "asn1parse", "-inform", "DER", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    nodes = []
    for line in out.splitlines():
        match = _ASN1_LINE.match(line)
        if match:
            off, depth, hl, length, _, kind = match.groups()
            nodes.append(Asn1Node(int(off), int(depth), int(hl), int(length), kind.split()[0]))
    return nodes


def openssl_sm2_verify(certificate: bytes, signature: bytes, data: bytes, tmp: Path) -> str:
    """``openssl dgst -sm3 -verify`` with the standard SM2 user id; returns its output."""
    require_programs("openssl", install="apt-get install openssl")
    (tmp / "cert.der").write_bytes(certificate)
    (tmp / "sig.der").write_bytes(signature)
    (tmp / "data.bin").write_bytes(data)
    pub = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-in", str(tmp / "cert.der"), "-pubkey", "-noout"],
        capture_output=True,
        check=True,
    ).stdout
    (tmp / "pub.pem").write_bytes(pub)
    done = subprocess.run(
        [
            "openssl", "dgst", "-sm3", "-verify", str(tmp / "pub.pem"),
            "-sigopt", "distid:1234567812345678",
            "-signature", str(tmp / "sig.der"), str(tmp / "data.bin"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    return (done.stdout + done.stderr).strip()


def sm_crypto_verify(ses: Path, document: Path) -> dict[str, object]:
    """Run the sm-crypto Node script on a ``.ses`` and its document; its JSON verdict."""
    require_programs("node", install="apt-get install nodejs npm; scripts/setup.sh")
    if not (NODE_MODULES / "sm-crypto").is_dir():
        unavailable("sm-crypto is not installed in tests/node; run scripts/setup.sh")
    done = subprocess.run(
        ["node", str(SM_CRYPTO_SCRIPT), str(ses), str(document)],
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout)
    return result
