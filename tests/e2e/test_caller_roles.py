"""Who may call which service of a node: the identity in the caller's certificate, and the
role and node it names. Each refusal is checked with its exact status and message against a
real node, beside the caller it lets in, so a check that let everyone in or no one in shows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import NoReturn

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.harness import Cluster, deliver, forge_delivery, start_cluster
from tests.legacy_pki import legacy_ca, legacy_leaf
from tongban.keys.clock import utcnow
from tongban.keys.pki import (
    Role,
    certificate_pem,
    generate_signing_key,
    issue_certificate,
    load_certificate,
    load_private_key,
    private_key_pem,
)
from tongban.proto import (
    hall_pb2,
    hall_pb2_grpc,
    relay_pb2,
    relay_pb2_grpc,
    seal_pb2,
    seal_pb2_grpc,
)
from tongban.server.grpc.servicers import HallServicer, RelayServicer

# The node called is B; the other nodes' ids lie below (A) and above (C) its own.
A, B, C = "420100", "420700", "440300"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("roles"))
    yield c
    c.close()


# ---- callers ----------------------------------------------------------------------------------


def _key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = load_private_key(path.read_bytes())
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    return key


def _issued_folder(cluster: Cluster, who: str) -> tuple[bytes, bytes]:
    """Key and certificate chain PEM of a caller the federation issued: ``node:N``,
    ``hall:NAME`` or ``admin:NAME`` (of the node its name begins with)."""
    role, name = who.split(":")
    node = name[:6]
    if role == "node":
        d = cluster.fed / name / "tls"
        return (d / "node-key.pem").read_bytes(), (d / "node.pem").read_bytes()
    d = cluster.fed / node / f"{role}s" / name
    return (d / "key.pem").read_bytes(), (d / "cert.pem").read_bytes()


def _unenrolled_hall(cluster: Cluster, node: str, name: str) -> tuple[bytes, bytes]:
    """A hall certificate that the node's own identity CA issued for a hall the directory
    does not list (its administrators made it, or one of a hall since removed)."""
    offline = cluster.fed / "offline" / node
    ca_pem = (offline / "identity-ca.pem").read_bytes()
    key = generate_signing_key()
    cert = issue_certificate(
        _key(offline / "identity-ca-key.pem"),
        load_certificate(ca_pem),
        key.public_key(),
        role=Role.HALL,
        node_id=node,
        name=name,
        now=utcnow() - timedelta(minutes=1),
        dns_names=(f"{name}.hall.node-{node}.tongban",),
    )
    return private_key_pem(key), certificate_pem(cert) + ca_pem


def _legacy_hall(cluster: Cluster) -> tuple[bytes, bytes, str]:
    """A hall certificate of node B minted by node A's seal CA as issued before the identity
    CAs: it chains to the root, so only the node's identity check can refuse it."""
    root_key = _key(cluster.fed / "root" / "root-key.pem")
    root = load_certificate((cluster.fed / "root" / "root.pem").read_bytes())
    ca_key, ca = legacy_ca(
        root_key, root, A, utcnow(), key=_key(cluster.fed / A / "seals" / "ca-key.pem")
    )
    name = f"{B}-hall-1"
    key, cert = legacy_leaf(
        ca_key,
        ca,
        role=Role.HALL,
        node_id=B,
        name=name,
        now=utcnow(),
        dns_names=(f"{name}.hall.node-{B}.tongban",),
    )
    return (
        private_key_pem(key),
        certificate_pem(cert) + certificate_pem(ca),
        cert.issuer.rfc4514_string(),
    )


def _channel(cluster: Cluster, to_node: str, credentials: tuple[bytes, bytes]) -> grpc.Channel:
    key, chain = credentials
    root = (cluster.fed / "public" / "root.pem").read_bytes()
    return grpc.secure_channel(
        cluster.directory().node(to_node).endpoint,
        grpc.ssl_channel_credentials(root, key, chain),
        options=[("grpc.ssl_target_name_override", f"node-{to_node}.tongban")],
    )


def _refusal(call: object) -> tuple[grpc.StatusCode, str]:
    assert callable(call)
    with pytest.raises(grpc.RpcError) as exc:
        call()
    return exc.value.code(), exc.value.details() or ""


def _list_inbox(cluster: Cluster, credentials: tuple[bytes, bytes]) -> hall_pb2.InboxResponse:
    with _channel(cluster, B, credentials) as ch:
        return hall_pb2_grpc.HallServiceStub(ch).ListInbox(hall_pb2.InboxRequest(), timeout=10)


def _push_event(cluster: Cluster, credentials: tuple[bytes, bytes]) -> relay_pb2.PushEventResponse:
    with _channel(cluster, B, credentials) as ch:
        return relay_pb2_grpc.RelayServiceStub(ch).PushEvent(
            relay_pb2.PushEventRequest(), timeout=10
        )


def _revoke_seal(cluster: Cluster, credentials: tuple[bytes, bytes]) -> seal_pb2.SealInfo:
    with _channel(cluster, B, credentials) as ch:
        return seal_pb2_grpc.SealServiceStub(ch).RevokeSeal(
            seal_pb2.RevokeSealRequest(seal_id="no-such-seal", reason="superseded"), timeout=10
        )


DENIED = grpc.StatusCode.PERMISSION_DENIED


# ---- the hall service: halls of this node that the directory lists ---------------------------


def test_a_hall_of_the_node_uses_the_hall_service(cluster: Cluster) -> None:
    for hall in (f"{B}-hall-1", f"{B}-hall-2"):
        assert list(_list_inbox(cluster, _issued_folder(cluster, f"hall:{hall}")).entries) == []


@pytest.mark.parametrize(
    ("who", "message"),
    [
        (f"node:{A}", f"node {A} of node {A} may not use the hall service"),
        (f"node:{B}", f"node {B} of node {B} may not use the hall service"),
        (f"admin:{B}-admin", f"admin {B}-admin of node {B} may not use the hall service"),
        (f"hall:{A}-hall-1", f"hall {A}-hall-1 belongs to node {A}, not to {B}"),
        (f"hall:{C}-hall-1", f"hall {C}-hall-1 belongs to node {C}, not to {B}"),
    ],
)
def test_other_callers_are_refused_the_hall_service(
    cluster: Cluster, who: str, message: str
) -> None:
    creds = _issued_folder(cluster, who)
    assert _refusal(lambda: _list_inbox(cluster, creds)) == (
        DENIED,
        f"permission-denied: {message}",
    )


def test_a_hall_the_directory_does_not_list_is_refused_though_its_node_issued_it(
    cluster: Cluster,
) -> None:
    creds = _unenrolled_hall(cluster, B, f"{B}-hall-9")
    assert _refusal(lambda: _list_inbox(cluster, creds)) == (
        DENIED,
        f"permission-denied: hall {B}-hall-9 is not enrolled at node {B}",
    )


# ---- the relay service: member nodes ------------------------------------------------------------


def test_a_member_node_uses_the_relay_service(cluster: Cluster) -> None:
    response = deliver(
        cluster, forge_delivery(cluster, sender=A, recipient=B), as_node=A, to_node=B
    )
    assert not response.duplicate
    # Past the caller check, an empty event is judged as such.
    code, _ = _refusal(lambda: _push_event(cluster, _issued_folder(cluster, f"node:{C}")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    ("who", "message"),
    [
        (f"hall:{B}-hall-1", f"hall {B}-hall-1 of node {B} may not use the relay service"),
        (f"hall:{A}-hall-1", f"hall {A}-hall-1 of node {A} may not use the relay service"),
        (f"admin:{B}-admin", f"admin {B}-admin of node {B} may not use the relay service"),
    ],
)
def test_halls_and_admins_are_refused_the_relay_service(
    cluster: Cluster, who: str, message: str
) -> None:
    creds = _issued_folder(cluster, who)
    assert _refusal(lambda: _push_event(cluster, creds)) == (
        DENIED,
        f"permission-denied: {message}",
    )


# ---- the seal administration: admins of this node -----------------------------------------------


def test_an_admin_of_the_node_administers_its_seals(cluster: Cluster) -> None:
    # Past the caller check, the unknown seal is what is refused.
    code, message = _refusal(
        lambda: _revoke_seal(cluster, _issued_folder(cluster, f"admin:{B}-admin"))
    )
    assert code == grpc.StatusCode.NOT_FOUND, message


@pytest.mark.parametrize(
    ("who", "message"),
    [
        (f"admin:{A}-admin", f"admin {A}-admin of node {A} is not an admin of node {B}"),
        (f"admin:{C}-admin", f"admin {C}-admin of node {C} is not an admin of node {B}"),
        (f"hall:{B}-hall-1", f"hall {B}-hall-1 of node {B} is not an admin of node {B}"),
        (f"node:{B}", f"node {B} of node {B} is not an admin of node {B}"),
        (f"node:{A}", f"node {A} of node {A} is not an admin of node {B}"),
    ],
)
def test_other_callers_are_refused_the_seal_administration(
    cluster: Cluster, who: str, message: str
) -> None:
    creds = _issued_folder(cluster, who)
    assert _refusal(lambda: _revoke_seal(cluster, creds)) == (
        DENIED,
        f"permission-denied: {message}",
    )


# ---- the identity itself ------------------------------------------------------------------------


def test_a_certificate_the_nodes_identity_ca_did_not_issue_names_no_one(cluster: Cluster) -> None:
    key, chain, issuer = _legacy_hall(cluster)
    expected = (
        grpc.StatusCode.UNAUTHENTICATED,
        f"unauthenticated: untrusted-certificate: the certificate of hall {B}-hall-1 of node {B} "
        f"was not issued by the identity CA the directory lists for node {B} (its issuer: "
        f"{issuer})",
    )
    assert _refusal(lambda: _list_inbox(cluster, (key, chain))) == expected
    # Asked again, the answer is the same (what was refused is not remembered as accepted).
    assert _refusal(lambda: _list_inbox(cluster, (key, chain))) == expected


class _Aborted(Exception):
    pass


class _NoCertificateContext:
    """A call that carries no client certificate: the handshake of the node's port asks for
    one, so only a servicer reached some other way could see such a call."""

    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    def auth_context(self) -> dict[str, list[bytes]]:
        return {}

    def set_trailing_metadata(self, metadata: object) -> None:
        pass

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        self.aborted = (code, details)
        raise _Aborted


NO_CERTIFICATE = (
    grpc.StatusCode.UNAUTHENTICATED,
    "unauthenticated: a client certificate issued by the federation root is required",
)


def test_a_call_without_a_client_certificate_names_no_one(cluster: Cluster) -> None:
    node = cluster.nodes[B]
    hall = HallServicer(
        node_id=B,
        directory=node.directory,
        submit=node.submit,
        inbox=node.inbox,
        cases=node.cases,
    )
    hall_context = _NoCertificateContext()
    with pytest.raises(_Aborted):
        hall.ListInbox(hall_pb2.InboxRequest(), hall_context)
    assert hall_context.aborted == NO_CERTIFICATE
    relay = RelayServicer(directory=node.directory, receive=node.receive, cases=node.cases)
    relay_context = _NoCertificateContext()
    with pytest.raises(_Aborted):
        relay.PushEvent(relay_pb2.PushEventRequest(), relay_context)
    assert relay_context.aborted == NO_CERTIFICATE
