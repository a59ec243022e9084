"""``tongban verify-site``: the verification site from a node's published lists, no node.

Exit codes: 0 after a clean shutdown (SIGTERM or SIGINT), 2 for bad options or lists that
cannot be read, 1 for lists that do not verify against the trusted root.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from prometheus_client import CollectorRegistry

from tongban.keys.errors import KeysError
from tongban.keys.pki import load_certificates
from tongban.server.web.listener import SiteListener
from tongban.server.web.metrics import SiteMetrics
from tongban.server.web.published_backend import PublishedBackend
from tongban.server.web.site import SiteSettings, create_site

__all__ = ["add_verify_site_parser"]

EXIT_INVALID = 1
EXIT_USAGE = 2


def _run(args: argparse.Namespace) -> int:
    command = "tongban verify-site"
    if (args.tls_cert is None) != (args.tls_key is None):
        print(f"{command}: error: --tls-cert and --tls-key go together", file=sys.stderr)
        return EXIT_USAGE
    try:
        roots = load_certificates(Path(args.trust).read_bytes())
        backend = PublishedBackend(
            Path(args.published), roots, refresh_seconds=args.refresh_seconds
        )
    except OSError as exc:
        print(f"{command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeysError as exc:
        print(f"{command}: not trusted: {exc.message}", file=sys.stderr)
        return EXIT_INVALID
    https = args.tls_cert is not None
    app = create_site(
        backend,
        SiteSettings(
            max_upload_bytes=args.max_upload_bytes,
            requests_per_minute=args.requests_per_minute,
            https=https,
        ),
        metrics=SiteMetrics(CollectorRegistry()),
    )
    listener = SiteListener(
        app,
        args.listen,
        tls_cert=Path(args.tls_cert) if https else None,
        tls_key=Path(args.tls_key) if https else None,
    )
    try:
        port = listener.start()
    except (OSError, KeysError) as exc:
        print(f"{command}: error: cannot listen on {args.listen}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    backend.start()
    scheme = "https" if https else "http"
    host = args.listen.rpartition(":")[0]
    print(
        f"serving the lists of node {backend.lists.node_id} on {scheme}://{host}:{port}",
        flush=True,
    )
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stopping.wait()
    backend.stop()
    listener.stop()
    return 0


def add_verify_site_parser(subparsers: Any) -> None:
    """Register ``tongban verify-site``."""
    p = subparsers.add_parser(
        "verify-site",
        help="serve the verification site from a node's published lists, without a node",
        description="The same pages and JSON API as a node's verification site, answered "
        "from the signed lists `tongban published fetch` writes (directory, seal registry, "
        "status list), verified against the trusted root and re-read on a schedule.",
    )
    p.add_argument("--published", required=True, help="folder of `tongban published fetch`")
    p.add_argument("--trust", required=True, help="federation root certificate(s), PEM")
    p.add_argument("--listen", default="127.0.0.1:8443", help="HOST:PORT (port 0: any)")
    p.add_argument("--tls-cert", help="the site's certificate chain, PEM (else plain HTTP)")
    p.add_argument("--tls-key", help="the site's private key, PEM")
    p.add_argument(
        "--refresh-seconds", type=float, default=300.0, help="re-read the folder this often"
    )
    p.add_argument("--max-upload-bytes", type=int, default=20 << 20)
    p.add_argument("--requests-per-minute", type=int, default=120)
    p.set_defaults(handler=_run)
