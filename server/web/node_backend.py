"""The site of a running node: its records answer, through the node's use cases.

This is the one module of the site that calls into ``tongban.server.usecases``.
"""

from __future__ import annotations

from typing import BinaryIO

from cryptography import x509

from tongban.keys.errors import KeysError
from tongban.keys.pki import load_certificate
from tongban.keys.trust import CLIENT_AUTH, authenticate_certificate
from tongban.keys.verification import SealVerificationReport, seal_verification_result
from tongban.server.domain.errors import Unauthenticated
from tongban.server.usecases.ecert_records import ECertRecords
from tongban.server.usecases.operations import Operations, OperationsSnapshot
from tongban.server.usecases.runtime import Clock, DirectoryHolder, require_admin
from tongban.server.web.ecert_view import ECertView, issued_checks, record_report, status_check

__all__ = ["NodeBackend"]


class NodeBackend:
    """Answers from the node's own database, seal records and federation root."""

    def __init__(
        self,
        *,
        node_id: str,
        directory: DirectoryHolder,
        clock: Clock,
        roots: list[x509.Certificate],
        records: ECertRecords,
        operations: Operations,
    ) -> None:
        self._node_id = node_id
        self._directory = directory
        self._clock = clock
        self._roots = roots
        self._records = records
        self._operations = operations

    @property
    def site_name(self) -> str:
        me = self._directory.current.node(self._node_id)
        return f"{me.name}（节点 {me.node_id}）"

    def ecert(self, identifier: str) -> ECertView:
        record = self._records.record(identifier)
        source = f"the records of node {self._node_id}"
        checks = [
            *issued_checks(node_id=self._node_id, issued_at=record.issued_at, seal=record.seal),
            status_check(record.status, source),
        ]
        report = record_report(
            identifier, checks, at=self._clock(), seal=record.seal, status=record.status
        )
        return ECertView(
            identifier=record.identifier,
            type_code=record.type_code,
            issuer_uscc=record.seal.org_uscc if record.seal else "",
            report=report,
            source=f"签发节点 {self._node_id} 的登记记录",
            document_name=record.document_name,
            document_sha256=record.document_sha256,
            issued_at=record.issued_at,
            status=record.status,
            seal=record.seal,
        )

    def verify(self, document: BinaryIO, seal: bytes | None) -> SealVerificationReport:
        return seal_verification_result(
            document,
            seal=seal,
            roots=self._roots,
            seals=self._records.seal_records(),
            at=self._clock(),
            online_status=self._records.online_status,
        )

    def operations(self) -> OperationsSnapshot:
        """The outbox, deliveries, keys, seals and e-certificates, read now.

        Raises:
            Unavailable: the database cannot be reached.
        """
        return self._operations.snapshot()

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
                self._directory.current,
                usage=CLIENT_AUTH,
            )
        except KeysError as exc:
            raise Unauthenticated(f"{exc.code}: {exc.message}") from None
        admin = require_admin(self._node_id, identity)
        return admin, self.operations()
