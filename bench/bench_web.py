"""Verification site throughput for a sealed 200 KB PDF, beside in-process verification.

Run: ``.venv/bin/python bench/bench_web.py [--seconds 10] [--clients 2]``

1. A one-node federation is written to a temporary folder; the node starts as its own
   process (``tongban node serve``) with its verification site on loopback (HTTPS).
2. A seal is registered and a 200 KB PDF sealed by the node (the QR code, the stamp).
3. Floor, in this process: the site's own verification call (``NodeBackend.verify``, the
   same roots, seal records and status lookup against the node's database), on the same
   sealed PDF, single thread.
4. Site: ``--clients`` keep-alive HTTPS connections upload the PDF to ``POST /check`` (the
   report page) for ``--seconds``; every answer must be 200 with 有效. Then the same for
   ``GET /v/{identifier}`` beside the in-process record lookup.

Figures: requests/s of each, their ratio to the floor (target for the upload page: at
least 70 %), and peak RSS (VmHWM) of the node process and of this process. JSON goes to
``bench/results/web-<UTC timestamp>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tongban.cli.demo import free_ports
from tongban.cli.federation import node_specs, write_federation
from tongban.client.seals import SealClient
from tongban.keys.clock import utcnow
from tongban.keys.verification import Indication
from tongban.server.app import RelayNode
from tongban.server.config import load_config

RESULTS = Path(__file__).resolve().parent / "results"
NODE = "420100"
SIZE = 200 * 1024
TARGET = 0.70


def _pdf(size: int) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter(stream_xrefs=False)
    body = b"BT /F1 20 Tf 72 720 Td (Business licence) Tj ET\n% " + b"x" * size
    page = generic.DictionaryObject(
        {
            pdf_name("/Type"): pdf_name("/Page"),
            pdf_name("/MediaBox"): generic.ArrayObject(
                [generic.NumberObject(n) for n in (0, 0, 595, 842)]
            ),
            pdf_name("/Contents"): writer.add_object(generic.StreamObject(stream_data=body)),
        }
    )
    writer.insert_page(page)
    import io

    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def rate(action: Callable[[], object], seconds: float) -> tuple[float, int]:
    action()
    count, start = 0, time.perf_counter()
    while True:
        action()
        count += 1
        now = time.perf_counter()
        if now - start >= seconds:
            return count / (now - start), count


def http_rate(
    make: Callable[[], httpx.Client],
    request: Callable[[httpx.Client], httpx.Response],
    check: Callable[[httpx.Response], bool],
    clients: int,
    seconds: float,
) -> tuple[float, int]:
    """Requests/s over ``clients`` keep-alive connections, each answer checked."""
    counts = [0] * clients
    failures: list[str] = []
    start_gate = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def run(i: int) -> None:
        with make() as http:
            request(http)  # connect and warm up
            start_gate.wait()
            while time.perf_counter() < stop_at[0]:
                r = request(http)
                if not check(r):
                    failures.append(f"{r.status_code}: {r.text[:200]}")
                    return
                counts[i] += 1

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    stop_at[0] = time.perf_counter() + seconds + 3600
    start_gate.wait()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - began
    if failures:
        raise SystemExit(f"a request failed: {failures[0]}")
    return sum(counts) / elapsed, sum(counts)


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per measurement")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTPS connections")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tongban-bench-web-"))
    grpc_port, public_port, web_port = free_ports(3)
    specs = node_specs(
        [NODE],
        base_port=0,
        host="127.0.0.1",
        endpoints={NODE: f"127.0.0.1:{grpc_port}"},
        names={},
        public_endpoints={NODE: f"127.0.0.1:{public_port}"},
    )
    write_federation(work / "fed", specs, now=utcnow())
    config_path = work / "fed" / NODE / "node.toml"
    base = f"https://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "TONGBAN_WEB_LISTEN": f"127.0.0.1:{web_port}",
        "TONGBAN_WEB_SITE_URL": base,
        "TONGBAN_WEB_REQUESTS_PER_MINUTE": "100000000",
    }
    node = subprocess.Popen(
        [sys.executable, "-m", "tongban.cli.main", "node", "serve", "--config", str(config_path)],
        env=env,
    )
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "seconds": args.seconds,
        "clients": args.clients,
    }
    try:
        root = work / "fed" / "public" / "root.pem"
        ctx = ssl.create_default_context(cafile=str(root))
        ctx.check_hostname = False

        def make() -> httpx.Client:
            return httpx.Client(base_url=base, verify=ctx, timeout=60)

        deadline = time.monotonic() + 60
        while True:
            try:
                with make() as http:
                    http.get("/")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or node.poll() is not None:
                    raise SystemExit("the node did not start") from None
                time.sleep(0.2)
        fed = work / "fed" / NODE
        now = utcnow()
        with SealClient.from_profile(fed / "admins" / f"{NODE}-admin") as admin:
            admin.register_seal(
                "bench-seal",
                "武汉市行政审批局行政审批专用章",
                "11420100MB0000123A",
                org_name="武汉市行政审批局",
                not_before=now - timedelta(minutes=1),
                not_after=now + timedelta(days=365),
            )
        with SealClient.from_profile(fed / "halls" / f"{NODE}-hall-1") as hall:
            sealed = hall.seal_document(
                _pdf(SIZE),
                seal_id="bench-seal",
                type_code="LICENCE",
                pdf=True,
                document_name="营业执照.pdf",
            )
        document = sealed.data
        results["sealed_pdf_bytes"] = len(document)

        # The floor: the site's own verification, in this process, against the same database.
        config = load_config(config_path, environ={})
        local = RelayNode(config)
        assert local.site is not None, "the benchmark's node.toml must set [web] listen"
        backend = local.site.backend
        import io

        report = backend.verify(io.BytesIO(document), None)
        assert report.indication is Indication.VALID, report.summary
        floor_verify = rate(lambda: backend.verify(io.BytesIO(document), None), args.seconds)
        floor_lookup = rate(lambda: backend.ecert(sealed.identifier), args.seconds)
        local.metadata.close()
        local.objects.close()

        files = {"document": ("营业执照.pdf", document, "application/pdf")}
        upload = http_rate(
            make,
            lambda http: http.post("/check", files=files),
            lambda r: r.status_code == 200 and '<span class="word">有效</span>' in r.text,
            args.clients,
            args.seconds,
        )
        page = http_rate(
            make,
            lambda http: http.get(f"/v/{sealed.identifier}"),
            lambda r: r.status_code == 200 and '<span class="word">有效</span>' in r.text,
            args.clients,
            args.seconds,
        )
        results["node_peak_rss_mib"] = round(vm_hwm_mib(node.pid), 1)
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(60)
    results["bench_peak_rss_mib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1
    )
    results["rates"] = {
        "in_process_verify_per_s": round(floor_verify[0], 1),
        "upload_page_per_s": round(upload[0], 1),
        "in_process_record_lookup_per_s": round(floor_lookup[0], 1),
        "identifier_page_per_s": round(page[0], 1),
    }
    upload_ratio = upload[0] / floor_verify[0]
    page_ratio = page[0] / floor_lookup[0]
    results["ratios"] = {
        "upload_page": round(upload_ratio, 3),
        "identifier_page": round(page_ratio, 3),
    }
    print(
        f"tongban verification site benchmark: sealed PDF of {len(document)} bytes, "
        f"{args.clients} HTTPS clients, {args.seconds:.0f} s each, "
        f"Python {platform.python_version()}"
    )
    print(f"  in-process verification (floor)   {floor_verify[0]:8.1f} /s  (n={floor_verify[1]})")
    verdict = "meets" if upload_ratio >= TARGET else "misses"
    print(
        f"  POST /check (report page)         {upload[0]:8.1f} /s  (n={upload[1]})  "
        f"{upload_ratio:6.1%} of the floor ({verdict} the {TARGET:.0%} target)"
    )
    print(f"  in-process record lookup          {floor_lookup[0]:8.1f} /s  (n={floor_lookup[1]})")
    print(
        f"  GET /v/{{identifier}} (QR page)     {page[0]:8.1f} /s  (n={page[1]})  "
        f"{page_ratio:6.1%} of the lookup"
    )
    print(
        f"  peak RSS: node {results['node_peak_rss_mib']} MiB, benchmark "
        f"{results['bench_peak_rss_mib']} MiB"
    )
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"web-{stamp}.json"
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"  results: {out}")
    return 0 if upload_ratio >= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
