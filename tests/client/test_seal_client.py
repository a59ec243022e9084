"""Seals through a real node: register, seal, change e-certificate status, verify online and
offline, and the ``tongban seal`` / ``ecert`` / ``published`` / ``verify`` commands."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures_seal import EZHOU_USCC, ORG_NAME, SEAL_NAME, make_pdf, openssl_cms_verify
from tests.harness import Cluster, snapshot
from tongban.cli.main import main
from tongban.client.errors import RequestRefused
from tongban.client.seals import (
    RevocationReason,
    SealClient,
    SealedDocument,
    VerificationClient,
    fetch_published,
)
from tongban.client.verify import Indication, SubIndication, seal_verification_result
from tongban.keys.clock import format_time, utcnow
from tongban.keys.directory import load_directory
from tongban.keys.ecert import (
    ECertIdentifier,
    ECertStatus,
    load_status_list,
    parse_ecert_identifier,
)
from tongban.keys.envelope import Envelope
from tongban.keys.errors import KeysError, SignatureError, UnknownKeyError
from tongban.keys.pki import certificate_pem, load_certificates, load_private_key
from tongban.keys.seal_registry import load_seal_registry
from tongban.keys.seals import SealRecord, seal_detached
from tongban.keys.signing import PrivateKeySigner
from tongban.proto import seal_pb2, seal_pb2_grpc

NODE = "420700"
SEAL_ID = "ezhou-approval"
DOCUMENT = "营业执照 2026-0001\n".encode() * 1000


# --- helpers -------------------------------------------------------------------------------


def admin_folder(cluster: Cluster, node: str = NODE) -> Path:
    return cluster.fed / node / "admins" / f"{node}-admin"


def hall_folder(cluster: Cluster, node: str = NODE) -> Path:
    return cluster.fed / node / "halls" / f"{node}-hall-1"


def root_pem_path(cluster: Cluster) -> Path:
    return cluster.fed / "public" / "root.pem"


def roots(cluster: Cluster) -> list[x509.Certificate]:
    return load_certificates(root_pem_path(cluster).read_bytes())


def public_endpoint(cluster: Cluster, node: str = NODE) -> str:
    return cluster.directory().node(node).public_endpoint


@pytest.fixture
def admin(cluster: Cluster) -> Iterator[SealClient]:
    with SealClient.from_profile(admin_folder(cluster)) as client:
        yield client


@pytest.fixture
def hall(cluster: Cluster) -> Iterator[SealClient]:
    with SealClient.from_profile(hall_folder(cluster)) as client:
        yield client


@pytest.fixture
def public(cluster: Cluster) -> Iterator[VerificationClient]:
    with VerificationClient(
        public_endpoint(cluster), node_id=NODE, root_pem=root_pem_path(cluster).read_bytes()
    ) as client:
        yield client


def register(client: SealClient, seal_id: str = SEAL_ID) -> None:
    now = utcnow()
    client.register_seal(
        seal_id,
        SEAL_NAME,
        EZHOU_USCC,
        org_name=ORG_NAME,
        not_before=now,
        not_after=now + timedelta(days=365),
    )


def refused(call: object, *args: object, **kwargs: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(RequestRefused) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value.status, caught.value.message


def offline(
    cluster: Cluster,
    published: Path,
    document: Path | bytes,
    seal: Path | bytes | None,
    *,
    at_offset: timedelta = timedelta(0),
) -> tuple[Indication, SubIndication | None]:
    """Verify as a third party with nothing but the root and the fetched files."""
    at = utcnow() + at_offset
    directory = load_directory(_envelope(published / "directory.json"), roots(cluster), at=at)
    registry = load_seal_registry(
        _envelope(published / NODE / "seal-registry.json"), directory, at=at
    )
    report = seal_verification_result(
        document,
        seal=seal,
        roots=roots(cluster),
        seals=registry.seals,
        at=at,
        status_list=_envelope(published / NODE / "status-list.json"),
        status_keys=directory.node(NODE).signing_keys(at),
    )
    return report.indication, report.sub_indication


def _envelope(path: Path) -> Envelope:
    return Envelope.from_json_dict(json.loads(path.read_text("utf-8")))


def cli(*args: str | Path) -> int:
    return main([str(a) for a in args])


# --- the SDK -------------------------------------------------------------------------------


def test_an_admin_registers_a_seal_and_a_hall_may_not(
    cluster: Cluster, admin: SealClient, hall: SealClient, public: VerificationClient
) -> None:
    now = utcnow()
    info = admin.register_seal(
        SEAL_ID,
        SEAL_NAME,
        EZHOU_USCC,
        org_name=ORG_NAME,
        not_before=now,
        not_after=now + timedelta(days=365),
    )
    assert (info.seal_id, info.name, info.org_uscc, info.node_id) == (
        SEAL_ID,
        SEAL_NAME,
        EZHOU_USCC,
        NODE,
    )
    assert (info.revoked_at, info.revocation_reason, info.revocation_note) == (None, None, "")
    assert info.not_before == now.replace(microsecond=0)
    assert info.certificate.not_valid_after_utc <= info.not_after + timedelta(seconds=1)
    registry = load_seal_registry(
        public.seal_registry(),
        load_directory(public.directory(), roots(cluster), at=utcnow()),
        at=utcnow(),
    )
    assert [r.seal_id for r in registry.seals] == [SEAL_ID]
    assert registry.seals[0].certificate_fingerprint == info.certificate_fingerprint

    before = snapshot(cluster.nodes[NODE])
    status, message = refused(
        hall.register_seal,
        "hall-seal",
        SEAL_NAME,
        EZHOU_USCC,
        org_name=ORG_NAME,
        not_before=now,
        not_after=now + timedelta(days=1),
    )
    assert status is grpc.StatusCode.PERMISSION_DENIED
    assert message.startswith("permission-denied:")
    assert message == (
        f"permission-denied: hall {NODE}-hall-1 of node {NODE} is not an admin of node {NODE}"
    )
    # another node's admin is an admin, but not of this node
    foreign_dir = admin_folder(cluster, "440300")
    with SealClient(
        cluster.directory().node(NODE).endpoint,
        node_id=NODE,
        cert_pem=(foreign_dir / "cert.pem").read_bytes(),
        key_pem=(foreign_dir / "key.pem").read_bytes(),
        root_pem=(foreign_dir / "root.pem").read_bytes(),
    ) as foreign:
        status, message = refused(foreign.revoke_seal, SEAL_ID, "not yours")
    assert status is grpc.StatusCode.PERMISSION_DENIED
    assert message == (
        f"permission-denied: admin 440300-admin of node 440300 is not an admin of node {NODE}"
    )
    assert snapshot(cluster.nodes[NODE]) == before


def test_seal_through_the_node_then_verify_with_openssl_and_offline(
    cluster: Cluster,
    admin: SealClient,
    hall: SealClient,
    public: VerificationClient,
    tmp_path: Path,
) -> None:
    register(admin)
    document = tmp_path / "permit.txt"
    document.write_bytes(DOCUMENT * 120)  # 2.6 MiB: three chunks
    assert 2 << 20 < document.stat().st_size < 3 << 20
    sealed = hall.seal_document(document, seal_id=SEAL_ID)
    assert isinstance(sealed, SealedDocument) and not sealed.pdf
    identifier = parse_ecert_identifier(sealed.identifier)
    assert (identifier.type_code, identifier.issuer_uscc) == ("DOC", EZHOU_USCC)
    p7s = tmp_path / "permit.txt.p7s"
    p7s.write_bytes(sealed.data)

    result = openssl_cms_verify(document, p7s, root_pem_path(cluster))
    assert result.returncode == 0, result.stderr

    published = tmp_path / "published"
    files = fetch_published(public, published, roots=roots(cluster))
    assert sorted(str(p.relative_to(published)) for p in published.rglob("*")) == [
        NODE,
        f"{NODE}/seal-registry.json",
        f"{NODE}/status-list.json",
        "directory.json",
        "root.pem",
    ]
    assert files.directory == published / "directory.json"
    assert files.root == published / "root.pem"
    assert (published / "root.pem").read_bytes() == root_pem_path(cluster).read_bytes()
    # Published for anyone to read, whatever the umask.
    assert {p.stat().st_mode & 0o777 for p in published.rglob("*") if p.is_file()} == {0o644}
    assert {p.stat().st_mode & 0o777 for p in [published, published / NODE]} == {0o755}
    assert offline(cluster, published, document, p7s) == (Indication.VALID, None)
    assert offline(cluster, published, document.read_bytes() + b"!", p7s)[1] is (
        SubIndication.HASH_FAILURE
    )

    # the same document sealed twice gets two identifiers; bytes work as well as paths
    again = admin.seal_document(document.read_bytes(), seal_id=SEAL_ID, type_code="LIC")
    assert again.identifier != sealed.identifier
    assert parse_ecert_identifier(again.identifier).type_code == "LIC"

    online = public.verify(document, p7s)
    assert (online.indication, online.sub_indication) == (Indication.VALID, None)
    assert online.valid and online.summary.startswith("VALID: sealed by " + SEAL_NAME)
    assert online.report["ecert_identifier"] == sealed.identifier
    assert online.report["ecert_status"] == "valid"


def test_a_pdf_sealed_by_the_node_verifies_online_and_offline(
    cluster: Cluster, admin: SealClient, public: VerificationClient, tmp_path: Path
) -> None:
    register(admin)
    sealed = admin.seal_document(make_pdf(), seal_id=SEAL_ID, pdf=True)
    assert sealed.pdf and sealed.data.startswith(b"%PDF")
    published = tmp_path / "published"
    fetch_published(public, published, roots=roots(cluster))
    assert offline(cluster, published, sealed.data, None) == (Indication.VALID, None)
    online = public.verify(sealed.data)
    assert online.indication is Indication.VALID
    assert online.report["format"] != "unknown"


def test_a_changed_ecert_status_shows_online_at_once_and_in_the_next_status_list(
    cluster: Cluster,
    admin: SealClient,
    hall: SealClient,
    public: VerificationClient,
    tmp_path: Path,
) -> None:
    register(admin)
    sealed = hall.seal_document(DOCUMENT, seal_id=SEAL_ID)
    before = tmp_path / "before"
    fetch_published(public, before, roots=roots(cluster))
    assert public.ecert_status(sealed.identifier).status is ECertStatus.VALID

    entry = admin.change_ecert_status(sealed.identifier, "revoked", "许可被依法撤销")
    assert (entry.identifier, entry.status, entry.reason) == (
        sealed.identifier,
        ECertStatus.REVOKED,
        "许可被依法撤销",
    )
    now_status = public.ecert_status(sealed.identifier)
    assert now_status == entry

    # online: the offline verifier asking the node for the status
    report = seal_verification_result(
        DOCUMENT,
        seal=sealed.data,
        roots=roots(cluster),
        seals=load_seal_registry(
            public.seal_registry(),
            load_directory(public.directory(), roots(cluster), at=utcnow()),
            at=utcnow(),
        ).seals,
        at=utcnow(),
        online_status=public.ecert_status,
    )
    assert (report.indication, report.sub_indication) == (
        Indication.INVALID,
        SubIndication.ECERT_REVOKED,
    )
    online = public.verify(DOCUMENT, sealed.data)
    assert (online.indication, online.sub_indication) == (
        Indication.INVALID,
        SubIndication.ECERT_REVOKED,
    )
    assert online.report["ecert_status"] == "revoked"

    # the list fetched before the change still says valid while it is current ...
    assert offline(cluster, before, DOCUMENT, sealed.data) == (Indication.VALID, None)
    # ... and is stale once past its next update
    assert offline(cluster, before, DOCUMENT, sealed.data, at_offset=timedelta(days=2)) == (
        Indication.INDETERMINATE,
        SubIndication.TRY_LATER,
    )
    after = tmp_path / "after"
    fetch_published(public, after, roots=roots(cluster))
    assert offline(cluster, after, DOCUMENT, sealed.data) == (
        Indication.INVALID,
        SubIndication.ECERT_REVOKED,
    )
    listing = load_status_list(
        _envelope(after / NODE / "status-list.json"),
        cluster.directory().node(NODE).signing_keys(utcnow()),
        at=utcnow(),
    )
    assert [(e.identifier, e.status) for e in listing.entries] == [
        (sealed.identifier, ECertStatus.REVOKED)
    ]

    # a status changes once
    status, message = refused(admin.change_ecert_status, sealed.identifier, "cancelled", "x")
    assert status is grpc.StatusCode.FAILED_PRECONDITION
    assert message == f"illegal-transition: e-certificate {sealed.identifier} is already revoked"


def test_a_revoked_seal_seals_no_more_and_earlier_seals_stay_valid(
    cluster: Cluster,
    admin: SealClient,
    hall: SealClient,
    public: VerificationClient,
    tmp_path: Path,
) -> None:
    register(admin)
    sealed = hall.seal_document(DOCUMENT, seal_id=SEAL_ID)
    info = admin.revoke_seal(SEAL_ID, RevocationReason.SUPERSEDED, note="印章损毁，已换新章")
    assert info.revoked_at is not None
    assert (info.revocation_reason, info.revocation_note) == (
        RevocationReason.SUPERSEDED,
        "印章损毁，已换新章",
    )
    status, message = refused(hall.seal_document, DOCUMENT, seal_id=SEAL_ID)
    assert status is grpc.StatusCode.FAILED_PRECONDITION
    assert message == (
        f"illegal-transition: seal {SEAL_ID} is not valid now (revoked or outside its window)"
    )
    status, message = refused(admin.revoke_seal, SEAL_ID, "keyCompromise")
    assert (status, message) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        f"illegal-transition: seal {SEAL_ID} was already revoked",
    )
    published = tmp_path / "published"
    fetch_published(public, published, roots=roots(cluster))
    assert offline(cluster, published, DOCUMENT, sealed.data) == (Indication.VALID, None)
    registry = json.loads(_envelope(published / NODE / "seal-registry.json").payload)
    assert SealRecord.from_json_dict(registry["seals"][0]).revoked_at == info.revoked_at


def test_after_a_key_compromise_no_seal_of_that_key_is_valid_on_its_claimed_time(
    cluster: Cluster,
    admin: SealClient,
    hall: SealClient,
    public: VerificationClient,
    tmp_path: Path,
) -> None:
    register(admin)
    honest = hall.seal_document(DOCUMENT, seal_id=SEAL_ID)
    info = admin.revoke_seal(SEAL_ID, "keyCompromise", note="印章钥匙泄露")
    assert info.revoked_at is not None
    assert (info.revocation_reason, info.revocation_note) == (
        RevocationReason.KEY_COMPROMISE,
        "印章钥匙泄露",
    )
    # The thief holds the key file and writes a signing time before the revocation.
    seals_folder = cluster.fed / NODE / "seals"
    stolen = load_private_key((seals_folder / "keys" / f"{SEAL_ID}.pem").read_bytes())
    assert isinstance(stolen, ec.EllipticCurvePrivateKey)
    claimed = info.not_before
    backdated = seal_detached(
        DOCUMENT,
        PrivateKeySigner(stolen),
        info.certificate,
        chain=load_certificates((seals_folder / "ca.pem").read_bytes()),
        at=claimed,
        ecert_identifier=None,
    )
    revoked = format_time(info.revoked_at)
    published = tmp_path / "published"
    fetch_published(public, published, roots=roots(cluster))
    for seal, sealed_at in ((backdated, format_time(claimed)), (honest.data, None)):
        # the node's verification service and an offline verifier say the same
        online = public.verify(DOCUMENT, seal)
        assert (online.indication, online.sub_indication) == (
            Indication.INDETERMINATE,
            SubIndication.REVOKED_NO_POE,
        )
        assert offline(cluster, published, DOCUMENT, seal) == (
            Indication.INDETERMINATE,
            SubIndication.REVOKED_NO_POE,
        )
        signing_time = online.report["signing_time"]
        assert sealed_at in (None, signing_time)
        (key_validity,) = [c for c in online.report["checks"] if c["name"] == "key_validity"]
        assert key_validity["detail"] == (
            f"the key of seal {SEAL_ID} was revoked at {revoked} for key compromise "
            f"(keyCompromise: 印章钥匙泄露); the signing time {signing_time} is only the "
            "signer's claim, and nothing proves the seal existed before the revocation"
        )


def test_bad_input_is_refused_with_a_precise_status_and_changes_nothing(
    cluster: Cluster, admin: SealClient, hall: SealClient, public: VerificationClient
) -> None:
    register(admin)
    sealed = hall.seal_document(b"permit", seal_id=SEAL_ID)
    node = cluster.nodes[NODE]
    keys = sorted((cluster.fed / NODE / "seals" / "keys").iterdir())
    before = snapshot(node)
    now = utcnow()
    window = {"not_before": now, "not_after": now + timedelta(days=30), "org_name": ORG_NAME}
    bad_uscc = EZHOU_USCC[:-1] + "B"
    check = parse_ecert_identifier(sealed.identifier).check
    wrong = "0" if check != "0" else "1"
    bad_identifier = sealed.identifier[:-1] + wrong
    cases = [
        (
            (hall.seal_document, b"permit"),
            {"seal_id": "x"},
            grpc.StatusCode.NOT_FOUND,
            "not-found: unknown seal id 'x'",
        ),
        (
            (admin.revoke_seal, "x", "keyCompromise"),
            {},
            grpc.StatusCode.NOT_FOUND,
            "not-found: unknown seal id 'x'",
        ),
        (
            (admin.revoke_seal, SEAL_ID, "lost"),
            {},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-request: unknown revocation reason 'lost': one of unspecified, "
            "keyCompromise, caCompromise, affiliationChanged, superseded, cessationOfOperation",
        ),
        (
            (admin.register_seal, "other", SEAL_NAME, bad_uscc),
            window,
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-identifier: credit code check character is 'B', expected 'A'",
        ),
        (
            (admin.register_seal, SEAL_ID, SEAL_NAME, EZHOU_USCC),
            window,
            grpc.StatusCode.ALREADY_EXISTS,
            f"conflict: seal id '{SEAL_ID}' is already registered",
        ),
        (
            (admin.register_seal, "no-org", SEAL_NAME, EZHOU_USCC),
            window | {"org_name": " "},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-request: a seal needs the name of the organisation that owns it",
        ),
        (
            (admin.register_seal, "bad id!", SEAL_NAME, EZHOU_USCC),
            window,
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-request: seal id 'bad id!' must be 1-64 of A-Z a-z 0-9 . _ -",
        ),
        (
            (admin.register_seal, "late", SEAL_NAME, EZHOU_USCC),
            {"not_before": now, "not_after": now - timedelta(days=1), "org_name": ORG_NAME},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-request: the seal's validity window is empty",
        ),
        (
            (admin.change_ecert_status, bad_identifier, "revoked", "lost"),
            {},
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad-ecert-check-character: e-certificate identifier check character is "
            f"'{wrong}', expected '{check}'",
        ),
        (
            (admin.change_ecert_status, sealed.identifier, "suspended", "lost"),
            {},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-request: unknown e-certificate status 'suspended'",
        ),
        (
            (admin.change_ecert_status, sealed.identifier, "revoked", "  "),
            {},
            grpc.StatusCode.INVALID_ARGUMENT,
            "invalid-request: a revoked e-certificate needs a reason",
        ),
        (
            (hall.change_ecert_status, sealed.identifier, "revoked", "lost"),
            {},
            grpc.StatusCode.PERMISSION_DENIED,
            f"permission-denied: hall {NODE}-hall-1 of node {NODE} is not an admin of node {NODE}",
        ),
        (
            (public.ecert_status, bad_identifier),
            {},
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad-ecert-check-character: e-certificate identifier check character is "
            f"'{wrong}', expected '{check}'",
        ),
    ]
    for (call, *args), kwargs, want_status, want_message in cases:
        status, message = refused(call, *args, **kwargs)
        assert (status, message) == (want_status, want_message), call
    never_issued = str(ECertIdentifier("DOC", EZHOU_USCC, "999999999999"))
    assert refused(public.ecert_status, never_issued) == (
        grpc.StatusCode.NOT_FOUND,
        f"not-found: e-certificate {never_issued} was not issued by node {NODE}",
    )
    assert snapshot(node) == before
    assert sorted((cluster.fed / NODE / "seals" / "keys").iterdir()) == keys
    assert public.ecert_status(sealed.identifier).status is ECertStatus.VALID


def test_a_document_sealed_in_the_first_second_of_a_seal_verifies(
    cluster: Cluster, public: VerificationClient, tmp_path: Path
) -> None:
    # The SDK takes not_before down to the second; a caller of the RPC itself may not.
    moment = utcnow().replace(microsecond=500_000)
    cluster.stop(NODE)
    cluster.start(NODE, clock=lambda: moment)
    folder = admin_folder(cluster)
    creds = grpc.ssl_channel_credentials(
        (folder / "root.pem").read_bytes(),
        (folder / "key.pem").read_bytes(),
        (folder / "cert.pem").read_bytes(),
    )
    with grpc.secure_channel(
        cluster.directory().node(NODE).endpoint,
        creds,
        options=[("grpc.ssl_target_name_override", f"node-{NODE}.tongban")],
    ) as channel:
        seal_pb2_grpc.SealServiceStub(channel).RegisterSeal(
            seal_pb2.RegisterSealRequest(
                seal_id=SEAL_ID,
                name=SEAL_NAME,
                org_uscc=EZHOU_USCC,
                org_name=ORG_NAME,
                not_before=format_time(moment - timedelta(milliseconds=250)),
                not_after=format_time(moment + timedelta(days=30)),
            ),
            timeout=20,
        )
    with SealClient.from_profile(admin_folder(cluster)) as admin:
        sealed = admin.seal_document(DOCUMENT, seal_id=SEAL_ID)
    directory = load_directory(public.directory(), roots(cluster), at=moment)
    registry = load_seal_registry(public.seal_registry(), directory, at=moment)
    report = seal_verification_result(
        DOCUMENT, seal=sealed.data, roots=roots(cluster), seals=registry.seals, at=moment
    )
    assert report.indication is Indication.VALID, report.summary


def test_fetch_published_writes_nothing_unless_the_lists_verify(
    cluster: Cluster, public: VerificationClient, tmp_path: Path
) -> None:
    other = _other_root(tmp_path)
    out = tmp_path / "published"
    with pytest.raises((SignatureError, UnknownKeyError)):
        fetch_published(public, out, roots=other)
    assert not out.exists()
    # asked as another node, the registry and status list name the wrong node
    with VerificationClient(
        public_endpoint(cluster, NODE),
        node_id=NODE,
        root_pem=root_pem_path(cluster).read_bytes(),
    ) as client:
        client.node_id = "420100"
        with pytest.raises(KeysError, match="node 420100 sent the seal registry of node 420700"):
            fetch_published(client, out, roots=roots(cluster))
    assert not out.exists()


def _other_root(tmp_path: Path) -> list[x509.Certificate]:
    from tongban.cli.federation import node_specs, write_federation

    specs = node_specs(["420700"], base_port=0, host="127.0.0.1", endpoints={}, names={})
    write_federation(tmp_path / "other", specs, now=utcnow())
    return load_certificates((tmp_path / "other" / "public" / "root.pem").read_bytes())


def test_an_unreachable_verification_service_is_refused_as_unavailable(
    cluster: Cluster,
) -> None:
    from tongban.cli.demo import free_ports

    (port,) = free_ports(1)
    with VerificationClient(
        f"127.0.0.1:{port}",
        node_id=NODE,
        root_pem=root_pem_path(cluster).read_bytes(),
        timeout=5,
    ) as client:
        status, _ = refused(client.directory)
    assert status is grpc.StatusCode.UNAVAILABLE


# --- the command line ----------------------------------------------------------------------


def test_cli_register_seal_fetch_verify_online_and_offline(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_dir, hall_dir, root = admin_folder(cluster), hall_folder(cluster), root_pem_path(cluster)
    endpoint = public_endpoint(cluster)
    code = cli(
        "seal",
        "register",
        "--profile",
        admin_dir,
        "--seal-id",
        SEAL_ID,
        "--name",
        SEAL_NAME,
        "--org-name",
        ORG_NAME,
        "--uscc",
        EZHOU_USCC,
    )
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith(f"seal {SEAL_ID}: {SEAL_NAME}\n")
    assert f"  organisation:  {EZHOU_USCC}\n" in out

    document = tmp_path / "permit.txt"
    document.write_bytes(DOCUMENT)
    assert cli("seal", document, "--profile", hall_dir, "--seal-id", SEAL_ID) == 0
    out = capsys.readouterr().out
    p7s = tmp_path / "permit.txt.p7s"
    assert out.startswith(f"sealed {document} -> {p7s} (e-certificate 1.2.156.3005.2.DOC.")
    identifier = out.strip().rsplit(" ", 1)[1].rstrip(")")
    parse_ecert_identifier(identifier)
    assert openssl_cms_verify(document, p7s, root).returncode == 0

    published = tmp_path / "published"
    code = cli(
        "published",
        "fetch",
        "--node",
        endpoint,
        "--node-id",
        NODE,
        "--trust",
        root,
        "--out",
        published,
    )
    assert code == 0
    assert capsys.readouterr().out == "".join(
        f"wrote {published / n}\n"
        for n in (
            "root.pem",
            "directory.json",
            f"{NODE}/seal-registry.json",
            f"{NODE}/status-list.json",
        )
    )

    offline_args = (
        "verify",
        document,
        "--seal",
        p7s,
        "--trust",
        root,
        "--directory",
        published / "directory.json",
        "--seals",
        published / NODE / "seal-registry.json",
    )
    assert cli(*offline_args, "--status-list", published / NODE / "status-list.json", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["indication"], report["ecert_status"]) == ("VALID", "valid")
    assert report["signer"]["seal_id"] == SEAL_ID
    # without the registry the seal is unknown
    assert cli(*offline_args[:-2], "--json") == 3
    capsys.readouterr()

    # the published folder alone: root, directory, every node's registry and status list
    by_folder = ("verify", document, "--seal", p7s, "--trust", published / "root.pem")
    assert cli(*by_folder, "--published", published, "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert (report["indication"], report["ecert_status"]) == ("VALID", "valid")
    # a folder without this node's lists knows no such seal
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "directory.json").write_bytes((published / "directory.json").read_bytes())
    assert cli(*by_folder, "--published", bare, "--json") == 3
    report = json.loads(capsys.readouterr().out)
    assert report["sub_indication"] == "SIG_CONSTRAINTS_FAILURE"
    assert (
        report["checks"][4]["detail"] == f"seal id '{SEAL_ID}' is not in the published seal records"
    )
    assert cli(*by_folder, "--published", tmp_path / "nowhere") == 2
    assert capsys.readouterr().err == (
        f"tongban verify: error: --published: {tmp_path / 'nowhere'} is not a folder\n"
    )

    # a verification service that does not answer leaves the status undecided
    from tongban.cli.demo import free_ports

    (dead,) = free_ports(1)
    assert cli(*offline_args, "--online", f"127.0.0.1:{dead}", "--node-id", NODE) == 3
    out = capsys.readouterr().out
    assert out.startswith("INDETERMINATE (TRY_LATER): the verification service failed: UNAVAILABLE")

    online_args = (*offline_args, "--online", endpoint, "--node-id", NODE, "--json")
    assert cli(*online_args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ecert_status"] == "valid"
    assert "verification service" in report["checks"][-1]["detail"]

    code = cli("ecert", "revoke", identifier, "--reason", "依法吊销", "--profile", admin_dir)
    assert code == 0
    assert capsys.readouterr().out.startswith(f"e-certificate {identifier} is revoked since ")
    assert cli(*online_args) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["indication"], report["sub_indication"]) == ("INVALID", "ECERT_REVOKED")
    # the list fetched before the revocation does not know yet; a fresh one does
    assert cli(*offline_args, "--status-list", published / NODE / "status-list.json") == 0
    capsys.readouterr()
    assert (
        cli(
            "published",
            "fetch",
            "--node",
            endpoint,
            "--node-id",
            NODE,
            "--trust",
            root,
            "--out",
            published,
        )
        == 0
    )
    capsys.readouterr()
    assert cli(*offline_args, "--status-list", published / NODE / "status-list.json") == 1
    assert capsys.readouterr().out.startswith("INVALID (ECERT_REVOKED)")
    assert cli(*by_folder, "--published", published) == 1
    assert capsys.readouterr().out.startswith("INVALID (ECERT_REVOKED)")

    # the seal key is reported stolen: its seals no longer count on their claimed time
    code = cli(
        "seal",
        "revoke",
        "--profile",
        admin_dir,
        "--seal-id",
        SEAL_ID,
        "--reason",
        "keyCompromise",
        "--note",
        "印章钥匙泄露",
    )
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    revoked_line = next(line for line in lines if line.startswith("  revoked:"))
    assert revoked_line.endswith(" (keyCompromise: 印章钥匙泄露)")
    assert lines[-1] == "  earlier seals: valid only where their time is proven"
    assert (
        cli(
            "published",
            "fetch",
            "--node",
            endpoint,
            "--node-id",
            NODE,
            "--trust",
            root,
            "--out",
            published,
        )
        == 0
    )
    capsys.readouterr()
    assert cli(*offline_args) == 3
    assert capsys.readouterr().out.startswith(
        f"INDETERMINATE (REVOKED_NO_POE): the key of seal {SEAL_ID} was revoked at "
    )


def test_cli_seal_a_pdf_through_the_node_and_other_shapes_of_the_command(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admin_dir, hall_dir = admin_folder(cluster), hall_folder(cluster)
    start = (utcnow() - timedelta(days=1)).replace(microsecond=0)
    end = start + timedelta(days=400)
    assert (
        cli(
            "seal",
            "--profile",
            admin_dir,
            "register",
            "--seal-id",
            SEAL_ID,
            "--name",
            SEAL_NAME,
            "--org-name",
            ORG_NAME,
            "--uscc",
            EZHOU_USCC,
            "--not-before",
            start.isoformat(),
            "--not-after",
            end.isoformat(),
        )
        == 0
    )
    assert f"  valid:         {format_time(start)} .. {format_time(end)}\n" in (
        capsys.readouterr().out
    )
    pdf = tmp_path / "licence.pdf"
    pdf.write_bytes(make_pdf())
    # options before the file; a PDF with a type code
    assert (
        cli("seal", "--pdf", "--profile", hall_dir, "--seal-id", SEAL_ID, "--type", "LIC", pdf) == 0
    )
    out = capsys.readouterr().out
    sealed = tmp_path / "licence.sealed.pdf"
    assert f"-> {sealed} (e-certificate 1.2.156.3005.2.LIC." in out
    assert (
        cli(
            "verify",
            sealed,
            "--trust",
            root_pem_path(cluster),
            "--online",
            public_endpoint(cluster),
            "--node-id",
            NODE,
        )
        == 0
    )
    assert capsys.readouterr().out.startswith("VALID: sealed by")

    # a file named like a sub-command, given as a path
    named = tmp_path / "register"
    named.write_bytes(b"a file called register")
    out_file = tmp_path / "named.p7s"
    assert cli("seal", named, "--profile", hall_dir, "--seal-id", SEAL_ID, "--out", out_file) == 0
    assert out_file.is_file()
    capsys.readouterr()


WRONG_SHAPES = [
    (
        ("seal", "{doc}", "--profile", "{hall}"),
        "tongban seal: error: sealing through the node needs --seal-id\n",
    ),
    (
        ("seal", "{doc}"),
        "tongban seal: error: give --profile DIR --seal-id ID to seal through the node, "
        "or --seal-key KEY --seal-cert CERT to seal locally\n",
    ),
    (
        ("seal", "{doc}", "--profile", "{hall}", "--seal-id", "s", "--ecert", "x"),
        "tongban seal: error: --ecert does not apply to sealing through the node\n",
    ),
    (
        ("seal", "{doc}", "--seal-key", "k.pem", "--seal-cert", "c.pem", "--profile", "p"),
        "tongban seal: error: --profile does not apply to sealing locally\n",
    ),
    (
        ("seal", "register", "--profile", "{admin}", "--seal-id", "s", "--name", "n"),
        "tongban seal register: error: registering a seal needs --org-name, --uscc\n",
    ),
    (
        (
            "seal",
            "register",
            "--profile",
            "{admin}",
            "--seal-id",
            "s",
            "--name",
            "n",
            "--org-name",
            ORG_NAME,
            "--uscc",
            EZHOU_USCC,
            "--pdf",
        ),
        "tongban seal register: error: --pdf does not apply to registering a seal\n",
    ),
    (
        (
            "seal",
            "register",
            "--profile",
            "{admin}",
            "--seal-id",
            "s",
            "--name",
            "n",
            "--org-name",
            ORG_NAME,
            "--uscc",
            EZHOU_USCC,
            "--not-after",
            "soon",
        ),
        "tongban seal register: error: --not-after 'soon': Invalid isoformat string: 'soon'\n",
    ),
    (
        ("seal", "register", "--profile", "{admin}", "--seal-id", "s", "--note", "x"),
        "tongban seal register: error: --note does not apply to registering a seal\n",
    ),
    (
        ("seal", "{doc}", "--profile", "{tmp}/nowhere", "--seal-id", "s"),
        "tongban seal: error: profile {tmp}/nowhere: {tmp}/nowhere holds neither "
        "admin.toml nor hall.toml\n",
    ),
    (
        ("verify", "{doc}", "--trust", "{root}", "--seals", "{registry}"),
        "tongban verify: error: seal registry {registry} is signed by its node: give "
        "--directory with the signed federation directory to check it\n",
    ),
    (
        ("verify", "{doc}", "--trust", "{root}", "--online", "127.0.0.1:1"),
        "tongban verify: error: --online needs --node-id, the id of the node at that address\n",
    ),
    (
        ("verify", "{doc}", "--trust", "{root}", "--node-id", NODE),
        "tongban verify: error: --node-id names the node asked with --online\n",
    ),
]


def test_cli_refuses_wrong_shapes_of_the_commands(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = tmp_path / "permit.txt"
    doc.write_bytes(DOCUMENT)
    registry = tmp_path / "seal-registry.json"
    with VerificationClient(
        public_endpoint(cluster), node_id=NODE, root_pem=root_pem_path(cluster).read_bytes()
    ) as client:
        registry.write_text(json.dumps(client.seal_registry().to_json_dict()), "utf-8")
    names = {
        "doc": doc,
        "hall": hall_folder(cluster),
        "admin": admin_folder(cluster),
        "tmp": tmp_path,
        "root": root_pem_path(cluster),
        "registry": registry,
    }
    before = snapshot(cluster.nodes[NODE])
    for args, message in WRONG_SHAPES:
        code = cli(*(a.format(**names) for a in args))
        captured = capsys.readouterr()
        assert (code, captured.err) == (2, message.format(**names)), args
    assert not (tmp_path / "permit.txt.p7s").exists()
    assert snapshot(cluster.nodes[NODE]) == before


def test_cli_reports_what_the_node_refused(
    cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hall_dir, admin_dir = hall_folder(cluster), admin_folder(cluster)
    doc = tmp_path / "permit.txt"
    doc.write_bytes(DOCUMENT)
    code = cli(
        "seal",
        "register",
        "--profile",
        hall_dir,
        "--seal-id",
        SEAL_ID,
        "--name",
        SEAL_NAME,
        "--org-name",
        ORG_NAME,
        "--uscc",
        EZHOU_USCC,
    )
    assert code == 1
    assert capsys.readouterr().err == (
        "tongban seal register: refused: PERMISSION_DENIED: permission-denied: hall "
        f"{NODE}-hall-1 of node {NODE} is not an admin of node {NODE}\n"
    )
    assert cli("seal", doc, "--profile", hall_dir, "--seal-id", "x") == 1
    assert capsys.readouterr().err == (
        "tongban seal: refused: NOT_FOUND: not-found: unknown seal id 'x'\n"
    )
    assert not (tmp_path / "permit.txt.p7s").exists()
    bad = "1.2.156.3005.2.DOC." + EZHOU_USCC + ".000000000001.001.Z"
    assert cli("ecert", "cancel", bad, "--reason", "注销", "--profile", admin_dir) == 1
    err = capsys.readouterr().err
    assert err.startswith(
        "tongban ecert cancel: refused: INVALID_ARGUMENT: bad-ecert-check-character: "
    )
    # fetching with another federation's root: the TLS handshake already fails
    other = tmp_path / "other-root.pem"
    other.write_bytes(b"".join(certificate_pem(c) for c in _other_root(tmp_path)))
    code = cli(
        "published",
        "fetch",
        "--node",
        public_endpoint(cluster),
        "--node-id",
        NODE,
        "--trust",
        other,
        "--out",
        tmp_path / "published",
    )
    assert code == 1
    assert capsys.readouterr().err.startswith("tongban published fetch: refused: UNAVAILABLE: ")
    assert not (tmp_path / "published").exists()
