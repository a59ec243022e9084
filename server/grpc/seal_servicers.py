"""gRPC servicers for seals (mutual TLS) and for verification (no client certificate)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import grpc

from tongban.keys.clock import format_time, parse_time
from tongban.keys.ecert import ECertStatusEntry
from tongban.keys.errors import echo
from tongban.keys.pki import Role, certificate_pem
from tongban.keys.seals import SealRecord
from tongban.proto import common_pb2, seal_pb2, seal_pb2_grpc
from tongban.server.config import Limits
from tongban.server.domain.errors import InvalidRequest, PermissionDenied, TooLarge
from tongban.server.grpc.converters import envelope_to_proto
from tongban.server.grpc.identity import caller_identity
from tongban.server.grpc.status import guard, guard_stream
from tongban.server.usecases.runtime import DirectoryHolder, require_admin
from tongban.server.usecases.seals import SealOffice
from tongban.server.usecases.verify import DocumentVerification

__all__ = ["SealServicer", "VerifyServicer"]

_CHUNK = 1 << 20
_MAX_SEAL_BYTES = 1 << 20


def _info(r: SealRecord) -> seal_pb2.SealInfo:
    return seal_pb2.SealInfo(
        seal_id=r.seal_id,
        name=r.name,
        org_uscc=r.org_uscc,
        node_id=r.node_id,
        certificate_pem=certificate_pem(r.certificate),
        not_before=format_time(r.not_before),
        not_after=format_time(r.not_after),
        revoked_at=format_time(r.revoked_at) if r.revoked_at else "",
        revocation_reason=r.revocation_reason.value if r.revocation_reason else "",
        revocation_note=r.revocation_note,
        certificate_fingerprint=r.certificate_fingerprint,
    )


def _status(e: ECertStatusEntry) -> seal_pb2.ECertStatusInfo:
    return seal_pb2.ECertStatusInfo(
        identifier=e.identifier,
        status=e.status.value,
        changed_at=format_time(e.changed_at),
        reason=e.reason,
    )


def _time(text: str, what: str) -> object:
    try:
        return parse_time(text)
    except ValueError:
        raise InvalidRequest(
            f"{what} {echo(text)} is not an RFC 3339 time with a timezone"
        ) from None


class SealServicer(seal_pb2_grpc.SealServiceServicer):
    def __init__(self, *, node_id: str, directory: DirectoryHolder, seals: SealOffice) -> None:
        self._node_id = node_id
        self._directory = directory
        self._seals = seals

    def _admin(self, context: grpc.ServicerContext) -> str:
        return require_admin(self._node_id, caller_identity(context, self._directory.current))

    def RegisterSeal(
        self, request: seal_pb2.RegisterSealRequest, context: grpc.ServicerContext
    ) -> seal_pb2.SealInfo:
        def call() -> seal_pb2.SealInfo:
            self._admin(context)
            record = self._seals.register_seal(
                seal_id=request.seal_id,
                name=request.name,
                org_name=request.org_name,
                org_uscc=request.org_uscc,
                not_before=_time(request.not_before, "not_before"),  # type: ignore[arg-type]
                not_after=_time(request.not_after, "not_after"),  # type: ignore[arg-type]
                image_png=request.image_png or None,
            )
            return _info(record)

        return guard(context, "RegisterSeal", call)

    def RevokeSeal(
        self, request: seal_pb2.RevokeSealRequest, context: grpc.ServicerContext
    ) -> seal_pb2.SealInfo:
        def call() -> seal_pb2.SealInfo:
            self._admin(context)
            return _info(
                self._seals.revoke_seal(request.seal_id, reason=request.reason, note=request.note)
            )

        return guard(context, "RevokeSeal", call)

    def SealDocument(
        self,
        request_iterator: Iterator[seal_pb2.SealDocumentRequest],
        context: grpc.ServicerContext,
    ) -> Iterator[seal_pb2.SealDocumentResponse]:
        def stream() -> Iterator[seal_pb2.SealDocumentResponse]:
            who = caller_identity(context, self._directory.current)
            if who.role not in (Role.HALL, Role.ADMIN) or who.node_id != self._node_id:
                raise PermissionDenied(f"{who} may not use the seals of node {self._node_id}")
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("part") != "header":
                raise InvalidRequest("the first message of a seal request must be the header")
            h = first.header

            def data() -> Iterator[bytes]:
                for req in request_iterator:
                    if req.WhichOneof("part") != "data":
                        raise InvalidRequest("only document data may follow the header")
                    yield req.data

            sealed = self._seals.seal_document(
                seal_id=h.seal_id,
                document_name=h.document_name,
                chunks=data(),
                type_code=h.type_code or "DOC",
                pdf=h.pdf,
            )
            yield seal_pb2.SealDocumentResponse(identifier=sealed.identifier)
            for i in range(0, len(sealed.signature), _CHUNK):
                yield seal_pb2.SealDocumentResponse(data=sealed.signature[i : i + _CHUNK])

        return guard_stream(context, "SealDocument", stream)

    def ChangeECertStatus(
        self, request: seal_pb2.ChangeECertStatusRequest, context: grpc.ServicerContext
    ) -> seal_pb2.ECertStatusInfo:
        def call() -> seal_pb2.ECertStatusInfo:
            self._admin(context)
            return _status(
                self._seals.change_ecert_status(
                    request.identifier, request.status, reason=request.reason
                )
            )

        return guard(context, "ChangeECertStatus", call)


class VerifyServicer(seal_pb2_grpc.VerifyServiceServicer):
    """Verification for anyone: the same checks an offline verifier runs, plus the current
    e-certificate status from this node's own records."""

    def __init__(
        self,
        *,
        verification: DocumentVerification,
        seals: SealOffice,
        directory: DirectoryHolder,
        limits: Limits,
    ) -> None:
        self._verification = verification
        self._seals = seals
        self._directory = directory
        self._limits = limits

    def Verify(
        self, request_iterator: Iterator[seal_pb2.VerifyRequest], context: grpc.ServicerContext
    ) -> seal_pb2.VerifyResponse:
        def call() -> seal_pb2.VerifyResponse:
            first = next(request_iterator, None)
            if first is None or first.WhichOneof("part") != "header":
                raise InvalidRequest("the first message of a verify request must be the header")
            # Anyone may call: the document is read only up to this limit, never to its end.
            limit = self._limits.max_anonymous_verify_bytes
            seal = bytearray()
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as document:
                size = 0
                for req in request_iterator:
                    which = req.WhichOneof("part")
                    if which == "document_data":
                        size += len(req.document_data)
                        if size > limit:
                            raise TooLarge(
                                "the document exceeds what anonymous verification accepts: "
                                f"limit {limit} bytes"
                            )
                        document.write(req.document_data)
                    elif which == "seal_data":
                        seal += req.seal_data
                        if len(seal) > _MAX_SEAL_BYTES:
                            raise TooLarge(f"a detached seal is at most {_MAX_SEAL_BYTES} bytes")
                    else:
                        raise InvalidRequest("only document and seal data may follow the header")
                document.seek(0)
                report = self._verification.verify(
                    document,  # type: ignore[arg-type]
                    seal=bytes(seal) if first.header.detached else None,
                )
            return seal_pb2.VerifyResponse(
                indication=report.indication.value,
                sub_indication=report.sub_indication.value if report.sub_indication else "",
                summary=report.summary,
                report_json=report.to_json(),
            )

        return guard(context, "Verify", call)

    def GetECertStatus(
        self, request: seal_pb2.ECertStatusRequest, context: grpc.ServicerContext
    ) -> seal_pb2.ECertStatusInfo:
        return guard(
            context,
            "GetECertStatus",
            lambda: _status(self._verification.ecert_status(request.identifier)),
        )

    def GetStatusList(
        self, request: seal_pb2.PublishedRequest, context: grpc.ServicerContext
    ) -> common_pb2.SignedEnvelope:
        return guard(context, "GetStatusList", lambda: envelope_to_proto(self._seals.status_list()))

    def GetSealRegistry(
        self, request: seal_pb2.PublishedRequest, context: grpc.ServicerContext
    ) -> common_pb2.SignedEnvelope:
        return guard(
            context, "GetSealRegistry", lambda: envelope_to_proto(self._seals.seal_registry())
        )

    def GetDirectory(
        self, request: seal_pb2.PublishedRequest, context: grpc.ServicerContext
    ) -> common_pb2.SignedEnvelope:
        def call() -> common_pb2.SignedEnvelope:
            env = self._directory.current.envelope
            assert env is not None
            return envelope_to_proto(env)

        return guard(context, "GetDirectory", call)
