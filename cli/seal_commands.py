"""``tongban verify``, ``tongban seal`` and ``tongban seal-image``.

``verify`` needs nothing but the federation root and the published seal records, so a bank
can run it offline. Its exit code is 0 only for VALID: 1 for INVALID, 3 for INDETERMINATE,
2 when the command itself cannot run (a missing file, a root that is not a certificate).
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

from tongban.client.verify import (
    CheckOutcome,
    Indication,
    SealVerificationReport,
    seal_verification_result,
)
from tongban.keys.clock import format_time, parse_time, utcnow
from tongban.keys.directory import load_directory
from tongban.keys.ecert import parse_ecert_identifier
from tongban.keys.envelope import Envelope, parse_json_object
from tongban.keys.errors import KeysError
from tongban.keys.pki import CertificatePublicKey, load_certificate, load_certificates
from tongban.keys.seals import SealRecord, render_seal_image, seal_detached, seal_pdf
from tongban.keys.signing import PrivateKeySigner, key_id_of

__all__ = ["add_seal_parsers", "add_verify_parser"]

EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_INDETERMINATE = 3

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
) -> tuple[list[SealRecord], dict[str, dict[str, CertificatePublicKey]]]:
    """Seal records and node statement keys from a signed directory or a plain seal list."""
    if path is None:
        return [], {}
    data = _json(path, "directory")
    try:
        if "payloadType" in data:
            directory = load_directory(Envelope.from_json_dict(data), roots, at=at)
            seals = list(directory.seals)
            keys = {n.node_id: n.signing_keys(at) for n in directory.nodes}
        else:
            seals, keys = list(data.get("seals", [])), {}
        return [SealRecord.from_json_dict(s) for s in seals], keys
    except KeysError as exc:
        raise _CommandError(f"directory {path}: {exc.message}") from None


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


def _run_verify(args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        # pyHanko logs its own diagnosis of a changed PDF with a stack trace; the report
        # already says what is wrong, so keep its log for -v.
        logging.getLogger("pyhanko").setLevel(logging.CRITICAL)
    try:
        at = _at(args.at)
        roots = _roots(args.trust)
        records, node_keys = _directory(args.directory, roots, at)
        envelope = keys = None
        if args.status_list:
            try:
                envelope = Envelope.from_json_dict(_json(args.status_list, "status list"))
            except KeysError as exc:
                raise _CommandError(f"status list {args.status_list}: {exc.message}") from None
            keys = _status_keys(args, envelope, node_keys)
        document = Path(args.file)
        if not document.is_file():
            raise _CommandError(f"cannot read document {args.file}")
        seal = Path(args.seal) if args.seal else None
        if seal is not None and not seal.is_file():
            raise _CommandError(f"cannot read seal {args.seal}")
        report = seal_verification_result(
            document,
            seal=seal,
            roots=roots,
            seals=records,
            at=at,
            status_list=envelope,
            status_keys=keys,
            status_max_age=timedelta(hours=args.status_max_age),
        )
    except _CommandError as exc:
        print(f"tongban verify: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
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
        "published seal records. Exit code: 0 VALID, 1 INVALID, 3 INDETERMINATE, 2 error.",
    )
    parser.add_argument("file", help="the document (a sealed PDF, or any file with --seal)")
    parser.add_argument("--seal", help="the detached seal FILE.p7s (DER CMS)")
    parser.add_argument(
        "--trust", action="append", required=True, help="federation root certificate (PEM/DER)"
    )
    parser.add_argument(
        "--directory",
        help='signed federation directory, or a JSON file {"seals": [...]} of seal records',
    )
    parser.add_argument("--status-list", help="the issuing node's signed e-certificate status list")
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
    parser.add_argument("--at", help="verify as of this RFC 3339 time (default: now)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(handler=_run_verify)
    return parser


def _run_seal(args: argparse.Namespace) -> int:
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
    """Register ``tongban seal`` and ``tongban seal-image`` on an argparse sub-parser set."""
    seal = subparsers.add_parser(
        "seal",
        help="seal a file locally with a seal key (detached .p7s, or PAdES with --pdf)",
    )
    seal.add_argument("file")
    seal.add_argument("--seal-key", required=True, help="the seal's private key (PEM)")
    seal.add_argument("--seal-cert", required=True, help="the seal's certificate (PEM/DER)")
    seal.add_argument("--chain", action="append", help="intermediate certificates (PEM)")
    seal.add_argument("--out", help="output file (default FILE.p7s, or FILE.sealed.pdf)")
    seal.add_argument("--ecert", help="e-certificate identifier (GB/T 36904) to bind")
    seal.add_argument("--at", help="signing time, RFC 3339 (default: now)")
    seal.add_argument("--pdf", action="store_true", help="seal a PDF as PAdES with a stamp")
    seal.add_argument("--verify-url", help="verification service address for the QR code")
    seal.add_argument("--image", help="seal image PNG for the stamp")
    seal.add_argument("--seal-name", help="draw the stamp's seal image with this name")
    seal.set_defaults(handler=_run_seal)

    image = subparsers.add_parser("seal-image", help="draw the round red seal image as PNG")
    image.add_argument("name", help="the registered seal name, e.g. 鄂州市行政审批局行政审批专用章")
    image.add_argument("--out", required=True)
    image.add_argument("--size", type=int, default=480, help="pixels (default 480)")
    image.add_argument("--font", help="a CJK .ttf/.ttc/.otf font (default: found on the system)")
    image.set_defaults(handler=_run_seal_image)
