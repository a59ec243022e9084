"""Seal and verification throughput for a 200 KB document, beside the raw cryptography.

Run: ``.venv/bin/python bench/bench_seal.py [--seconds 3]``

"raw" is what any seal costs at least: SHA-256 of the same 200 KB plus one ECDSA P-256
signature (or verification), straight through pyca/cryptography. The ratios say how much
of that rate the seal format keeps. Verification is measured twice: with one
SealVerifier reused (certificate paths remembered, the way a bank verifies many documents
of a few seals) and cold (a new verifier, so a path build, per document).
"""

from __future__ import annotations

import argparse
import io
import platform
import random
import resource
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tongban.client.verify import Indication, SealVerifier, seal_verification_result
from tongban.keys.ecert import ECertIdentifier
from tongban.keys.pki import generate_root
from tongban.keys.seals import create_seal, seal_detached, seal_pdf
from tongban.keys.signing import PrivateKeySigner

SIZE = 200 * 1024
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def rate(action: Callable[[], object], seconds: float) -> tuple[float, int]:
    """Operations per second of ``action`` over about ``seconds``."""
    action()  # warm up
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        action()
        count += 1
        now = time.perf_counter()
        if now >= deadline:
            return count / (now - start), count


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def minimal_pdf(padding: int) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.generic import pdf_name
    from pyhanko.pdf_utils.writer import PdfFileWriter

    writer = PdfFileWriter(stream_xrefs=False)
    body = b"BT /F1 20 Tf 72 720 Td (Result document) Tj ET\n% " + b"x" * padding
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
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement")
    args = parser.parse_args()
    seconds: float = args.seconds

    document = random.Random(0).randbytes(SIZE)
    root_key, root = generate_root(now=NOW - timedelta(days=1))
    seal = create_seal(
        seal_id="bench-seal",
        name="鄂州市行政审批局行政审批专用章",
        org_uscc="11420700MB1539542A",
        org_name="鄂州市行政审批局",
        node_id="420700",
        issuer_key=root_key,
        issuer_cert=root,
        not_before=NOW - timedelta(1),
        not_after=NOW + timedelta(365),
        now=NOW,
        image_png=b"bench",
    )
    assert seal.key is not None
    key = seal.key
    signer = PrivateKeySigner(key)
    cert = seal.record.certificate
    ecert = ECertIdentifier("11100000000013338W011", "11420700MB1539542A", "2026000001")
    at = NOW + timedelta(days=1)

    raw_signature = key.sign(document, ec.ECDSA(hashes.SHA256()))
    public = key.public_key()
    p7s = seal_detached(document, signer, cert, at=NOW, ecert_identifier=ecert)
    verifier = SealVerifier([root], [seal.record])
    assert verifier.result(document, seal=p7s, at=at).indication is Indication.VALID

    def raw_hash() -> object:
        digest = hashes.Hash(hashes.SHA256())
        digest.update(document)
        return digest.finalize()

    results: dict[str, tuple[float, int]] = {}
    results["raw SHA-256 (200 KB)"] = rate(raw_hash, seconds)
    results["raw sign (SHA-256 + ECDSA P-256)"] = rate(
        lambda: key.sign(document, ec.ECDSA(hashes.SHA256())), seconds
    )
    results["raw verify (SHA-256 + ECDSA P-256)"] = rate(
        lambda: public.verify(raw_signature, document, ec.ECDSA(hashes.SHA256())), seconds
    )
    results["seal (detached CMS)"] = rate(
        lambda: seal_detached(document, signer, cert, at=NOW, ecert_identifier=ecert), seconds
    )
    results["verify (detached CMS, reused verifier)"] = rate(
        lambda: verifier.result(document, seal=p7s, at=at), seconds
    )
    results["verify (detached CMS, cold)"] = rate(
        lambda: seal_verification_result(
            document, seal=p7s, roots=[root], seals=[seal.record], at=at
        ),
        seconds,
    )

    pdf = minimal_pdf(SIZE)
    image = b""
    from tongban.server.usecases.seal_image import render_seal_image

    try:
        image = render_seal_image(seal.record.name, size=240)
    except Exception as exc:  # no CJK font: the PAdES lines are left out, not the run
        print(f"(PAdES skipped: {exc})")
    if image:

        def seal_a_pdf() -> bytes:
            out = io.BytesIO()
            seal_pdf(
                pdf,
                out,
                signer,
                cert,
                at=NOW,
                ecert_identifier=ecert,
                verification_url="https://verify.example.cn/ecert",
                seal_image_png=image,
            )
            return out.getvalue()

        sealed_pdf = seal_a_pdf()
        assert verifier.result(sealed_pdf, at=at).indication is Indication.VALID
        results["seal (PAdES, 200 KB PDF)"] = rate(seal_a_pdf, seconds / 2)
        results["verify (PAdES, reused verifier)"] = rate(
            lambda: verifier.result(sealed_pdf, at=at), seconds / 2
        )

    print(f"tongban seal benchmark: {SIZE // 1024} KB document, Python {platform.python_version()}")
    print(f"{platform.machine()} {platform.processor() or ''}".strip())
    width = max(len(k) for k in results)
    for name, (ops, count) in results.items():
        print(f"  {name:<{width}}  {ops:10.1f} /s  ({1000 / ops:7.3f} ms, n={count})")
    raw_sign = results["raw sign (SHA-256 + ECDSA P-256)"][0]
    raw_verify = results["raw verify (SHA-256 + ECDSA P-256)"][0]
    warm = results["verify (detached CMS, reused verifier)"][0]
    cold = results["verify (detached CMS, cold)"][0]
    sealing = results["seal (detached CMS)"][0]
    print(f"  seal / raw sign:                      {sealing / raw_sign:6.1%}")
    verdict = "meets" if warm / raw_verify >= 0.6 else "misses"
    print(
        f"  verify (reused) / raw verify:         {warm / raw_verify:6.1%}  "
        f"({verdict} the 60 % target)"
    )
    print(f"  verify (cold) / raw verify:           {cold / raw_verify:6.1%}")
    print(f"  peak RSS: {peak_rss_mib():.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
