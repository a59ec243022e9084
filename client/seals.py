"""Seals through a node, and online verification for anyone.

Why one module of about 580 lines: the two clients share the channel set-up, the streaming
of documents and the conversion of the node's answers.

:class:`SealClient` talks to the node's mutual-TLS port with an admin or hall certificate:
an admin registers and revokes the node's seals and changes an e-certificate's status; a
hall (or an admin) seals documents. :class:`VerificationClient` talks to the node's public
port (server-authenticated TLS, no client certificate) as any third party would.

Example:
    >>> admin = SealClient.from_profile(Path("fed/420700/admins/420700-admin"))  # doctest: +SKIP
    >>> admin.register_seal("approval", "鄂州市行政审批局行政审批专用章",        # doctest: +SKIP
    ...     "11420700MB1539542A", org_name="鄂州市行政审批局", not_before=now,
    ...     not_after=now + timedelta(days=1095))
    >>> sealed = admin.seal_document(Path("permit.pdf"), seal_id="approval")  # doctest: +SKIP
    >>> node = VerificationClient("verify.example:443", node_id="420700",     # doctest: +SKIP
    ...     root_pem=Path("root.pem").read_bytes())
    >>> node.ecert_status(sealed.identifier).status                            # doctest: +SKIP
    <ECertStatus.VALID: 'valid'>
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO

import grpc
from cryptography import x509

from tongban.client.errors import RequestRefused
from tongban.keys.clock import format_time, parse_time, utcnow
from tongban.keys.directory import load_directory
from tongban.keys.ecert import ECertStatus, ECertStatusEntry, load_status_list
from tongban.keys.envelope import Envelope, EnvelopeSignature, parse_json_object
from tongban.keys.errors import BadPeerData, CallerError
from tongban.keys.pki import certificate_pem
from tongban.keys.seal_registry import load_seal_registry
from tongban.keys.seals import RevocationReason
from tongban.keys.verification import Indication, SubIndication
from tongban.proto import common_pb2, seal_pb2, seal_pb2_grpc

__all__ = [
    "CHUNK",
    "ECertStatusInfo",
    "OnlineVerification",
    "PublishedFiles",
    "RevocationReason",
    "SealClient",
    "SealInfo",
    "SealedDocument",
    "VerificationClient",
    "fetch_published",
]

CHUNK = 1 << 20
"""Documents are streamed to the node in pieces of this many bytes."""

Document = Path | bytes | BinaryIO
"""A document to send: a path, its bytes, or a binary file open for reading."""

ECertStatusInfo = ECertStatusEntry
"""An e-certificate's status as the node recorded it (identifier, status, when, why)."""


@dataclass(frozen=True)
class SealInfo:
    """A seal registered at a node."""

    seal_id: str
    name: str
    org_uscc: str
    node_id: str
    certificate_pem: bytes
    certificate_fingerprint: str
    not_before: datetime
    not_after: datetime
    revoked_at: datetime | None = None
    revocation_reason: RevocationReason | None = None
    revocation_note: str = ""

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_pem)


@dataclass(frozen=True)
class SealedDocument:
    """A document sealed by the node: its e-certificate identifier and the seal.

    ``data`` is the detached CMS (DER, written as ``FILE.p7s``), or the whole sealed PDF
    when ``pdf`` is true.
    """

    identifier: str
    data: bytes
    pdf: bool


@dataclass(frozen=True)
class OnlineVerification:
    """The verification service's verdict; ``report`` is the full report as JSON data."""

    indication: Indication
    sub_indication: SubIndication | None
    summary: str
    report: dict[str, Any]

    @property
    def valid(self) -> bool:
        return self.indication is Indication.VALID


@dataclass(frozen=True)
class PublishedFiles:
    """Where :func:`fetch_published` wrote a node's signed lists (and the trust root)."""

    directory: Path
    seal_registry: Path
    status_list: Path
    root: Path | None = None


_refused = RequestRefused.from_rpc_error


def _time(text: str, what: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        raise BadPeerData(f"the node sent {what} {text!r}, not an RFC 3339 time") from None


def _seal_info(m: seal_pb2.SealInfo) -> SealInfo:
    reason: RevocationReason | None = None
    note = m.revocation_note
    if m.revoked_at:
        # A node from before reason codes sends free text; read it as a stored record is read.
        reason, old_note = RevocationReason.from_recorded(m.revocation_reason)
        note = note or old_note
    return SealInfo(
        seal_id=m.seal_id,
        name=m.name,
        org_uscc=m.org_uscc,
        node_id=m.node_id,
        certificate_pem=m.certificate_pem,
        certificate_fingerprint=m.certificate_fingerprint,
        not_before=_time(m.not_before, "not_before"),
        not_after=_time(m.not_after, "not_after"),
        revoked_at=_time(m.revoked_at, "revoked_at") if m.revoked_at else None,
        revocation_reason=reason,
        revocation_note=note,
    )


def _status_entry(m: seal_pb2.ECertStatusInfo) -> ECertStatusEntry:
    try:
        status = ECertStatus(m.status)
    except ValueError:
        raise BadPeerData(f"the node sent an unknown e-certificate status {m.status!r}") from None
    return ECertStatusEntry(m.identifier, status, _time(m.changed_at, "changed_at"), m.reason)


def _envelope(m: common_pb2.SignedEnvelope) -> Envelope:
    return Envelope(
        m.payload,
        m.payload_type,
        tuple(EnvelopeSignature(s.key_id, s.sig) for s in m.signatures),
    )


def _open(document: Document) -> tuple[str, BinaryIO | bytes, bool]:
    """The document's name and a source of its bytes; opens a path before any call starts.

    Raises:
        OSError: a path cannot be opened.
    """
    if isinstance(document, Path):
        return document.name, document.open("rb"), True
    if isinstance(document, bytes | bytearray | memoryview):
        return "document", bytes(document), False
    name = getattr(document, "name", None)
    return (Path(name).name if isinstance(name, str) and name else "document"), document, False


def _chunks(source: BinaryIO | bytes) -> Iterator[bytes]:
    if isinstance(source, bytes):
        for i in range(0, len(source), CHUNK):
            yield source[i : i + CHUNK]
        return
    while chunk := source.read(CHUNK):
        yield chunk


def _options(node_id: str, max_message: int) -> list[tuple[str, Any]]:
    return [
        ("grpc.ssl_target_name_override", f"node-{node_id}.tongban"),
        ("grpc.max_send_message_length", max_message),
        ("grpc.max_receive_message_length", max_message),
    ]


class SealClient:
    """An admin's or a hall's connection to the seal service of its own node (mutual TLS)."""

    def __init__(
        self,
        endpoint: str,
        *,
        node_id: str,
        cert_pem: bytes,
        key_pem: bytes,
        root_pem: bytes,
        max_message: int = 8 << 20,
        timeout: float | None = 60.0,
    ) -> None:
        creds = grpc.ssl_channel_credentials(root_pem, key_pem, cert_pem)
        self.node_id = node_id
        self.timeout = timeout
        self._channel = grpc.secure_channel(endpoint, creds, options=_options(node_id, max_message))
        self._stub = seal_pb2_grpc.SealServiceStub(self._channel)

    @classmethod
    def from_profile(cls, folder: Path, *, endpoint: str | None = None) -> SealClient:
        """Connect with an admin or hall folder written by ``tongban federation init``.

        Raises:
            FileNotFoundError: the folder holds neither ``admin.toml`` nor ``hall.toml``.
        """
        for name in ("admin.toml", "hall.toml"):
            if (folder / name).is_file():
                profile = tomllib.loads((folder / name).read_text(encoding="utf-8"))
                break
        else:
            raise FileNotFoundError(f"{folder} holds neither admin.toml nor hall.toml")
        return cls(
            endpoint or str(profile["endpoint"]),
            node_id=str(profile["node_id"]),
            cert_pem=(folder / "cert.pem").read_bytes(),
            key_pem=(folder / "key.pem").read_bytes(),
            root_pem=(folder / "root.pem").read_bytes(),
        )

    def close(self) -> None:
        """Close the connection to the node; a closed client cannot be used again."""
        self._channel.close()

    def __enter__(self) -> SealClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def register_seal(
        self,
        seal_id: str,
        name: str,
        org_uscc: str,
        *,
        org_name: str,
        not_before: datetime,
        not_after: datetime,
        image_png: bytes | None = None,
    ) -> SealInfo:
        """Register a seal (admin only); the node creates its key and certificate.

        ``org_name`` is the owning organisation's name, which the seal certificate shows
        (``O=``) beside its credit code. Without ``image_png`` the node draws the round red
        seal from ``name``. ``not_before`` is taken down to the whole second: a seal states
        its signing time in whole seconds, so a window opening within a second would leave
        documents sealed in that second looking sealed before the seal existed.

        Raises:
            RequestRefused: e.g. INVALID_ARGUMENT for a bad credit code, ALREADY_EXISTS for a
                seal id that is taken, PERMISSION_DENIED for a hall certificate.
        """
        request = seal_pb2.RegisterSealRequest(
            seal_id=seal_id,
            name=name,
            org_uscc=org_uscc,
            org_name=org_name,
            image_png=image_png or b"",
            not_before=format_time(not_before.replace(microsecond=0)),
            not_after=format_time(not_after),
        )
        try:
            return _seal_info(self._stub.RegisterSeal(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise _refused(exc) from None

    def revoke_seal(
        self,
        seal_id: str,
        reason: RevocationReason | str = RevocationReason.UNSPECIFIED,
        *,
        note: str = "",
    ) -> SealInfo:
        """Revoke a seal from now on (admin only), for an RFC 5280 ``reason``.

        ``unspecified`` (the default), ``keyCompromise`` and ``caCompromise`` say the key may
        be in other hands: documents sealed before then stay VALID only where their time is
        proven. ``superseded``, ``cessationOfOperation`` and ``affiliationChanged`` retire the
        key in good order: documents sealed before stay VALID. ``note`` is free text for the
        record.

        Raises:
            RequestRefused: e.g. NOT_FOUND for an unknown seal id, INVALID_ARGUMENT for a
                reason that is not a code.
        """
        request = seal_pb2.RevokeSealRequest(seal_id=seal_id, reason=str(reason), note=note)
        try:
            return _seal_info(self._stub.RevokeSeal(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise _refused(exc) from None

    def seal_document(
        self,
        document: Document,
        *,
        seal_id: str,
        type_code: str = "DOC",
        pdf: bool = False,
        document_name: str | None = None,
    ) -> SealedDocument:
        """Seal a document with a registered seal; the node issues an e-certificate identifier.

        The document is streamed in 1 MiB chunks. With ``pdf`` the node returns the PDF
        sealed as PAdES with a visible stamp; otherwise a detached CMS over the bytes.

        Raises:
            OSError: a path cannot be read.
            RequestRefused: e.g. NOT_FOUND for an unknown seal id.
            BadPeerData: the node's answer is not identifier-then-data.
        """
        name, source, owned = _open(document)
        header = seal_pb2.SealDocumentHeader(
            seal_id=seal_id, document_name=document_name or name, type_code=type_code, pdf=pdf
        )

        def requests() -> Iterator[seal_pb2.SealDocumentRequest]:
            yield seal_pb2.SealDocumentRequest(header=header)
            for chunk in _chunks(source):
                yield seal_pb2.SealDocumentRequest(data=chunk)

        identifier: str | None = None
        data = bytearray()
        try:
            for reply in self._stub.SealDocument(requests()):
                part = reply.WhichOneof("part")
                if part == "identifier" and identifier is None:
                    identifier = reply.identifier
                elif part == "data" and identifier is not None:
                    data += reply.data
                else:
                    raise BadPeerData(f"the node answered a seal request with {part!r} out of turn")
        except grpc.RpcError as exc:
            raise _refused(exc) from None
        finally:
            if owned and not isinstance(source, bytes):
                source.close()
        if identifier is None or not data:
            raise BadPeerData("the node's answer to a seal request is incomplete")
        return SealedDocument(identifier, bytes(data), pdf)

    def change_ecert_status(self, identifier: str, status: str, reason: str) -> ECertStatusInfo:
        """Revoke (撤销/吊销), cancel (注销) or expire (失效) an e-certificate (admin only).

        ``status`` is ``"revoked"``, ``"cancelled"`` or ``"expired"``.

        Raises:
            RequestRefused: e.g. INVALID_ARGUMENT for a bad check character, NOT_FOUND for
                an identifier this node did not issue.
        """
        request = seal_pb2.ChangeECertStatusRequest(
            identifier=identifier, status=status, reason=reason
        )
        try:
            return _status_entry(self._stub.ChangeECertStatus(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise _refused(exc) from None


class VerificationClient:
    """A third party's connection to a node's public verification service.

    The channel authenticates the node (its certificate chains to ``root_pem`` and names
    ``node-{node_id}.tongban``); the caller presents no certificate.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        node_id: str,
        root_pem: bytes,
        max_message: int = 8 << 20,
        timeout: float | None = 60.0,
    ) -> None:
        self.node_id = node_id
        self.endpoint = endpoint
        self.timeout = timeout
        self._channel = grpc.secure_channel(
            endpoint, grpc.ssl_channel_credentials(root_pem), options=_options(node_id, max_message)
        )
        self._stub = seal_pb2_grpc.VerifyServiceStub(self._channel)

    def close(self) -> None:
        """Close the connection to the node; a closed client cannot be used again."""
        self._channel.close()

    def __enter__(self) -> VerificationClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def verify(self, document: Document, seal: Document | None = None) -> OnlineVerification:
        """Have the node verify a sealed PDF, or a document with its detached ``seal``.

        Raises:
            OSError: a path cannot be read.
            RequestRefused: the node refused the call (e.g. RESOURCE_EXHAUSTED, too large).
            BadPeerData: the node's answer is malformed.
        """
        name, source, owned = _open(document)
        seal_source: BinaryIO | bytes | None = None
        seal_owned = False
        try:
            if seal is not None:
                _, seal_source, seal_owned = _open(seal)
        except OSError:
            if owned and not isinstance(source, bytes):
                source.close()
            raise
        header = seal_pb2.VerifyHeader(document_name=name, detached=seal is not None)

        def requests() -> Iterator[seal_pb2.VerifyRequest]:
            yield seal_pb2.VerifyRequest(header=header)
            for chunk in _chunks(source):
                yield seal_pb2.VerifyRequest(document_data=chunk)
            if seal_source is not None:
                for chunk in _chunks(seal_source):
                    yield seal_pb2.VerifyRequest(seal_data=chunk)

        try:
            reply = self._stub.Verify(requests())
        except grpc.RpcError as exc:
            raise _refused(exc) from None
        finally:
            for src, own in ((source, owned), (seal_source, seal_owned)):
                if own and src is not None and not isinstance(src, bytes):
                    src.close()
        try:
            indication = Indication(reply.indication)
            sub = SubIndication(reply.sub_indication) if reply.sub_indication else None
        except ValueError as exc:
            raise BadPeerData(f"the node sent an unknown verdict: {exc}") from None
        report = parse_json_object(reply.report_json.encode(), "verification report")
        return OnlineVerification(indication, sub, reply.summary, report)

    def ecert_status(self, identifier: str) -> ECertStatusEntry:
        """The current status of an e-certificate the node issued.

        Usable as the ``online_status`` lookup of the offline verifier.

        Raises:
            RequestRefused: e.g. NOT_FOUND when the node did not issue it.
        """
        request = seal_pb2.ECertStatusRequest(identifier=identifier)
        try:
            return _status_entry(self._stub.GetECertStatus(request, timeout=self.timeout))
        except grpc.RpcError as exc:
            raise _refused(exc) from None

    def status_list(self) -> Envelope:
        """The node's signed e-certificate status list (check it with ``load_status_list``)."""
        return self._published(self._stub.GetStatusList)

    def seal_registry(self) -> Envelope:
        """The node's signed seal registry (check it with ``load_seal_registry``)."""
        return self._published(self._stub.GetSealRegistry)

    def directory(self) -> Envelope:
        """The federation directory the node holds, as the root signed it."""
        return self._published(self._stub.GetDirectory)

    def _published(self, rpc: Any) -> Envelope:
        try:
            return _envelope(rpc(seal_pb2.PublishedRequest(), timeout=self.timeout))
        except grpc.RpcError as exc:
            raise _refused(exc) from None


_NODE_ID = re.compile(r"[0-9]{6}")
PUBLISHED_MODE = 0o644
"""Published lists are for anyone to read: owner-writable, world-readable."""


def _write_atomically(path: Path, data: bytes) -> None:
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as f:
        f.write(data)
    # A temporary file is created owner-only; what is published is for anyone to read.
    os.chmod(f.name, PUBLISHED_MODE)
    os.replace(f.name, path)


def _published_folder(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o755)


def fetch_published(
    client: VerificationClient,
    out_dir: Path,
    *,
    roots: Sequence[x509.Certificate] | None = None,
    at: datetime | None = None,
) -> PublishedFiles:
    """Fetch the node's directory, seal registry and status list and write them for offline use.

    Writes ``directory.json`` and ``<node>/seal-registry.json`` and ``<node>/status-list.json``
    (envelope JSON) under ``out_dir``, so one folder holds the lists of every node fetched
    into it, and with ``roots`` also ``root.pem``: everything an offline verifier needs, each
    file readable by anyone (0644). With ``roots``, nothing is written unless the directory
    verifies against them, the registry and the status list verify against the node's keys
    in that directory, and both name the node asked.

    Raises:
        RequestRefused: the node refused a call (or could not be reached: UNAVAILABLE).
        SignatureError / UnknownKeyError / BadPeerData: with ``roots``, a list does not verify.
        OSError: ``out_dir`` cannot be written.
        CallerError: the client's node id is not a node id (it names a folder).
    """
    if not _NODE_ID.fullmatch(client.node_id):
        raise CallerError(f"node id {client.node_id!r} is not a six-digit division code")
    directory, registry, status = client.directory(), client.seal_registry(), client.status_list()
    if roots is not None:
        at = at or utcnow()
        verified = load_directory(directory, roots, at=at)
        loaded = load_seal_registry(registry, verified, at=at)
        if loaded.node_id != client.node_id:
            raise BadPeerData(
                f"node {client.node_id} sent the seal registry of node {loaded.node_id}"
            )
        statuses = load_status_list(status, verified.node(client.node_id).signing_keys(at), at=at)
        if statuses.node_id != client.node_id:
            raise BadPeerData(
                f"node {client.node_id} sent the status list of node {statuses.node_id}"
            )
    node_dir = out_dir / client.node_id
    _published_folder(out_dir)
    _published_folder(node_dir)
    files = PublishedFiles(
        out_dir / "directory.json",
        node_dir / "seal-registry.json",
        node_dir / "status-list.json",
        out_dir / "root.pem" if roots else None,
    )
    for path, envelope in (
        (files.directory, directory),
        (files.seal_registry, registry),
        (files.status_list, status),
    ):
        text = json.dumps(envelope.to_json_dict(), indent=1) + "\n"
        _write_atomically(path, text.encode())
    if files.root is not None and roots:
        _write_atomically(files.root, b"".join(certificate_pem(r) for r in roots))
    return files
