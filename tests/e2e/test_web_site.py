"""The verification site of a node: the identifier page, uploads, JSON, and every refusal.

Each refusal is checked for its exact status and the words shown, and that nothing was
stored (the node's rows and blobs are as before).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.fixtures_seal import append_incremental_update, make_pdf
from tests.harness import Backend, snapshot
from tests.legacy_pki import legacy_leaf
from tests.tcp_proxy import TcpProxy
from tests.web_site import NODE, SEAL_ID, SEAL_NAME, USCC, SiteNode, start_site_node
from tongban.keys.clock import utcnow
from tongban.keys.pki import (
    Role,
    certificate_pem,
    load_certificate,
    load_private_key,
    private_key_pem,
)
from tongban.server.web.middleware import CONTENT_SECURITY_POLICY

LIMIT = 1 << 20


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SiteNode]:
    # The node runs in this process: its temporary files go to a folder of this module's
    # own, so "nothing kept" is judged without other programs' files in /tmp.
    private = tmp_path_factory.mktemp("tmp")
    saved, tempfile.tempdir = tempfile.tempdir, str(private)
    node = start_site_node(
        tmp_path_factory.mktemp("site"), max_upload_bytes=LIMIT, requests_per_minute=100000
    )
    yield node
    node.close()
    tempfile.tempdir = saved


def _state(site: SiteNode) -> object:
    return snapshot(site.cluster.nodes[NODE])


def _temp_files() -> list[str]:
    return os.listdir(tempfile.gettempdir())


def _upload(
    site: SiteNode, document: bytes, seal: bytes | None = None, *, api: bool = False
) -> tuple[int, str, dict[str, str]]:
    files = {"document": ("permit.pdf", document, "application/pdf")}
    if seal is not None:
        files["seal"] = ("permit.pdf.p7s", seal, "application/pkcs7-signature")
    with site.http() as http:
        r = http.post("/api/v1/verify" if api else "/check", files=files)
    return r.status_code, r.text, dict(r.headers)


# -- the identifier page -------------------------------------------------------------------


def test_identifier_page_shows_the_record_and_the_checks(site: SiteNode) -> None:
    pdf = make_pdf("Licence for the page")
    identifier, _ = site.seal_pdf("Licence for the page")
    with site.http() as http:
        r = http.get(f"/v/{identifier}")
        by_query = http.get("/v", params={"ecert": identifier})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert r.headers["x-content-type-options"] == "nosniff"
    page = r.text
    assert '<h1 id="verdict"><span class="word">有效</span>' in page
    assert '<span class="etsi" lang="en">VALID</span>' in page
    for shown in ("营业执照.pdf", "LICENCE", SEAL_NAME, USCC, identifier, "未经时间戳证明"):
        assert shown in page
    assert hashlib.sha256(pdf).hexdigest() not in page  # the sealed input, see below
    assert '<dt>当前状态</dt><dd class="status"><strong>有效</strong>' in page
    for check in ("证照标识", "签发记录", "印章登记", "印章有效期", "证照状态"):
        assert (
            f'<span class="check-name">{check}</span>\n      <span class="check-outcome">通过</span>'
            in page
        )
    assert "<script" not in page and "style=" not in page
    assert (
        by_query.status_code == 200
        and by_query.text.split("核验时间")[0] == page.split("核验时间")[0]
    )


def test_identifier_json_carries_the_record_and_report(site: SiteNode) -> None:
    document = make_pdf("Licence for JSON")
    sealed = site.hall().seal_document(
        document, seal_id=SEAL_ID, type_code="LICENCE", pdf=True, document_name="执照.pdf"
    )
    with site.http() as http:
        r = http.get(f"/api/v1/ecerts/{sealed.identifier}")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["identifier"] == sealed.identifier
    assert body["document"]["name"] == "执照.pdf"
    assert body["document"]["sha256"] == hashlib.sha256(document).hexdigest()
    assert body["document"]["time_proven_by_timestamp"] is False
    assert body["status"]["status"] == "valid"
    assert body["seal"] == {"seal_id": SEAL_ID, "name": SEAL_NAME, "org_uscc": USCC}
    assert body["report"]["indication"] == "VALID"
    assert body["report"]["ecert_status"] == "valid"
    assert [c["name"] for c in body["report"]["checks"]] == [
        "ecert_identifier",
        "ecert_issued",
        "seal_registered",
        "key_validity",
        "ecert_status",
    ]


def test_revoked_identifier_says_so_with_date_and_reason(site: SiteNode) -> None:
    identifier, _ = site.seal_pdf("Licence to revoke")
    site.admin().change_ecert_status(identifier, "revoked", "许可证被依法吊销")
    with site.http() as http:
        page = http.get(f"/v/{identifier}").text
        body = http.get(f"/api/v1/ecerts/{identifier}").json()
    assert '<span class="word">无效</span>' in page
    assert "ECERT_REVOKED" in page and "电子证照已被撤销" in page
    assert "<strong>已撤销</strong>" in page and "原因：许可证被依法吊销" in page
    assert (body["status"]["status"], body["status"]["reason"]) == ("revoked", "许可证被依法吊销")
    assert (body["report"]["indication"], body["report"]["sub_indication"]) == (
        "INVALID",
        "ECERT_REVOKED",
    )


@pytest.mark.parametrize(
    ("path", "status", "title"),
    [
        ("/v/not-an-identifier", 400, "证照标识不正确"),
        (f"/v/1.2.156.3005.2.LICENCE.{USCC}.000000000001.001.Q", 400, "证照标识不正确"),
        ("/v/" + "1" * 129, 400, "证照标识不正确"),
        ("/v?ecert=", 400, "缺少证照标识"),
        (f"/v/1.2.156.3005.2.LICENCE.{USCC}.999999999999.001.X", 404, "查无此证照"),
        ("/v/..%2F..%2Fnode.toml", 404, "找不到页面"),
        ("/v/%2E%2E/%2E%2E/node.toml", 404, "找不到页面"),
        ("/static/..%2F..%2Fapp.py", 404, "找不到页面"),
        ("/v/a/b", 404, "找不到页面"),
        ("/api/v1/ecerts/%00%01", 400, "bad-identifier"),
    ],
)
def test_bad_identifiers_get_a_plain_page_and_their_status(
    site: SiteNode, path: str, status: int, title: str
) -> None:
    if path.endswith(".X"):  # a well-formed identifier this node never issued
        from tongban.keys.ecert import ECertIdentifier

        path = "/v/" + str(ECertIdentifier("LICENCE", USCC, "999999999999", "001"))
    before = _state(site)
    with site.http() as http:
        r = http.get(path)
    assert r.status_code == status
    assert title in r.text
    assert "Traceback" not in r.text and "有效" not in r.text
    assert _state(site) == before


def test_api_errors_are_json(site: SiteNode) -> None:
    with site.http() as http:
        r = http.get("/api/v1/ecerts/nonsense")
    assert r.status_code == 400
    assert r.json() == {
        "error": "bad-identifier",
        "message": "这不是正确的电子证照标识，请核对二维码或输入的标识。",
        "detail": "e-certificate identifier must start with '1.2.156.3005.2.'",
    }


# -- uploads -------------------------------------------------------------------------------


def test_upload_of_a_sealed_pdf_is_valid_and_nothing_is_kept(site: SiteNode) -> None:
    identifier, sealed = site.seal_pdf("Licence to upload")
    before, temp = _state(site), _temp_files()
    status, page, headers = _upload(site, sealed)
    assert status == 200 and headers["cache-control"] == "no-store"
    assert '<span class="word">有效</span>' in page and SEAL_NAME in page and identifier in page
    status, text, _ = _upload(site, sealed, api=True)
    import json

    report = json.loads(text)
    assert (report["indication"], report["ecert_identifier"], report["ecert_status"]) == (
        "VALID",
        identifier,
        "valid",
    )
    assert [c["name"] for c in report["checks"]][:3] == [
        "format",
        "document_integrity",
        "signature",
    ]
    assert _state(site) == before and _temp_files() == temp == []


def test_upload_with_an_incremental_update_after_the_seal_is_invalid(site: SiteNode) -> None:
    _, sealed = site.seal_pdf("Licence to alter")
    before = _state(site)
    status, page, _ = _upload(site, append_incremental_update(sealed))
    assert status == 200
    assert '<span class="word">无效</span>' in page
    assert "HASH_FAILURE" in page and "文件内容与签章不符：文件在盖章后被改动过" in page
    assert _state(site) == before


def test_upload_of_a_p7s_for_another_file_is_invalid(site: SiteNode) -> None:
    sealed = site.hall().seal_document(b"the real contract", seal_id=SEAL_ID, document_name="a.txt")
    status, page, _ = _upload(site, b"the real contract", sealed.data)
    assert status == 200 and '<span class="word">有效</span>' in page
    before = _state(site)
    status, page, _ = _upload(site, b"another contract", sealed.data)
    assert status == 200
    assert '<span class="word">无效</span>' in page and "HASH_FAILURE" in page
    assert _state(site) == before


@pytest.mark.parametrize(
    ("document", "seal", "status", "title", "message"),
    [
        (b"", None, 400, "文件是空的", "上传的文件是空的，未作核验。"),
        (b"", b"x", 400, "文件是空的", "上传的文件是空的，未作核验。"),
        (b"PK\x03\x04 a zip", None, 400, "不是 PDF 文件", "上传的文件不是 PDF。"),
        (b"%PDF-1.7", b"", 400, "签章文件是空的", "上传的 .p7s 文件是空的。"),
        (
            b"%PDF-" + b"0" * (LIMIT - 4),
            None,
            413,
            "文件太大",
            "上传的文件超过了 1 MB 的上限，未作核验。",
        ),
    ],
)
def test_bad_uploads_are_refused_and_nothing_is_kept(
    site: SiteNode, document: bytes, seal: bytes | None, status: int, title: str, message: str
) -> None:
    before, temp = _state(site), _temp_files()
    got, page, _ = _upload(site, document, seal)
    assert got == status
    assert f'<h1 id="refusal-title">{title}</h1>' in page and message in page
    assert "有效" not in page
    assert _state(site) == before and _temp_files() == temp == []


def test_an_upload_without_a_file_is_refused(site: SiteNode) -> None:
    with site.http() as http:
        r = http.post("/check", data={"other": "x"})
        garbled = http.post(
            "/api/v1/verify",
            content=b"not a form",
            headers={"content-type": "multipart/form-data; boundary=zz"},
        )
        head = b'--zz\r\nContent-Disposition: form-data; name="document"; filename="a.pdf"\r\n\r\n'
        chunked = http.post(
            "/api/v1/verify",
            content=iter([head, *[b"%" * (LIMIT // 2)] * 3, b"\r\n--zz--\r\n"]),
            headers={"content-type": "multipart/form-data; boundary=zz"},
        )
    assert r.status_code == 400 and "没有文件" in r.text
    assert garbled.status_code == 400 and garbled.json()["error"] == "bad-form"
    # No Content-Length: the body is counted as it arrives and refused past the limit.
    assert chunked.status_code == 413
    assert chunked.json()["error"] == "too-large"


def test_openapi_describes_both_endpoints(site: SiteNode) -> None:
    with site.http() as http:
        doc = http.get("/api/v1/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/api/v1/ecerts/{identifier}", "/api/v1/verify"}
    assert str(LIMIT) in doc["paths"]["/api/v1/verify"]["post"]["description"]
    assert set(doc["paths"]["/api/v1/verify"]["post"]["responses"]) == {
        "200",
        "400",
        "413",
        "429",
        "503",
    }


# -- refusals of the whole site ------------------------------------------------------------


def test_many_requests_from_one_address_get_429(tmp_path: Path) -> None:
    node = start_site_node(tmp_path, requests_per_minute=3)
    try:
        with node.http() as http:
            codes = [http.get("/").status_code for _ in range(3)]
            r = http.get("/v/anything")
            css = http.get("/static/site.css")
        assert codes == [200, 200, 200]
        assert r.status_code == 429 and r.headers["retry-after"] == "60"
        assert "请求太频繁" in r.text and "来自您的地址的请求太多，请一分钟后再试。" in r.text
        assert css.status_code == 200  # the page's style sheet is not a second visit
    finally:
        node.close()


@pytest.mark.postgres
def test_database_down_gives_503_and_never_claims_valid(
    tmp_path: Path, pg_schema: object, postgres_url: str
) -> None:
    pg = urlsplit(postgres_url)
    proxy = TcpProxy((pg.hostname or "127.0.0.1", pg.port or 5432))
    url = pg_schema("web")  # type: ignore[operator]
    proxied = url.replace(f"{pg.hostname}:{pg.port or 5432}", f"127.0.0.1:{proxy.port}")
    node = start_site_node(tmp_path, Backend(database=lambda _n: proxied))
    try:
        identifier, sealed = node.seal_pdf("Licence while the database is up")
        with node.http() as http:
            assert http.get(f"/v/{identifier}").status_code == 200
        proxy.cut()
        with node.http() as http:
            page = http.get(f"/v/{identifier}")
            api = http.get(f"/api/v1/ecerts/{identifier}")
            upload = http.post("/check", files={"document": ("p.pdf", sealed, "application/pdf")})
        for r in (page, upload):
            assert r.status_code == 503
            assert "暂时无法核验" in r.text
            assert "核验服务暂时无法读取登记记录，本次未作出任何判断，请稍后再试。" in r.text
            assert "有效" not in r.text
        assert api.status_code == 503 and api.json()["error"] == "unavailable"
    finally:
        node.close()
        proxy.close()


# -- the operations view -------------------------------------------------------------------


def test_operations_view_refuses_no_certificate_and_a_hall_certificate(site: SiteNode) -> None:
    hall = site.fed / NODE / "halls" / f"{NODE}-hall-1"
    with site.http() as http:
        anonymous = http.get("/ops")
    with site.http(cert=hall) as http:
        as_hall = http.get("/ops")
    assert anonymous.status_code == 403
    assert '<h1 id="refusal-title">需要管理员证书</h1>' in anonymous.text
    assert "an administrator&#39;s client certificate is required" in anonymous.text
    assert as_hall.status_code == 403
    assert '<h1 id="refusal-title">无权查看</h1>' in as_hall.text
    assert f"hall {NODE}-hall-1 of node {NODE} is not an admin of node {NODE}" in as_hall.text
    for r in (anonymous, as_hall):
        assert "待发队列" not in r.text and "密钥与证书" not in r.text


def test_operations_view_refuses_an_admin_minted_by_the_nodes_own_seal_ca(
    site: SiteNode, tmp_path: Path
) -> None:
    # An attacker holding the node's files has its seal CA's key (it is online on the node)
    # and mints "an admin of this node" with it; the root does issue that CA.
    seals = site.fed / NODE / "seals"
    ca_key = load_private_key((seals / "ca-key.pem").read_bytes())
    ca = load_certificate((seals / "ca.pem").read_bytes())
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key, cert = legacy_leaf(
        ca_key,
        ca,
        role=Role.ADMIN,
        node_id=NODE,
        name="forged-admin",
        now=utcnow(),
        dns_names=(f"forged-admin.admin.node-{NODE}.tongban",),
    )
    forged = tmp_path / "forged-admin"
    forged.mkdir()
    (forged / "key.pem").write_bytes(private_key_pem(key))
    (forged / "cert.pem").write_bytes(certificate_pem(cert) + certificate_pem(ca))
    # The site's TLS refuses the chain (a seal CA issues no client-authentication
    # certificates), so the caller gets no answer at all, let alone the view.
    with site.http(cert=forged) as http, pytest.raises(httpx.RemoteProtocolError):
        http.get("/ops")


def test_operations_view_shows_an_admin_the_node(site: SiteNode) -> None:
    admin = site.fed / NODE / "admins" / f"{NODE}-admin"
    site.seal_pdf("Licence for the operations view")
    with site.http(cert=admin) as http:
        r = http.get("/ops")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = r.text
    assert f"管理员 {NODE}-admin · 节点 {NODE}" in page
    assert "队列为空：所有数据包和事件都已送达。" in page
    assert "<dt>已登记印章</dt><dd>1（其中已撤销 0）</dd>" in page
    assert "seal-ca" in page and "identity-ca" in page
