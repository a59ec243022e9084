"""``tongban verify``, ``tongban seal``, ``tongban seal-image``, ``tongban ecert`` and
``tongban published``.

Why one module of about 780 lines: it is argument parsing and printing for five commands
that share their options (profiles, trust roots, times) and their exit-code rules; the
work itself is in the client and keys packages.

``verify`` needs nothing but the federation root and the published seal records, so a bank
can run it offline; with ``--online`` it asks the issuing node for the e-certificate's current
status (the seal itself is still checked locally). Its exit code is 0 only for VALID: 1 for
INVALID, 3 for INDETERMINATE, 2 when the command itself cannot run (a missing file, a root
that is not a certificate).

``seal`` seals a file through the node (``--profile DIR --seal-id ID``) or locally with a seal
key (``--seal-key/--seal-cert``); ``seal register`` and ``seal revoke`` manage the node's
seals with an admin profile. These, ``ecert`` and ``published fetch`` exit with 0 on success,
1 when the node refused the request or what it sent does not verify, and 2 when the command
itself cannot run.
"""

from __future__ import annotations

import argparse
import io
import logging
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from tongban.cli.national import is_national_format, national_report
from tongban.cli.published_folder import PublishedFolder, read_published_folder
from tongban.client.errors import RequestRefused
from tongban.client.seals import (
    RevocationReason,
    SealClient,
    SealInfo,
    VerificationClient,
    fetch_published,
)
from tongban.client.verify import (
    CheckOutcome,
    Indication,
    SealVerificationReport,
    seal_verification_result,
)
from tongban.keys.clock import format_time, parse_time, utcnow
from tongban.keys.directory import FederationDirectory, load_directory
from tongban.keys.ecert import parse_ecert_identifier
from tongban.keys.envelope import Envelope, parse_json_object
from tongban.keys.errors import CallerError, KeysError
from tongban.keys.pki import (
    CertificatePublicKey,
    certificate_pem,
    load_certificate,
    load_certificates,
)
from tongban.keys.seal_registry import load_seal_registry
from tongban.keys.seals import SealRecord, seal_detached, seal_pdf
from tongban.keys.signing import PrivateKeySigner, key_id_of
from tongban.server.usecases.seal_image import render_seal_image

__all__ = ["add_published_parsers", "add_seal_parsers", "add_verify_parser"]

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INDETERMINATE = 3
EXIT_REFUSED = 1

SEAL_VALIDITY = timedelta(days=3 * 365)
"""A seal registered without ``--not-after`` is valid this long."""

_MARKS = {
    CheckOutcome.PASSED: "ok  ",
    CheckOutcome.FAILED: "FAIL",
    CheckOutcome.INDETERMINATE: "??  ",
    CheckOutcome.SKIPPED: "--  ",
}


class _CommandError(Exception):
    """A problem with the command's own inputs; reported on stderr with exit code 2."""


def _read(path: str, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise _CommandError(f"cannot read {what} {path}: {exc.strerror or exc}") from None


def _json(path: str, what: str) -> dict[str, Any]:
    try:
        return parse_json_object(_read(path, what), what)
    except KeysError as exc:
        raise _CommandError(f"{what} {path}: {exc.message}") from None


def _at(text: str | None) -> datetime:
    if not text:
        return utcnow()
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _CommandError(f"--at {text!r}: {exc}") from None


def _roots(paths: list[str]) -> list[Any]:
    roots = []
    for path in paths:
        data = _read(path, "trust root")
        try:
            if data.lstrip().startswith(b"-----BEGIN"):
                roots += load_certificates(data)
            else:
                roots.append(load_certificate(data))
        except KeysError as exc:
            raise _CommandError(f"trust root {path}: {exc.message}") from None
    return roots


def _directory(
    path: str | None, roots: list[Any], at: datetime
) -> tuple[
    list[SealRecord], dict[str, dict[str, CertificatePublicKey]], FederationDirectory | None
]:
    """Seal records, node statement keys and the verified directory, from a signed
    directory or a plain seal list (which has no keys and no directory)."""
    if path is None:
        return [], {}, None
    data = _json(path, "directory")
    try:
        if "payloadType" in data:
            directory = load_directory(Envelope.from_json_dict(data), roots, at=at)
            seals = list(directory.seals)
            keys = {n.node_id: n.signing_keys(at) for n in directory.nodes}
            return [SealRecord.from_json_dict(s) for s in seals], keys, directory
        seals = list(data.get("seals", []))
        return [SealRecord.from_json_dict(s) for s in seals], {}, None
    except KeysError as exc:
        raise _CommandError(f"directory {path}: {exc.message}") from None


def _seal_registries(
    paths: list[str] | None, directory: FederationDirectory | None, at: datetime
) -> list[SealRecord]:
    """Seal records from node-signed seal registries (checked against the directory), or
    from plain ``{"seals": [...]}`` files."""
    records: list[SealRecord] = []
    for path in paths or []:
        data = _json(path, "seal registry")
        try:
            if "payloadType" not in data:
                records += [SealRecord.from_json_dict(s) for s in data.get("seals", [])]
                continue
            if directory is None:
                raise _CommandError(
                    f"seal registry {path} is signed by its node: give --directory with the "
                    "signed federation directory to check it"
                )
            # A registry fetched today may serve to verify as of an earlier --at: it carries
            # the revocation times, and only a registry from the future is suspicious.
            registry = load_seal_registry(
                Envelope.from_json_dict(data), directory, at=max(at, utcnow())
            )
            records += registry.seals
        except KeysError as exc:
            raise _CommandError(f"seal registry {path}: {exc.message}") from None
    return records


def _pem(roots: list[Any]) -> bytes:
    return b"".join(certificate_pem(r) for r in roots)


def _status_keys(
    args: argparse.Namespace,
    envelope: Envelope,
    node_keys: dict[str, dict[str, CertificatePublicKey]],
) -> dict[str, CertificatePublicKey]:
    if args.status_key:
        keys: dict[str, CertificatePublicKey] = {}
        for path in args.status_key:
            try:
                key = serialization.load_pem_public_key(_read(path, "status key"))
            except ValueError as exc:
                raise _CommandError(f"status key {path}: {exc}") from None
            if not isinstance(key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
                raise _CommandError(f"status key {path} is neither Ed25519 nor ECDSA")
            keys[key_id_of(key)] = key
        return keys
    # The list names its node; only that node's published keys may vouch for it.
    try:
        node_id = str(parse_json_object(envelope.payload, "status list")["node_id"])
    except (KeysError, KeyError) as exc:
        raise _CommandError(f"status list names no node: {exc}") from None
    if node_id not in node_keys:
        raise _CommandError(
            f"no key for node {node_id}'s status list: give --status-key or a signed "
            "directory with that node"
        )
    return node_keys[node_id]


def _status_list_envelope(path: str) -> Envelope:
    try:
        return Envelope.from_json_dict(_json(path, "status list"))
    except KeysError as exc:
        raise _CommandError(f"status list {path}: {exc.message}") from None


def _published(args: argparse.Namespace) -> PublishedFolder | None:
    """With ``--published DIR``: its directory and every node's seal registry join what was
    given; its status lists are consulted after the seal says whose it is."""
    if not args.published:
        return None
    try:
        folder = read_published_folder(Path(args.published))
    except FileNotFoundError as exc:
        raise _CommandError(f"--published: {exc}") from None
    if args.directory is None and folder.directory is not None:
        args.directory = str(folder.directory)
    args.seals = [*(args.seals or []), *(str(p) for p in folder.seal_registries)]
    return folder


def _print_report(report: SealVerificationReport) -> None:
    print(report.summary)
    print()
    width = max(len(c.name) for c in report.checks) if report.checks else 0
    for check in report.checks:
        print(f"  {_MARKS[check.outcome]} {check.name:<{width}}  {check.detail}")
    print()
    if report.signing_time:
        print(f"  signing time:  {format_time(report.signing_time)}")
    print(f"  verified at:   {format_time(report.verified_at)}")


def _online(args: argparse.Namespace, roots: list[Any]) -> VerificationClient | None:
    if args.online is None:
        if args.node_id:
            raise _CommandError("--node-id names the node asked with --online")
        return None
    if not args.node_id:
        raise _CommandError("--online needs --node-id, the id of the node at that address")
    if args.status_list:
        raise _CommandError("give --status-list or --online, not both")
    return VerificationClient(args.online, node_id=args.node_id, root_pem=_pem(roots))


def _node_seals(
    client: VerificationClient,
    args: argparse.Namespace,
    directory: FederationDirectory | None,
    roots: list[Any],
    at: datetime,
) -> list[SealRecord]:
    """The seals the node asked with ``--online`` registered, from its signed registry;
    without ``--directory`` the signed directory comes from the node too (and its seals)."""
    where = f"node {args.node_id} at {args.online}"
    try:
        seals: list[SealRecord] = []
        if directory is None:
            directory = load_directory(client.directory(), roots, at=at)
            if args.directory is None:
                seals += [SealRecord.from_json_dict(s) for s in directory.seals]
        registry = load_seal_registry(client.seal_registry(), directory, at=max(at, utcnow()))
    except RequestRefused as exc:
        raise _CommandError(f"{where}: {exc}") from None
    except KeysError as exc:
        raise _CommandError(f"{where} sent lists that do not verify: {exc.message}") from None
    return seals + list(registry.seals)


def _run_verify(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # pyHanko logs its own diagnosis of a changed PDF with a stack trace; the report
        # already says what is wrong, so keep its log for -v.
        logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    client: VerificationClient | None = None
    try:
        at = _at(args.at)
        roots = _roots(args.trust)
        published = _published(args)
        records, node_keys, directory = _directory(args.directory, roots, at)
        records += _seal_registries(args.seals, directory, at)
        client = _online(args, roots)
        if client is not None and not args.seals:
            records += _node_seals(client, args, directory, roots, at)
        envelope = keys = None
        if args.status_list:
            envelope = _status_list_envelope(args.status_list)
            keys = _status_keys(args, envelope, node_keys)
        document = Path(args.file)
        if not document.is_file():
            raise _CommandError(f"cannot read document {args.file}")
        seal = Path(args.seal) if args.seal else None
        if seal is not None and not seal.is_file():
            raise _CommandError(f"cannot read seal {args.seal}")

        def verified(
            envelope: Envelope | None, keys: dict[str, CertificatePublicKey] | None
        ) -> SealVerificationReport:
            return seal_verification_result(
                document,
                seal=seal,
                roots=roots,
                seals=records,
                at=at,
                status_list=envelope,
                status_keys=keys,
                status_max_age=timedelta(hours=args.status_max_age),
                online_status=client.ecert_status if client is not None else None,
            )

        if is_national_format(document, seal):
            intermediates = _roots(args.ca or [])
            report = national_report(
                document, seal, roots=roots, intermediates=intermediates, seals=records, at=at
            )
        else:
            report = verified(envelope, keys)
            if published is not None and envelope is None and client is None and report.signer:
                # The status list to consult is the one of the node the seal belongs to.
                listed = published.status_lists.get(report.signer.node_id)
                if listed is not None:
                    envelope = _status_list_envelope(str(listed))
                    report = verified(envelope, _status_keys(args, envelope, node_keys))
    except _CommandError as exc:
        print(f"tongban verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if client is not None:
            client.close()
    if args.json:
        print(report.to_json())
    else:
        _print_report(report)
    return {
        Indication.VALID: EXIT_VALID,
        Indication.INVALID: EXIT_INVALID,
        Indication.INDETERMINATE: EXIT_INDETERMINATE,
    }[report.indication]


def add_verify_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``tongban verify`` on an argparse sub-parser set."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "verify",
        help="verify a sealed document offline",
        description="Verify a sealed document with nothing but the federation root and the "
        "published seal records (and, with --online, the issuing node's current status of "
        "the e-certificate). Exit code: 0 VALID, 1 INVALID, 3 INDETERMINATE, 2 error.",
    )
    parser.add_argument(
        "file", help="the document (a sealed PDF, a signed OFD, or any file with --seal)"
    )
    parser.add_argument(
        "--seal", help="the detached seal: FILE.p7s (DER CMS) or FILE.ses (GB/T 38540)"
    )
    parser.add_argument(
        "--ca",
        action="append",
        help="an intermediate CA certificate (a node's SM2 seal CA) for GB/T 38540 seals",
    )
    parser.add_argument(
        "--trust", action="append", required=True, help="federation root certificate (PEM/DER)"
    )
    parser.add_argument(
        "--directory",
        help='signed federation directory, or a JSON file {"seals": [...]} of seal records',
    )
    parser.add_argument(
        "--seals",
        action="append",
        metavar="REGISTRY",
        help="a node's signed seal registry (checked against the signed --directory), or a "
        'JSON file {"seals": [...]}; repeat for several nodes',
    )
    parser.add_argument("--status-list", help="the issuing node's signed e-certificate status list")
    parser.add_argument(
        "--published",
        metavar="DIR",
        help="a folder of published lists (federation init's public/, or published fetch "
        "--out): its directory.json, every <node>/seal-registry.json, and the status list of "
        "the node whose seal it is",
    )
    parser.add_argument(
        "--status-key",
        action="append",
        help="PEM public key that signs the status list (default: from the signed directory)",
    )
    parser.add_argument(
        "--status-max-age",
        type=float,
        default=24.0,
        help="hours a status list stays acceptable after it was issued (default 24)",
    )
    parser.add_argument(
        "--online",
        metavar="HOST:PORT",
        help="ask this node's verification service for the e-certificate's current status "
        "(instead of --status-list), and for its signed seal registry and directory unless "
        "--seals / --directory are given; the seal itself is still verified here",
    )
    parser.add_argument("--node-id", help="the id of the node given with --online")
    parser.add_argument("--at", help="verify as of this RFC 3339 time (default: now)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_run_verify)
    return parser


def _seal_locally(args: argparse.Namespace) -> int:
    from tongban.keys.pki import load_private_key

    try:
        at = _at(args.at)
        key = load_private_key(_read(args.seal_key, "seal key"))
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise _CommandError(f"seal key {args.seal_key} is not an ECDSA P-256 key")
        certificate = load_certificate(_read(args.seal_cert, "seal certificate"))
        chain = [c for path in args.chain or [] for c in load_certificates(_read(path, "chain"))]
        identifier = parse_ecert_identifier(args.ecert) if args.ecert else None
        document = Path(args.file)
        if not document.is_file():
            raise _CommandError(f"cannot read document {args.file}")
        signer = PrivateKeySigner(key)
        if args.pdf:
            if identifier is None or not args.verify_url:
                raise _CommandError("sealing a PDF needs --ecert and --verify-url for its QR code")
            if args.image:
                image = _read(args.image, "seal image")
            elif args.seal_name:
                image = render_seal_image(args.seal_name)
            else:
                raise _CommandError("sealing a PDF needs --image PNG or --seal-name to draw one")
            out = Path(args.out or document.with_suffix(".sealed.pdf"))
            output = io.BytesIO()  # nothing is written unless sealing succeeds
            seal_pdf(
                document,
                output,
                signer,
                certificate,
                chain=chain,
                at=at,
                ecert_identifier=identifier,
                verification_url=args.verify_url,
                seal_image_png=image,
            )
            out.write_bytes(output.getvalue())
        else:
            out = Path(args.out or f"{document}.p7s")
            out.write_bytes(
                seal_detached(
                    document, signer, certificate, chain=chain, at=at, ecert_identifier=identifier
                )
            )
    except (_CommandError, KeysError, OSError) as exc:
        message = exc.message if isinstance(exc, KeysError) else str(exc)
        print(f"tongban seal: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    print(f"sealed {document} -> {out}" + (f" (e-certificate {identifier})" if identifier else ""))
    return 0


# --- tongban seal: one parser, four modes -------------------------------------------------
#
# ``tongban seal FILE …`` and ``tongban seal register|revoke …`` share one parser that knows
# every option, so options may come before or after the first word; the first word picks the
# mode and each mode accepts only its own options. A file literally named "register" or
# "revoke" is given as ./register.

_SEAL_MODES: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # mode: (required options, further options allowed)
    "register": (
        frozenset({"profile", "seal_id", "name", "org_name", "uscc"}),
        frozenset({"image", "not_before", "not_after"}),
    ),
    "revoke": (frozenset({"profile", "seal_id"}), frozenset({"reason", "note"})),
    "node": (frozenset({"profile", "seal_id"}), frozenset({"type", "pdf", "out"})),
    "local": (
        frozenset({"seal_key", "seal_cert"}),
        frozenset({"chain", "out", "ecert", "at", "pdf", "verify_url", "image", "seal_name"}),
    ),
}
_SEAL_OPTIONS = frozenset(o for req, more in _SEAL_MODES.values() for o in req | more)
_MODE_WORDS = {
    "register": "registering a seal",
    "revoke": "revoking a seal",
    "node": "sealing through the node",
    "local": "sealing locally",
}


def _flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def _seal_mode(args: argparse.Namespace) -> str:
    """The mode of a ``tongban seal`` command line, once its options fit that mode.

    Raises:
        _CommandError: an option of another mode, or a required one missing.
    """
    given = {d for d in _SEAL_OPTIONS if getattr(args, d, None) not in (None, False)}
    mode: str
    if args.file in ("register", "revoke"):
        mode = str(args.file)
    elif given & {"seal_key", "seal_cert"}:
        mode = "local"
    elif given & {"profile", "seal_id"}:
        mode = "node"
    else:
        raise _CommandError(
            "give --profile DIR --seal-id ID to seal through the node, or --seal-key KEY "
            "--seal-cert CERT to seal locally"
        )
    required, more = _SEAL_MODES[mode]
    stray = sorted(given - required - more)
    if stray:
        raise _CommandError(f"{_flag(stray[0])} does not apply to {_MODE_WORDS[mode]}")
    missing = sorted(required - given)
    if missing:
        raise _CommandError(f"{_MODE_WORDS[mode]} needs " + ", ".join(_flag(m) for m in missing))
    return mode


def _seal_client(profile: str) -> SealClient:
    folder = Path(profile)
    try:
        return SealClient.from_profile(folder)
    except (OSError, KeyError, ValueError) as exc:
        raise _CommandError(f"profile {profile}: {exc}") from None


def _print_seal(info: SealInfo) -> None:
    print(f"seal {info.seal_id}: {info.name}")
    print(f"  organisation:  {info.org_uscc}")
    print(f"  node:          {info.node_id}")
    print(f"  valid:         {format_time(info.not_before)} .. {format_time(info.not_after)}")
    print(f"  certificate:   sha256 {info.certificate_fingerprint}")
    if info.revoked_at is not None:
        reason = info.revocation_reason or RevocationReason.UNSPECIFIED
        note = f": {info.revocation_note}" if info.revocation_note else ""
        print(f"  revoked:       {format_time(info.revoked_at)} ({reason.value}{note})")
        earlier = (
            "valid only where their time is proven"
            if reason.key_possibly_compromised
            else "stay valid"
        )
        print(f"  earlier seals: {earlier}")


def _register_seal(args: argparse.Namespace) -> int:
    not_before = _time_option(args.not_before, "--not-before") or utcnow()
    not_after = _time_option(args.not_after, "--not-after") or not_before + SEAL_VALIDITY
    image = _read(args.image, "seal image") if args.image else None
    with _seal_client(args.profile) as client:
        info = client.register_seal(
            args.seal_id,
            args.name,
            args.uscc,
            org_name=args.org_name,
            not_before=not_before,
            not_after=not_after,
            image_png=image,
        )
    _print_seal(info)
    return 0


def _revoke_seal(args: argparse.Namespace) -> int:
    with _seal_client(args.profile) as client:
        info = client.revoke_seal(
            args.seal_id, args.reason or RevocationReason.UNSPECIFIED, note=args.note or ""
        )
    _print_seal(info)
    return 0


def _seal_through_node(args: argparse.Namespace) -> int:
    document = Path(args.file)
    if not document.is_file():
        raise _CommandError(f"cannot read document {args.file}")
    default = document.with_suffix(".sealed.pdf") if args.pdf else Path(f"{document}.p7s")
    out = Path(args.out) if args.out else default
    with _seal_client(args.profile) as client:
        sealed = client.seal_document(
            document, seal_id=args.seal_id, type_code=args.type or "DOC", pdf=args.pdf
        )
    out.write_bytes(sealed.data)
    print(f"sealed {document} -> {out} (e-certificate {sealed.identifier})")
    return 0


def _time_option(text: str | None, flag: str) -> datetime | None:
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError as exc:
        raise _CommandError(f"{flag} {text!r}: {exc}") from None


def _run_seal(args: argparse.Namespace) -> int:
    command = "tongban seal" + (f" {args.file}" if args.file in ("register", "revoke") else "")
    try:
        mode = _seal_mode(args)
        if mode == "local":
            return _seal_locally(args)
        run = {"register": _register_seal, "revoke": _revoke_seal, "node": _seal_through_node}
        return run[mode](args)
    except (_CommandError, KeysError, OSError) as exc:
        message = exc.message if isinstance(exc, KeysError) else str(exc)
        print(f"{command}: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except RequestRefused as exc:
        print(f"{command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _run_seal_image(args: argparse.Namespace) -> int:
    try:
        font = Path(args.font) if args.font else None
        Path(args.out).write_bytes(render_seal_image(args.name, size=args.size, font_path=font))
    except (KeysError, OSError) as exc:
        message = exc.message if isinstance(exc, KeysError) else str(exc)
        print(f"tongban seal-image: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    print(f"seal image of {args.name} -> {args.out}")
    return 0


def add_seal_parsers(subparsers: Any) -> None:
    """Register ``tongban seal`` (with ``register`` and ``revoke``) and ``tongban seal-image``."""
    seal = subparsers.add_parser(
        "seal",
        help="seal a file through the node or locally; register or revoke a seal",
        usage=(
            "tongban seal FILE --profile DIR --seal-id ID [--type T] [--pdf] [--out OUT]\n"
            "       tongban seal FILE --seal-key KEY --seal-cert CERT [--ecert ID] [--pdf ...]\n"
            "       tongban seal register --profile ADMIN_DIR --seal-id ID --name NAME "
            "--org-name ORG --uscc CODE [--image PNG] [--not-before T] [--not-after T]\n"
            "       tongban seal revoke --profile ADMIN_DIR --seal-id ID [--reason CODE] "
            "[--note TEXT]"
        ),
        description="Seal FILE through the node with a registered seal (a hall or admin "
        "profile; the node issues the e-certificate identifier), or locally with a seal key. "
        "'register' and 'revoke' manage the node's seals with an admin profile. A file "
        "named 'register' or 'revoke' is given as ./register.",
    )
    seal.add_argument("file", metavar="FILE|register|revoke")
    node = seal.add_argument_group("through the node, and register / revoke")
    node.add_argument("--profile", help="admin or hall folder (admin.toml or hall.toml, certs)")
    node.add_argument("--seal-id", help="the registered seal's id")
    node.add_argument("--type", help="e-certificate type code, 0-9A-Z (default DOC)")
    both = seal.add_argument_group("sealing a file")
    both.add_argument("--out", help="output file (default FILE.p7s, or FILE.sealed.pdf)")
    both.add_argument("--pdf", action="store_true", help="seal a PDF as PAdES with a stamp")
    local = seal.add_argument_group("sealing locally")
    local.add_argument("--seal-key", help="the seal's private key (PEM)")
    local.add_argument("--seal-cert", help="the seal's certificate (PEM/DER)")
    local.add_argument("--chain", action="append", help="intermediate certificates (PEM)")
    local.add_argument("--ecert", help="e-certificate identifier (GB/T 36904) to bind")
    local.add_argument("--at", help="signing time, RFC 3339 (default: now)")
    local.add_argument("--verify-url", help="verification service address for the QR code")
    local.add_argument("--seal-name", help="draw the stamp's seal image with this name")
    register = seal.add_argument_group("register / revoke")
    register.add_argument(
        "--image", help="seal image PNG: a registered seal's, or the stamp of a PDF sealed locally"
    )
    register.add_argument("--name", help="the seal's registered name")
    register.add_argument(
        "--org-name", help="name of the organisation owning the seal (the certificate's O=)"
    )
    register.add_argument("--uscc", help="统一社会信用代码 of the organisation owning the seal")
    register.add_argument("--not-before", help="RFC 3339 (default: now)")
    register.add_argument("--not-after", help="RFC 3339 (default: three years after --not-before)")
    register.add_argument(
        "--reason",
        choices=[r.value for r in RevocationReason],
        help="why the seal is revoked, an RFC 5280 reason code (default unspecified). "
        "unspecified, keyCompromise and caCompromise mean the key may be in other hands: "
        "documents sealed before then stay valid only where their time is proven. "
        "superseded, cessationOfOperation and affiliationChanged retire the key in good "
        "order: documents sealed before stay valid",
    )
    register.add_argument("--note", help="free text for the record, e.g. 印章钥匙泄露")
    seal.set_defaults(handler=_run_seal)

    image = subparsers.add_parser("seal-image", help="draw the round red seal image as PNG")
    image.add_argument("name", help="the registered seal name, e.g. 鄂州市行政审批局行政审批专用章")
    image.add_argument("--out", required=True)
    image.add_argument("--size", type=int, default=480, help="pixels (default 480)")
    image.add_argument("--font", help="a CJK .ttf/.ttc/.otf font (default: found on the system)")
    image.set_defaults(handler=_run_seal_image)


# --- tongban ecert, tongban published ------------------------------------------------------


def _run_ecert(args: argparse.Namespace) -> int:
    command = f"tongban ecert {args.status_action}"
    status = {"revoke": "revoked", "cancel": "cancelled", "expire": "expired"}[args.status_action]
    try:
        with _seal_client(args.profile) as client:
            entry = client.change_ecert_status(args.identifier, status, args.reason or "")
    except _CommandError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RequestRefused as exc:
        print(f"{command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeysError as exc:
        print(f"{command}: error: {exc.message}", file=sys.stderr)
        return EXIT_REFUSED
    reason = f": {entry.reason}" if entry.reason else ""
    print(
        f"e-certificate {entry.identifier} is {entry.status.value} since "
        f"{format_time(entry.changed_at)}{reason}"
    )
    return 0


def _run_published_fetch(args: argparse.Namespace) -> int:
    command = "tongban published fetch"
    try:
        roots = _roots(args.trust)
        with VerificationClient(args.node, node_id=args.node_id, root_pem=_pem(roots)) as client:
            files = fetch_published(client, Path(args.out), roots=roots)
    except _CommandError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CallerError as exc:
        print(f"{command}: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except RequestRefused as exc:
        print(f"{command}: refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeysError as exc:
        print(f"{command}: not trusted, nothing written: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    for path in (files.root, files.directory, files.seal_registry, files.status_list):
        if path is not None:
            print(f"wrote {path}")
    return 0


def add_published_parsers(subparsers: Any) -> None:
    """Register ``tongban ecert revoke|cancel|expire`` and ``tongban published fetch``."""
    ecert = subparsers.add_parser(
        "ecert", help="change an e-certificate's status at its node (admin)"
    ).add_subparsers(dest="status_action", required=True)
    for action, what in (
        ("revoke", "revoke (撤销/吊销) an e-certificate"),
        ("cancel", "cancel (注销) an e-certificate"),
        ("expire", "mark an e-certificate expired (失效)"),
    ):
        p = ecert.add_parser(action, help=what, description=what + " issued by this node")
        p.add_argument("identifier", help="the e-certificate identifier (GB/T 36904)")
        p.add_argument("--reason", required=action != "expire", help="why, for the record")
        p.add_argument("--profile", required=True, help="admin folder of the issuing node")
        p.set_defaults(handler=_run_ecert)

    published = subparsers.add_parser(
        "published", help="a node's signed lists for offline verification"
    ).add_subparsers(dest="published_action", required=True)
    fetch = published.add_parser(
        "fetch",
        help="fetch the directory, seal registry and status list from a node's public port",
        description="Fetch the federation directory, the node's seal registry and its "
        "e-certificate status list from the node's verification service; nothing is written "
        "unless the directory verifies against --trust and the lists against the node's keys "
        "in it. Writes root.pem, directory.json, NODE/seal-registry.json and "
        "NODE/status-list.json, readable by anyone (0644); fetch each node into the same "
        "folder and verify offline with tongban verify --published DIR.",
    )
    fetch.add_argument("--node", required=True, metavar="HOST:PORT", help="the public port")
    fetch.add_argument("--node-id", required=True, help="the node's id")
    fetch.add_argument(
        "--trust", action="append", required=True, help="federation root certificate (PEM/DER)"
    )
    fetch.add_argument("--out", required=True, help="folder to write into")
    fetch.set_defaults(handler=_run_published_fetch)
