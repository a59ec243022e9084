"""The ``tongban`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from tongban.cli.deadline_commands import add_deadline_parsers
from tongban.cli.hall_commands import add_hall_parser
from tongban.keys.errors import KeysError

__all__ = ["main"]


def _federation_init(args: argparse.Namespace) -> int:
    try:
        endpoints = _node_addresses(args.endpoint, "--endpoint")
        public = _node_addresses(args.public_endpoint, "--public-endpoint")
        return _write_federation(args, endpoints, public)
    except ValueError as exc:
        print(f"tongban federation init: {exc}")
        return 2
    except (FileExistsError, KeysError) as exc:
        print(f"tongban federation init: {exc}")
        return 2


def _node_addresses(given: list[str] | None, option: str) -> dict[str, str]:
    """``NODE=HOST:PORT`` options as a mapping.

    Raises:
        ValueError: an option without ``=``.
    """
    addresses = {}
    for text in given or []:
        node, sep, address = text.partition("=")
        if not sep or not node or not address:
            raise ValueError(f"{option} {text!r} must be NODE=HOST:PORT")
        addresses[node] = address
    return addresses


def _write_federation(
    args: argparse.Namespace, endpoints: dict[str, str], public: dict[str, str]
) -> int:
    from tongban.cli.federation import node_specs, write_federation
    from tongban.keys.clock import utcnow

    specs = node_specs(
        args.node,
        base_port=args.base_port,
        host=args.host,
        endpoints=endpoints,
        names={},
        halls=args.halls,
        public_endpoints=public,
    )
    fed = write_federation(Path(args.out), specs, now=utcnow())
    for n in fed.nodes:
        halls = ", ".join(h.name for h in n.halls)
        public_port = f", public {n.spec.public_endpoint}" if n.spec.public_endpoint else ""
        print(
            f"node {n.spec.node_id} {n.spec.name} at {n.spec.endpoint}{public_port}: "
            f"{Path(args.out) / n.spec.node_id} (halls: {halls})"
        )
    print(f"root and directory for verifiers: {Path(args.out) / 'public'}")
    print(f"root key (keep it offline): {Path(args.out) / 'root' / 'root-key.pem'}")
    return 0


def _federation_migrate(args: argparse.Namespace) -> int:
    from tongban.cli.federation import migrate_federation
    from tongban.keys.clock import utcnow

    try:
        directory = migrate_federation(Path(args.dir), now=utcnow())
    except KeysError as exc:
        print(f"tongban federation migrate: {exc}")
        return 2
    for n in directory.nodes:
        print(
            f"node {n.node_id}: identity CA {Path(args.dir) / 'offline' / n.node_id}, "
            f"certificates re-issued in {Path(args.dir) / n.node_id}"
        )
    print(f"directory version {directory.version} signed; restart every node with its folder")
    return 0


def _node_serve(args: argparse.Namespace) -> int:
    from tongban.server.app import serve
    from tongban.server.config import ConfigError, load_config
    from tongban.server.listen import PortInUse

    try:
        config = load_config(Path(args.config))
    except ConfigError as exc:
        print(f"tongban node serve: {args.config}: {exc}")
        return 2
    try:
        serve(config, announce=lambda text: print(text, flush=True))
    except PortInUse as exc:
        print(f"tongban node serve: {exc}")
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from tongban.cli.demo import run_demo

    return run_demo(keep=args.keep)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tongban",
        description="Cross-region document relay and electronic seals for service halls (通办).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    sub = parser.add_subparsers(dest="command", required=True)

    fed = sub.add_parser("federation", help="manage a federation").add_subparsers(
        dest="action", required=True
    )
    init = fed.add_parser("init", help="create a root, node identities and a signed directory")
    init.add_argument("--out", required=True, help="empty folder to write into")
    init.add_argument(
        "--node",
        action="append",
        required=True,
        help="node id (GB/T 2260 code), repeat for each node",
    )
    init.add_argument("--host", default="127.0.0.1")
    init.add_argument(
        "--base-port",
        type=int,
        default=50051,
        help="the i-th node listens on BASE+i (relay and halls, mTLS) and on BASE+100+i "
        "(public verification, TLS without client certificate); default 50051",
    )
    init.add_argument(
        "--endpoint", action="append", help="NODE=HOST:PORT: this node's relay/hall port"
    )
    init.add_argument(
        "--public-endpoint",
        action="append",
        help="NODE=HOST:PORT: this node's public verification port (a node given --endpoint "
        "has none unless this is given)",
    )
    init.add_argument("--halls", type=int, default=2, help="halls per node")
    init.set_defaults(handler=_federation_init)
    migrate = fed.add_parser(
        "migrate",
        help="move a federation made before the per-node identity CAs onto them",
        description="Give every node an identity CA, re-issue its TLS, hall and admin "
        "certificates from it, limit its seal CA to document signing, and sign the next "
        "directory version. Needs the root key and every node folder.",
    )
    migrate.add_argument("--dir", required=True, help="the folder `federation init` wrote")
    migrate.set_defaults(handler=_federation_migrate)

    node = sub.add_parser("node", help="run a relay node").add_subparsers(
        dest="action", required=True
    )
    serve = node.add_parser("serve", help="serve until SIGTERM")
    serve.add_argument("--config", required=True)
    serve.set_defaults(handler=_node_serve)

    add_hall_parser(sub)
    add_deadline_parsers(sub)

    try:
        from tongban.cli.seal_commands import (
            add_published_parsers,
            add_seal_parsers,
            add_verify_parser,
        )
    except ImportError:  # pragma: no cover - seal commands not installed
        pass
    else:
        add_verify_parser(sub)
        add_seal_parsers(sub)
        add_published_parsers(sub)
        from tongban.cli.site_commands import add_verify_site_parser

        add_verify_site_parser(sub)

    demo = sub.add_parser("demo", help="three nodes on loopback, two cases end to end")
    demo.add_argument("--keep", action="store_true", help="keep the temporary folder")
    demo.set_defaults(handler=_demo)
    return parser


def _environment_refusal() -> str | None:
    """Why the environment is refused (a TONGBAN_* variable nothing reads), or None."""
    from tongban.server.config import ConfigError, check_environment

    try:
        check_environment(os.environ)
    except ConfigError as exc:
        return str(exc)
    return None


def _expected_scheduler_skips(record: logging.LogRecord) -> bool:
    """False for APScheduler's word that a run was skipped or missed: the jobs coalesce and
    run one at a time by design, so a busy node would otherwise log it every second."""
    if not record.name.startswith("apscheduler"):
        return True
    message = record.getMessage()
    return not (
        "maximum number of running instances reached" in message or "was missed by" in message
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    refusal = _environment_refusal()
    if refusal is not None:
        print(f"tongban: {refusal}")
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # APScheduler logs every run of every job at INFO, the delivery poll each second: -v
    # shows the node's own lines, and the scheduler's warnings and errors only.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_expected_scheduler_skips)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
