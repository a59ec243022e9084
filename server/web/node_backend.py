"""The site of a running node: its records answer, through the node's use cases.

This is the one module of the site that calls into ``tongban.server.usecases``.
"""

from __future__ import annotations

from typing import BinaryIO

from tongban.keys.errors import KeysError
from tongban.keys.pki import load_certificate, load_certificates
from tongban.keys.trust import CLIENT_AUTH, authenticate_certificate
from tongban.keys.verification import SealVerificationReport, seal_verification_result
from tongban.server.domain.errors import Unauthenticated
from tongban.server.usecases import ecert_records, operations
from tongban.server.usecases.operations import OperationsSnapshot
from tongban.server.usecases.runtime import NodeRuntime, require_admin
from tongban.server.web.ecert_view import ECertView, issued_checks, record_report, status_check

__all__ = ["NodeBackend"]


class NodeBackend:
    """Answers from the node's own database, seal records and federation root."""

    def __init__(self, runtime: NodeRuntime) -> None:
        self._rt = runtime
        self._roots = load_certificates(runtime.config.root_cert.read_bytes())

    @property
    def runtime(self) -> NodeRuntime:
        return self._rt

    @property
    def site_name(self) -> str:
        me = self._rt.me()
        return f"{me.name}（节点 {me.node_id}）"

    def ecert(self, identifier: str) -> ECertView:
        rt = self._rt
        record = ecert_records.ecert_record(rt, identifier)
        source = f"the records of node {rt.node_id}"
        checks = [
            *issued_checks(node_id=rt.node_id, issued_at=record.issued_at, seal=record.seal),
            status_check(record.status, source),
        ]
        report = record_report(
            identifier, checks, at=rt.clock(), seal=record.seal, status=record.status
        )
        return ECertView(
            identifier=record.identifier,
            type_code=record.type_code,
            issuer_uscc=record.seal.org_uscc if record.seal else "",
            report=report,
            source=f"签发节点 {rt.node_id} 的登记记录",
            document_name=record.document_name,
            document_sha256=record.document_sha256,
            issued_at=record.issued_at,
            status=record.status,
            seal=record.seal,
        )

    def verify(self, document: BinaryIO, seal: bytes | None) -> SealVerificationReport:
        rt = self._rt
        records = ecert_records.seal_records(rt)
        return seal_verification_result(
            document,
            seal=seal,
            roots=self._roots,
            seals=records,
            at=rt.clock(),
            online_status=lambda identifier: ecert_records.online_status(rt, identifier),
        )

    def operations(self) -> OperationsSnapshot:
        """The outbox, deliveries, keys, seals and e-certificates, read now.

        Raises:
            Unavailable: the database cannot be reached.
        """
        return operations.operations_snapshot(self._rt)

    def operations_for(self, client_pem: str | None) -> tuple[str, OperationsSnapshot]:
        """The operations view, for an administrator of this node only.

        ``client_pem`` is the certificate the caller presented in the TLS handshake (which
        proved the caller holds its key and that it chains to the federation root). It
        counts under the same rule as on the gRPC side: issued by the identity CA the
        directory lists for its node, for client authentication, naming an admin of this
        node.

        Raises:
            Unauthenticated: no certificate, or one that may not claim its identity.
            PermissionDenied: not an admin of this node.
            Unavailable: the database cannot be reached.
        """
        if not client_pem:
            raise Unauthenticated("an administrator's client certificate is required")
        try:
            identity = authenticate_certificate(
                load_certificate(client_pem.encode()),
                self._rt.directory.current,
                usage=CLIENT_AUTH,
            )
        except KeysError as exc:
            raise Unauthenticated(f"{exc.code}: {exc.message}") from None
        admin = require_admin(self._rt, identity)
        return admin, self.operations()
