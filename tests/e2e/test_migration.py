"""A federation written before ADR 0004 is moved onto the certificate hierarchy.

`tongban federation migrate` gives every node an identity CA, re-issues the node's, halls'
and admins' certificates for their existing keys, re-issues each seal CA for the same key
limited to document signing, and signs the next directory version. Seals made before keep
verifying; certificates issued before are refused.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures_seal import EZHOU_USCC, ORG_NAME, SEAL_NAME
from tests.harness import Cluster, citizen_id, delivered, start_cluster, wait_until
from tests.legacy_pki import make_legacy
from tongban.cli.main import main
from tongban.client.hall import Applicant
from tongban.keys.clock import utcnow
from tongban.keys.directory import FederationDirectory
from tongban.keys.errors import BadPeerData
from tongban.keys.pki import (
    CaKind,
    check_node_ca,
    load_certificate,
    load_certificates,
    load_private_key,
)
from tongban.keys.seals import create_seal, seal_detached
from tongban.keys.signing import PrivateKeySigner
from tongban.keys.verification import Indication, SealVerifier
from tongban.proto import hall_pb2, hall_pb2_grpc
from tongban.server.app import RelayNode

A, B = "420700", "420100"
ODA = ("HB-ODA-01", "异地办理营业执照变更登记")

pytestmark = pytest.mark.slow


def _seal_key(fed: Path, node: str) -> ec.EllipticCurvePrivateKey:
    key = load_private_key((fed / node / "seals" / "ca-key.pem").read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def test_a_pre_hierarchy_federation_is_migrated_and_keeps_its_seals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cluster: Cluster = start_cluster(tmp_path, (A, B), start=False)
    fed = cluster.fed
    made = utcnow()
    make_legacy(fed, now=made)
    old_hall = (fed / B / "halls" / f"{B}-hall-1" / "cert.pem").read_bytes()
    old_seal_ca = load_certificate((fed / A / "seals" / "ca.pem").read_bytes())
    root = load_certificate((fed / "public" / "root.pem").read_bytes())

    # A document sealed before the migration, under the old seal CA.
    sealed_at = made.replace(microsecond=0)
    seal = create_seal(
        seal_id=f"{A}-approval",
        name=SEAL_NAME,
        org_uscc=EZHOU_USCC,
        org_name=ORG_NAME,
        node_id=A,
        issuer_key=_seal_key(fed, A),
        issuer_cert=old_seal_ca,
        not_before=made - timedelta(minutes=1),
        not_after=made + timedelta(days=30),
        image_png=b"image",
        now=made,
    )
    assert seal.key is not None
    document = tmp_path / "permit.txt"
    document.write_text("准予变更登记", encoding="utf-8")
    p7s = seal_detached(
        document,
        PrivateKeySigner(seal.key),
        seal.record.certificate,
        chain=[old_seal_ca],
        at=sealed_at,
        ecert_identifier=None,
    )

    # The new code refuses the old directory and says what to do.
    with pytest.raises(BadPeerData) as exc:
        RelayNode(cluster.config(A))
    assert exc.value.message == (
        f"node {A} has no identity CA and seal CA in the directory: it was written before the "
        "certificate hierarchy of ADR 0004; migrate the federation with "
        "`tongban federation migrate`"
    )

    assert main(["federation", "migrate", "--dir", str(fed)]) == 0
    out = capsys.readouterr().out
    assert "directory version 2 signed; restart every node with its folder" in out

    signed = json.loads((fed / "public" / "directory.json").read_text("utf-8"))
    assert json.loads((fed / A / "directory.json").read_text("utf-8")) == signed
    for node in (A, B):
        new_seal_ca = load_certificate((fed / node / "seals" / "ca.pem").read_bytes())
        check_node_ca(new_seal_ca, kind=CaKind.SEAL, node_id=node)
        identity_ca = load_certificate((fed / "offline" / node / "identity-ca.pem").read_bytes())
        check_node_ca(identity_ca, kind=CaKind.IDENTITY, node_id=node)
        for cert_file in [fed / node / "tls" / "node.pem", *fed.glob(f"{node}/*/*/cert.pem")]:
            leaf, ca = load_certificates(cert_file.read_bytes())
            assert ca == identity_ca
            leaf.verify_directly_issued_by(identity_ca)
    # The seal CA keeps its key and name: seals issued under the old certificate chain
    # through the new one too.
    new_seal_ca = load_certificate((fed / A / "seals" / "ca.pem").read_bytes())
    assert (new_seal_ca.subject, new_seal_ca.public_key()) == (
        old_seal_ca.subject,
        old_seal_ca.public_key(),
    )
    seal.record.certificate.verify_directly_issued_by(new_seal_ca)

    for node in (A, B):
        cluster.start(node)
    try:
        directory: FederationDirectory = cluster.directory()
        assert directory.version == 2
        # The relay works on the migrated folders.
        ez = cluster.hall(A)
        r = ez.submit(
            matter=ODA, to=[B], applicant=Applicant("张三", "citizen", citizen_id()), form={}
        )
        wait_until("delivery", delivered(ez, r.packet_id))
        assert [i.packet_id for i in cluster.hall(B).inbox("in")] == [r.packet_id]
        # A hall certificate from before the migration no longer names anyone.
        d = fed / B / "halls" / f"{B}-hall-1"
        creds = grpc.ssl_channel_credentials(
            (d / "root.pem").read_bytes(), (d / "key.pem").read_bytes(), old_hall
        )
        with (
            grpc.secure_channel(
                directory.node(B).endpoint,
                creds,
                options=[("grpc.ssl_target_name_override", f"node-{B}.tongban")],
            ) as ch,
            pytest.raises(grpc.RpcError) as refused,
        ):
            hall_pb2_grpc.HallServiceStub(ch).ListInbox(hall_pb2.InboxRequest(), timeout=10)
        old_leaf = load_certificate(old_hall)
        assert (refused.value.code(), refused.value.details()) == (
            grpc.StatusCode.UNAUTHENTICATED,
            f"unauthenticated: untrusted-certificate: the certificate of hall {B}-hall-1 of node "
            f"{B} was not issued by the identity CA the directory lists for node {B} "
            f"(its issuer: {old_leaf.issuer.rfc4514_string()})",
        )
    finally:
        cluster.close()

    # The seal made before the migration still verifies, against the root alone.
    report = SealVerifier([root], [seal.record]).result(
        document, seal=p7s, at=sealed_at + timedelta(hours=1)
    )
    assert (report.indication, report.sub_indication) == (Indication.VALID, None)

    # Migrating twice is refused and changes nothing.
    before = (fed / "public" / "directory.json").read_bytes()
    assert main(["federation", "migrate", "--dir", str(fed)]) == 2
    assert capsys.readouterr().out == (
        f"tongban federation migrate: the directory of {fed} lists identity CAs already: "
        "nothing to migrate\n"
    )
    assert (fed / "public" / "directory.json").read_bytes() == before
