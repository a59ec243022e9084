"""The hall SDK: submit applications, watch the inbox, fetch packets and act on cases.

Why one module of about 770 lines: it is the SDK's whole surface, one class whose methods
are every call a hall can make, with the values they return; a hall's developer reads it
top to bottom. Retries live in :mod:`tongban.client.retry`, errors in
:mod:`tongban.client.errors`.

Example:
    >>> client = HallClient.from_profile(Path("fed/420700/halls/420700-hall-1"))  # doctest: +SKIP
    >>> receipt = client.submit(                                                  # doctest: +SKIP
    ...     matter=("HB-ODA-01", "异地办理营业执照变更登记"), to=["420100"],
    ...     applicant=Applicant("张三", "citizen", "11010519491231002X"),
    ...     form={"reason": "change of address"}, files=[Path("id-card.pdf")])
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
import random
import tempfile
import time
import tomllib
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any

import grpc

from tongban.client.errors import FetchVerificationError, RequestRefused, UnsafeFileName
from tongban.client.retry import DEFAULT_RETRY, RetryPolicy, call_with_retry
from tongban.keys.clock import china_date
from tongban.keys.errors import BadFileName, echo
from tongban.keys.file_names import check_file_name, check_file_names
from tongban.keys.identifiers import validate_citizen_id, validate_credit_code
from tongban.proto import hall_pb2, hall_pb2_grpc

__all__ = [
    "Applicant",
    "CaseInfo",
    "FetchedFile",
    "FetchedPacket",
    "HallClient",
    "HistoryItem",
    "InboxItem",
    "LegInfo",
    "Material",
    "SubmitReceipt",
]

CHUNK = 1 << 20
Progress = Callable[[int], None]

_MODES = {"on_behalf": hall_pb2.HANDLING_MODE_ON_BEHALF, "joint": hall_pb2.HANDLING_MODE_JOINT}
_KINDS = {
    "application": hall_pb2.PACKET_KIND_APPLICATION,
    "supplement": hall_pb2.PACKET_KIND_SUPPLEMENT,
    "result": hall_pb2.PACKET_KIND_RESULT,
}
_KIND_NAMES = {v: k for k, v in _KINDS.items()}
_MODE_NAMES = {v: k for k, v in _MODES.items()}


@dataclass(frozen=True)
class Applicant:
    """Whom an application is for: a citizen by ID card number or a company by credit code."""

    name: str
    id_type: str  # "citizen" or "company"
    id_number: str


@dataclass(frozen=True)
class Material:
    """A file to send: a path, or a name plus a reader of bytes."""

    name: str
    path: Path | None = None
    media_type: str = ""
    open: Callable[[], Iterator[bytes]] | None = None
    size: int = -1

    @classmethod
    def from_path(cls, path: Path, media_type: str = "") -> Material:
        """A file on disk; the media type is guessed from its extension unless given."""
        guessed = media_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return cls(path.name, path, guessed, None, path.stat().st_size)

    def chunks(self) -> Iterator[bytes]:
        """The bytes to send, from the reader if there is one, else read from ``path``."""
        if self.open is not None:
            yield from self.open()
            return
        assert self.path is not None
        with self.path.open("rb") as fh:
            while chunk := fh.read(CHUNK):
                yield chunk


@dataclass(frozen=True)
class SubmitReceipt:
    """The node's answer to a submission.

    ``duplicate`` is true when the node already held this packet id and stored nothing new;
    ``deliveries`` maps each recipient node to "pending" or "delivered".
    """

    packet_id: str
    case_id: str
    duplicate: bool
    deliveries: dict[str, str]


@dataclass(frozen=True)
class InboxItem:
    """One packet in the hall's inbox, sent (``direction`` "out") or received ("in").

    ``deliveries`` is filled for sent packets only: recipient node to "pending" or "delivered".
    """

    packet_id: str
    case_id: str
    kind: str
    mode: str
    matter_code: str
    matter_name: str
    sender_node: str
    sender_hall: str
    direction: str
    created_at: str
    deliveries: dict[str, str]
    file_count: int
    total_size: int


@dataclass(frozen=True)
class FetchedFile:
    """A file of a fetched packet, kept at ``path`` after it matched the signed manifest."""

    index: int
    name: str
    media_type: str
    size: int
    sha256: str
    path: Path
    verified: bool


@dataclass(frozen=True)
class FetchedPacket:
    """A fetched packet: its inbox entry, what the sender signed, and the files kept.

    ``signature_status`` is "verified" when the node checked the sender's signature against
    the federation directory; ``signed_by_key`` is the id of the key that signed.
    """

    item: InboxItem
    applicant: Applicant | None
    form: dict[str, Any]
    files: tuple[FetchedFile, ...]
    signature_status: str
    signed_by_key: str


@dataclass(frozen=True)
class LegInfo:
    """One handling participant's share of a case: its status, decision and result packets."""

    node_id: str
    hall_id: str
    department: str
    status: str
    decision: str
    event_count: int
    result_packets: tuple[str, ...]


@dataclass(frozen=True)
class CaseInfo:
    """A case as this hall may see it; ``complete`` once every leg is decided or refused."""

    case_id: str
    mode: str
    matter_code: str
    matter_name: str
    accepting_node: str
    accepting_hall: str
    status: str
    complete: bool
    legs: tuple[LegInfo, ...]


@dataclass(frozen=True)
class HistoryItem:
    """One signed event of a case leg, linked to the leg's previous event by ``prev_hash``.

    ``signature_status`` is "verified", "broken-chain", or "invalid: " and the reason.
    """

    leg: str
    seq: int
    type: str
    actor_node: str
    actor_hall: str
    at: str
    detail: dict[str, Any]
    hash: str
    prev_hash: str
    signature_status: str


@dataclass
class _Progress:
    callback: Progress | None
    sent: int = field(default=0)

    def add(self, n: int) -> None:
        self.sent += n
        if self.callback is not None:
            self.callback(n)


def _item(e: hall_pb2.InboxEntry) -> InboxItem:
    return InboxItem(
        e.packet_id,
        e.case_id,
        _KIND_NAMES.get(e.kind, "unknown"),
        _MODE_NAMES.get(e.mode, ""),
        e.matter_code,
        e.matter_name,
        e.sender_node,
        e.sender_hall,
        e.direction,
        e.created_at,
        {d.node_id: d.state for d in e.deliveries},
        e.file_count,
        e.total_size,
    )


def _case(v: hall_pb2.CaseView) -> CaseInfo:
    return CaseInfo(
        v.case_id,
        _MODE_NAMES.get(v.mode, ""),
        v.matter_code,
        v.matter_name,
        v.accepting_node,
        v.accepting_hall,
        v.status,
        v.complete,
        tuple(
            LegInfo(
                g.node_id,
                g.hall_id,
                g.department,
                g.status,
                g.decision,
                g.event_count,
                tuple(g.result_packets),
            )
            for g in v.legs
        ),
    )


def _check_names(names: Sequence[str]) -> None:
    """The manifest's names, by the federation's file-name rule, before anything is written."""
    try:
        check_file_names(names)
    except BadFileName as exc:
        raise UnsafeFileName(f"the node sent an unsafe file name: {exc.message}") from None


def _target_in(root: Path, name: str) -> Path:
    """Where a fetched file goes: ``root / name``, refused unless it is a plain name that
    resolves to a path directly inside ``root``.

    Raises:
        UnsafeFileName: whatever the node sent, nothing is written outside ``root``.
    """
    try:
        check_file_name(name)
    except BadFileName as exc:
        raise UnsafeFileName(f"the node sent an unsafe file name: {exc.message}") from None
    target = root / name
    if target.parent != root or target.resolve().parent != root:
        raise UnsafeFileName(f"file name {echo(name)} does not stay inside {root}")
    return target


@dataclass
class _Incoming:
    """A file being fetched: written to a temporary file in the output folder (named by
    this SDK, never by the node), moved to its name once verified."""

    info: hall_pb2.FileInfo
    target: Path
    part: Path
    fh: Any
    digest: Any

    @classmethod
    def begin(cls, info: hall_pb2.FileInfo, target: Path) -> _Incoming:
        fd, part = tempfile.mkstemp(dir=target.parent, prefix=".tongban-", suffix=".part")
        return cls(info, target, Path(part), os.fdopen(fd, "wb"), hashlib.sha256())

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.digest.update(data)

    def finish(self, verified_by_node: bool) -> FetchedFile:
        """Keep the file under its name if it matches the signed manifest.

        Raises:
            FetchVerificationError: it does not; the temporary file is removed.
        """
        self.fh.close()
        info = self.info
        if not (verified_by_node and self.digest.hexdigest() == info.sha256):
            self.part.unlink(missing_ok=True)
            raise FetchVerificationError(
                f"file {info.index} {echo(info.name)} does not match the signed manifest"
            )
        self.part.replace(self.target)
        return FetchedFile(
            info.index, info.name, info.media_type, info.size, info.sha256, self.target, True
        )

    def discard(self) -> None:
        self.fh.close()
        self.part.unlink(missing_ok=True)


def check_applicant(applicant: Applicant, today: date | None = None) -> Applicant:
    """Validate the applicant's ID before anything is sent (the node checks again)."""
    today = today or china_date()
    if applicant.id_type == "citizen":
        number = validate_citizen_id(applicant.id_number, today=today)
    elif applicant.id_type == "company":
        number = validate_credit_code(applicant.id_number)
    else:
        raise ValueError("applicant id type must be 'citizen' or 'company'")
    return Applicant(applicant.name, applicant.id_type, number)


class HallClient:
    """A hall's connection to its own node, authenticated by the hall's certificate.

    Submissions (made safe to repeat by their packet id) and reads are tried again under
    ``retry`` when they fail in transit; an action on a case (``accept``, ``decide``…) is
    not, since a call that timed out may have been recorded. ``sleep`` and ``rng`` are
    the waiting and the jitter's randomness, parameters so tests can stand in for them.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        node_id: str,
        cert_pem: bytes,
        key_pem: bytes,
        root_pem: bytes,
        max_message: int = 8 << 20,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        creds = grpc.ssl_channel_credentials(root_pem, key_pem, cert_pem)
        self.node_id = node_id
        self._retry = retry
        self._sleep = sleep
        self._rng = rng
        self._channel = grpc.secure_channel(
            endpoint,
            creds,
            options=[
                ("grpc.ssl_target_name_override", f"node-{node_id}.tongban"),
                ("grpc.max_send_message_length", max_message),
                ("grpc.max_receive_message_length", max_message),
                # gRPC's default reconnect backoff grows to two minutes, and calls meanwhile
                # fail at once: a node that restarted must be reached again within seconds.
                ("grpc.initial_reconnect_backoff_ms", 500),
                ("grpc.min_reconnect_backoff_ms", 500),
                ("grpc.max_reconnect_backoff_ms", 2000),
            ],
        )
        self._stub = hall_pb2_grpc.HallServiceStub(self._channel)
        self._submit_form = True  # until the node says it has no SubmitForm

    @classmethod
    def from_profile(cls, folder: Path, *, retry: RetryPolicy = DEFAULT_RETRY) -> HallClient:
        """Connect with a hall folder written by ``tongban federation init``."""
        profile = tomllib.loads((folder / "hall.toml").read_text(encoding="utf-8"))
        endpoint = os.environ.get("TONGBAN_HALL_ENDPOINT", profile["endpoint"])
        return cls(
            endpoint,
            node_id=profile["node_id"],
            cert_pem=(folder / "cert.pem").read_bytes(),
            key_pem=(folder / "key.pem").read_bytes(),
            root_pem=(folder / "root.pem").read_bytes(),
            retry=retry,
        )

    def _retried(
        self,
        call: Callable[[], Any],
        policy: RetryPolicy | None = None,
        before_retry: Callable[[], None] | None = None,
    ) -> Any:
        """``call`` under the retry policy; a refusal becomes :class:`RequestRefused`."""
        try:
            return call_with_retry(
                call,
                policy or self._retry,
                sleep=self._sleep,
                rng=self._rng,
                before_retry=before_retry,
            )
        except grpc.RpcError as exc:
            raise self._refused(exc) from None

    def close(self) -> None:
        """Close the connection to the node; a closed client cannot be used again."""
        self._channel.close()

    def __enter__(self) -> HallClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    _refused = staticmethod(RequestRefused.from_rpc_error)

    # ---- submit ----------------------------------------------------------------------------

    def submit(
        self,
        *,
        matter: tuple[str, str],
        to: Sequence[str],
        applicant: Applicant,
        form: dict[str, Any],
        files: Sequence[Path | Material] = (),
        mode: str = "",
        departments: Sequence[str] = (),
        packet_id: str | None = None,
        progress: Progress | None = None,
        retries: int | None = None,
    ) -> SubmitReceipt:
        """Submit an application: 代收代办 to one node, or 联办 to several participants."""
        mode = mode or ("joint" if len(to) > 1 else "on_behalf")
        applicant = check_applicant(applicant)
        recipients = [
            hall_pb2.Recipient(
                node_id=n.split("/")[0],
                hall_id=n.partition("/")[2],
                department=departments[i] if i < len(departments) else "",
            )
            for i, n in enumerate(to)
        ]
        header = hall_pb2.SubmitHeader(
            kind=hall_pb2.PACKET_KIND_APPLICATION,
            mode=_MODES[mode],
            matter_code=matter[0],
            matter_name=matter[1],
            recipients=recipients,
            applicant=hall_pb2.Applicant(
                name=applicant.name,
                id_number=applicant.id_number,
                id_type=hall_pb2.APPLICANT_ID_TYPE_CITIZEN
                if applicant.id_type == "citizen"
                else hall_pb2.APPLICANT_ID_TYPE_COMPANY,
            ),
            form_json=json.dumps(form, ensure_ascii=False).encode(),
        )
        policy = self._retry if retries is None else replace(self._retry, attempts=retries + 1)
        return self._submit(header, files, packet_id, progress, policy)

    def supplement(
        self,
        case_id: str,
        leg: str,
        files: Sequence[Path | Material],
        *,
        form: dict[str, Any] | None = None,
        progress: Progress | None = None,
        packet_id: str | None = None,
    ) -> SubmitReceipt:
        """Answer a supplement request (补正) with the missing materials."""
        header = hall_pb2.SubmitHeader(
            kind=hall_pb2.PACKET_KIND_SUPPLEMENT,
            case_id=case_id,
            recipients=[hall_pb2.Recipient(node_id=leg)],
            form_json=json.dumps(form or {}, ensure_ascii=False).encode(),
        )
        return self._submit(header, files, packet_id, progress, self._retry)

    def return_result(
        self,
        case_id: str,
        files: Sequence[Path | Material],
        *,
        form: dict[str, Any] | None = None,
        progress: Progress | None = None,
        packet_id: str | None = None,
    ) -> SubmitReceipt:
        """Send the result documents of a decided leg back to the accepting hall."""
        header = hall_pb2.SubmitHeader(
            kind=hall_pb2.PACKET_KIND_RESULT,
            case_id=case_id,
            form_json=json.dumps(form or {}, ensure_ascii=False).encode(),
        )
        return self._submit(header, files, packet_id, progress, self._retry)

    def _submit(
        self,
        header: hall_pb2.SubmitHeader,
        files: Sequence[Path | Material],
        packet_id: str | None,
        progress: Progress | None,
        policy: RetryPolicy,
    ) -> SubmitReceipt:
        header.packet_id = packet_id or str(uuid.uuid4())
        materials = [f if isinstance(f, Material) else Material.from_path(f) for f in files]
        tracker = _Progress(progress)

        def attempt() -> hall_pb2.SubmitResponse:
            if not materials and self._submit_form:
                # One plain call costs both sides less than a stream of one message.
                try:
                    return self._stub.SubmitForm(header)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    self._submit_form = False  # a node from before SubmitForm
            return self._stub.Submit(self._submit_stream(header, materials, tracker))

        def undo_progress() -> None:
            # The packet id makes a retry safe: the node stores it at most once.
            if progress is not None and tracker.sent:
                progress(-tracker.sent)
            tracker.sent = 0

        r = self._retried(attempt, policy, undo_progress)
        return SubmitReceipt(
            r.packet_id, r.case_id, r.duplicate, {d.node_id: d.state for d in r.deliveries}
        )

    @staticmethod
    def _submit_stream(
        header: hall_pb2.SubmitHeader, materials: list[Material], tracker: _Progress
    ) -> Iterator[hall_pb2.SubmitRequest]:
        yield hall_pb2.SubmitRequest(header=header)
        for m in materials:
            media = m.media_type or mimetypes.guess_type(m.name)[0] or "application/octet-stream"
            yield hall_pb2.SubmitRequest(
                file_begin=hall_pb2.FileBegin(name=m.name, media_type=media, size=m.size)
            )
            digest = hashlib.sha256()
            for chunk in m.chunks():
                digest.update(chunk)
                yield hall_pb2.SubmitRequest(data=chunk)
                tracker.add(len(chunk))
            yield hall_pb2.SubmitRequest(file_end=hall_pb2.FileEnd(sha256=digest.hexdigest()))

    # ---- inbox and fetch ------------------------------------------------------------------

    def inbox(self, direction: str = "", limit: int = 100) -> list[InboxItem]:
        """The hall's inbox entries now: ``direction`` "in", "out", or empty for both.

        Raises:
            RequestRefused: the node refused (an unknown direction, a negative limit…).
        """
        request = hall_pb2.InboxRequest(direction=direction, limit=limit)
        r = self._retried(lambda: self._stub.ListInbox(request))
        return [_item(e) for e in r.entries]

    def watch(
        self, direction: str = "", *, include_existing: bool = False, timeout: float | None = None
    ) -> Iterator[InboxItem]:
        """Yield inbox entries as they arrive (a server stream); stop by closing the iterator."""
        call = self._stub.WatchInbox(
            hall_pb2.InboxRequest(direction=direction, include_existing=include_existing),
            timeout=timeout,
        )
        try:
            for e in call:
                yield _item(e)
        except grpc.RpcError as exc:
            if exc.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise self._refused(exc) from None
        finally:
            call.cancel()  # type: ignore[no-untyped-call]

    def fetch(
        self, packet_id: str, out_dir: Path, *, progress: Progress | None = None
    ) -> FetchedPacket:
        """Fetch a packet; each file is kept only once its SHA-256 matched the signed manifest.

        ``out_dir`` is made when the node starts sending the packet, not for a refusal.

        Raises:
            RequestRefused: the node refused (unknown packet, tampered store…).
            FetchVerificationError: a file failed verification; no partial file is left.
        """
        root = out_dir.resolve()
        received = _Progress(progress)

        def undo_progress() -> None:
            if progress is not None and received.sent:
                progress(-received.sent)
            received.sent = 0

        opening, fetched = self._retried(
            lambda: self._fetch_once(packet_id, root, received), before_retry=undo_progress
        )
        if opening is None:
            raise FetchVerificationError("the node sent no packet opening")
        a = opening.applicant if opening.HasField("applicant") else None
        applicant = (
            Applicant(
                a.name,
                "citizen" if a.id_type == hall_pb2.APPLICANT_ID_TYPE_CITIZEN else "company",
                a.id_number,
            )
            if a
            else None
        )
        return FetchedPacket(
            _item(opening.entry),
            applicant,
            json.loads(opening.form_json),
            tuple(fetched),
            opening.signature_status,
            opening.signed_by_key,
        )

    def _fetch_once(
        self, packet_id: str, root: Path, received: _Progress
    ) -> tuple[hall_pb2.FetchOpening | None, list[FetchedFile]]:
        """One Fetch call: each file kept once verified; a partial file is removed.

        Raises:
            grpc.RpcError: the call failed; files kept so far are fetched again on a retry.
        """
        opening: hall_pb2.FetchOpening | None = None
        fetched: list[FetchedFile] = []
        begun: set[int] = set()
        current: _Incoming | None = None
        try:
            for msg in self._stub.Fetch(hall_pb2.FetchRequest(packet_id=packet_id)):
                which = msg.WhichOneof("part")
                if which == "opening":
                    opening = msg.opening
                    root.mkdir(parents=True, exist_ok=True)  # once the node has the packet
                    _check_names([f.name for f in opening.files])
                elif which == "file_begin":
                    info = msg.file_begin
                    listed = opening.files if opening is not None else []
                    if (
                        current is not None
                        or info.index in begun
                        or not 0 <= info.index < len(listed)
                        or listed[info.index].name != info.name
                    ):
                        raise FetchVerificationError(
                            f"file {info.index} {echo(info.name)} is not in the packet's manifest"
                        )
                    begun.add(info.index)
                    current = _Incoming.begin(info, _target_in(root, info.name))
                elif which == "data" and current is not None:
                    current.write(msg.data)
                    received.add(len(msg.data))
                elif which == "file_end" and current is not None:
                    done, current = current, None
                    fetched.append(done.finish(msg.file_end.verified))
        finally:
            if current is not None:
                current.discard()
        return opening, fetched

    # ---- cases ------------------------------------------------------------------------------

    def _act(self, request: hall_pb2.ActRequest) -> CaseInfo:
        try:
            return _case(self._stub.Act(request))
        except grpc.RpcError as exc:
            raise self._refused(exc) from None

    def accept(
        self,
        case_id: str,
        *,
        leg: str = "",
        accepted_with_missing: Sequence[str] = (),
        deferred_due: str = "",
        commitment: str = "",
    ) -> CaseInfo:
        """受理 (容缺受理 when ``accepted_with_missing`` lists non-essential gaps, due by
        ``deferred_due`` (YYYY-MM-DD; default the end of the promised limit) against the
        applicant's ``commitment``). The handling node's clock starts."""
        return self._act(
            hall_pb2.ActRequest(
                case_id=case_id,
                leg=leg,
                accept=hall_pb2.Accept(
                    accepted_with_missing=list(accepted_with_missing),
                    deferred_due=deferred_due,
                    commitment=commitment,
                ),
            )
        )

    def suspend(self, case_id: str, reason: str, *, leg: str = "") -> CaseInfo:
        """挂起: stop the clock of an accepted leg, with the reason."""
        return self._act(
            hall_pb2.ActRequest(case_id=case_id, leg=leg, suspend=hall_pb2.Suspend(reason=reason))
        )

    def resume(self, case_id: str, *, note: str = "", leg: str = "") -> CaseInfo:
        """恢复: restart the clock of a suspended leg."""
        return self._act(
            hall_pb2.ActRequest(case_id=case_id, leg=leg, resume=hall_pb2.Resume(note=note))
        )

    def refuse(self, case_id: str, reason: str, *, leg: str = "") -> CaseInfo:
        """不予受理, with the reason."""
        return self._act(
            hall_pb2.ActRequest(case_id=case_id, leg=leg, refuse=hall_pb2.Refuse(reason=reason))
        )

    def request_supplement(
        self, case_id: str, missing: Sequence[str], *, note: str = "", leg: str = ""
    ) -> CaseInfo:
        """一次性告知补正: list everything that is missing, once."""
        return self._act(
            hall_pb2.ActRequest(
                case_id=case_id,
                leg=leg,
                request_supplement=hall_pb2.RequestSupplement(missing=list(missing), note=note),
            )
        )

    def decide(self, case_id: str, *, approved: bool, note: str = "", leg: str = "") -> CaseInfo:
        """办结: record the handling hall's decision on an accepted leg, approved or denied."""
        return self._act(
            hall_pb2.ActRequest(
                case_id=case_id, leg=leg, decide=hall_pb2.Decide(approved=approved, note=note)
            )
        )

    def issue(self, case_id: str, *, leg: str = "", note: str = "") -> CaseInfo:
        """出件: the result was handed out at this (accepting) hall's window."""
        return self._act(
            hall_pb2.ActRequest(case_id=case_id, leg=leg, issue=hall_pb2.Issue(note=note))
        )

    def deliver(self, case_id: str, *, leg: str = "", note: str = "") -> CaseInfo:
        """送达: the result reached the applicant."""
        return self._act(
            hall_pb2.ActRequest(case_id=case_id, leg=leg, deliver=hall_pb2.Deliver(note=note))
        )

    def case(self, case_id: str) -> CaseInfo:
        """The case with the legs this hall may see.

        Raises:
            RequestRefused: the node refused (the case is unknown or not visible to this hall).
        """
        request = hall_pb2.CaseRequest(case_id=case_id)
        return _case(self._retried(lambda: self._stub.GetCase(request)))

    def history(self, case_id: str) -> tuple[list[HistoryItem], bool]:
        """Every event of the case's legs visible to this hall, and whether the chain is intact."""
        r = self._retried(lambda: self._stub.History(hall_pb2.CaseRequest(case_id=case_id)))
        return [
            HistoryItem(
                e.leg,
                e.seq,
                e.type,
                e.actor_node,
                e.actor_hall,
                e.at,
                json.loads(e.detail_json or "{}"),
                e.hash,
                e.prev_hash,
                e.signature_status,
            )
            for e in r.events
        ], r.chain_intact
