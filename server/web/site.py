"""The verification site: pages for people (Chinese first) and the same answers as JSON.

Routes:
    GET  /                       what the site does; look up an identifier; upload a file
    GET  /v/{identifier}         the page a sealed document's QR code opens
    GET  /v?ecert={identifier}   the same (the form QR codes carry)
    POST /check                  upload a sealed PDF, or a file and its .p7s: the report page
    GET  /api/v1/ecerts/{id}     JSON of the identifier's page
    POST /api/v1/verify          JSON report of an upload (as ``tongban verify --json``)
    GET  /api/v1/openapi.json    OpenAPI 3.1 description of the JSON API
    GET  /metrics                Prometheus metrics
    GET  /ops                    read-only operations view, for this node's admins (mTLS)

Nothing uploaded is stored: uploads are read into memory or an unnamed temporary file and
dropped with the response. Every refusal has its status and a plain page, never a trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import Receive, Scope, Send

from tongban.keys.clock import format_time
from tongban.keys.ecert import ECertIdentifierError
from tongban.keys.verification import SealVerificationReport
from tongban.server.domain.errors import NotFound, PermissionDenied, Unauthenticated, Unavailable
from tongban.server.web import openapi
from tongban.server.web.backend import VerificationBackend
from tongban.server.web.ecert_view import ECertView
from tongban.server.web.metrics import SiteMetrics
from tongban.server.web.middleware import RateLimit, SecurityHeaders, UploadCap, UploadTooLarge
from tongban.server.web.wording import (
    CHECK_NAMES,
    INDICATION_WORDS,
    OUTCOME_WORDS,
    STATUS_WORDS,
    reason_words,
)

__all__ = ["SiteSettings", "create_site"]

_HERE = Path(__file__).parent
_MAX_IDENTIFIER = 128
_MAX_SEAL_BYTES = 1 << 20


@dataclass(frozen=True)
class SiteSettings:
    """The site's limits, from ``[web]`` of node.toml or the ``verify-site`` options."""

    max_upload_bytes: int = 20 << 20
    requests_per_minute: int = 120
    https: bool = True


@dataclass(frozen=True)
class _Refusal(Exception):
    status: int
    title: str
    message: str
    code: str
    detail: str = ""


_BEIJING = timezone(timedelta(hours=8), "北京时间")


def _beijing_time(at: datetime) -> str:
    """A time as people in China read it: to the second, in Beijing time."""
    return at.astimezone(_BEIJING).strftime("%Y-%m-%d %H:%M:%S") + "（北京时间）"


def _megabytes(n: int) -> str:
    return f"{n / (1 << 20):.0f} MB" if n >= 1 << 20 else f"{n} 字节"


def create_site(
    backend: VerificationBackend,
    settings: SiteSettings,
    *,
    metrics: SiteMetrics | None = None,
    extra_routes: list[Route] | None = None,
) -> Starlette:
    """The ASGI application of the site over ``backend``."""
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    env = templates.env
    env.globals.update(
        indication_words=INDICATION_WORDS,
        status_words=STATUS_WORDS,
        status_words_by_value={k.value: v for k, v in STATUS_WORDS.items()},
        outcome_words=OUTCOME_WORDS,
        check_names=CHECK_NAMES,
        reason_words=reason_words,
        format_time=format_time,
        local_time=_beijing_time,
        max_upload=_megabytes(settings.max_upload_bytes),
    )
    site_metrics = metrics or SiteMetrics(CollectorRegistry())
    refusals = {
        413: _Refusal(
            413,
            "文件太大",
            f"上传的文件超过了 {_megabytes(settings.max_upload_bytes)} 的上限，未作核验。",
            "too-large",
        ),
        429: _Refusal(
            429, "请求太频繁", "来自您的地址的请求太多，请一分钟后再试。", "rate-limited"
        ),
    }

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/")

    def refusal_response(request: Request, refusal: _Refusal, **headers: str) -> Response:
        if wants_json(request):
            body = {"error": refusal.code, "message": refusal.message, "detail": refusal.detail}
            return JSONResponse(body, status_code=refusal.status, headers=headers)
        return templates.TemplateResponse(
            request,
            "error.html",
            {"site_name": backend.site_name, "refusal": refusal},
            status_code=refusal.status,
            headers=headers,
        )

    async def refuse(
        scope: Scope, receive: Receive, send: Send, status: int, headers: dict[str, str]
    ) -> None:
        request = Request(scope, receive)
        await refusal_response(request, refusals[status], **headers)(scope, receive, send)

    def translate(exc: Exception) -> _Refusal:
        if isinstance(exc, _Refusal):
            return exc
        if isinstance(exc, ECertIdentifierError):
            return _Refusal(
                400,
                "证照标识不正确",
                "这不是正确的电子证照标识，请核对二维码或输入的标识。",
                "bad-identifier",
                exc.message,
            )
        if isinstance(exc, NotFound):
            return _Refusal(
                404,
                "查无此证照",
                "本节点没有签发过这个电子证照。请确认二维码来自正规文件。",
                "not-found",
                exc.message,
            )
        if isinstance(exc, Unavailable):
            return _Refusal(
                503,
                "暂时无法核验",
                "核验服务暂时无法读取登记记录，本次未作出任何判断，请稍后再试。",
                "unavailable",
                exc.message,
            )
        if isinstance(exc, Unauthenticated):
            return _Refusal(
                403,
                "需要管理员证书",
                "运维页面只对本节点管理员开放：请使用管理员客户端证书访问。",
                "unauthenticated",
                exc.message,
            )
        if isinstance(exc, PermissionDenied):
            return _Refusal(
                403,
                "无权查看",
                "此证书不属于本节点的管理员，运维页面只对本节点管理员开放。",
                "permission-denied",
                exc.message,
            )
        if isinstance(exc, UploadTooLarge):
            return refusals[413]
        if isinstance(exc, HTTPException) and exc.status_code == 400:
            # The multipart parser's refusal of a body that is not a well-formed form.
            return _Refusal(
                400, "上传格式不正确", "请用本页的表单上传文件。", "bad-form", str(exc.detail)
            )
        raise exc

    def count(kind: str, report: SealVerificationReport) -> None:
        site_metrics.verifications.labels(kind=kind, indication=report.indication.value).inc()

    # -- identifier pages ------------------------------------------------------------------

    async def lookup(identifier: str) -> ECertView:
        if len(identifier) > _MAX_IDENTIFIER:
            raise _Refusal(
                400,
                "证照标识不正确",
                "这不是正确的电子证照标识，请核对二维码或输入的标识。",
                "bad-identifier",
                f"an identifier has at most {_MAX_IDENTIFIER} characters",
            )
        view = await run_in_threadpool(backend.ecert, identifier)
        count("ecert", view.report)
        return view

    async def ecert_page(request: Request, identifier: str) -> Response:
        try:
            view = await lookup(identifier)
        except Exception as exc:
            return refusal_response(request, translate(exc))
        return templates.TemplateResponse(
            request, "ecert.html", {"site_name": backend.site_name, "view": view}
        )

    async def ecert_by_path(request: Request) -> Response:
        return await ecert_page(request, request.path_params["identifier"])

    async def ecert_by_query(request: Request) -> Response:
        identifier = request.query_params.get("ecert", "")
        if not identifier:
            refusal = _Refusal(
                400, "缺少证照标识", "请扫描文件上的二维码，或输入证照标识。", "bad-identifier"
            )
            return refusal_response(request, refusal)
        return await ecert_page(request, identifier)

    async def ecert_json(request: Request) -> Response:
        try:
            view = await lookup(request.path_params["identifier"])
        except Exception as exc:
            return refusal_response(request, translate(exc))
        return JSONResponse(_view_json(view))

    # -- uploads -----------------------------------------------------------------------------

    async def checked_upload(request: Request) -> SealVerificationReport:
        async with request.form(max_files=2, max_fields=2) as form:
            document = form.get("document")
            seal = form.get("seal")
            if not isinstance(document, UploadFile) or not document.filename:
                raise _Refusal(400, "没有文件", "请选择要核验的文件。", "no-document")
            seal_bytes: bytes | None = None
            if isinstance(seal, UploadFile) and seal.filename:
                seal_bytes = await seal.read(_MAX_SEAL_BYTES + 1)
                if not seal_bytes:
                    raise _Refusal(400, "签章文件是空的", "上传的 .p7s 文件是空的。", "empty")
            size = (document.size or 0) + len(seal_bytes or b"")
            if size > settings.max_upload_bytes:
                raise refusals[413]
            head = await document.read(5)
            if not head:
                raise _Refusal(400, "文件是空的", "上传的文件是空的，未作核验。", "empty")
            if seal_bytes is None and head != b"%PDF-":
                raise _Refusal(
                    400,
                    "不是 PDF 文件",
                    "上传的文件不是 PDF。盖章的 PDF 请直接上传；其他文件请同时上传它的 "
                    ".p7s 签章文件。",
                    "not-pdf",
                )
            await document.seek(0)
            file: BinaryIO = document.file
            report = await run_in_threadpool(backend.verify, file, seal_bytes)
        count("upload", report)
        return report

    async def check_page(request: Request) -> Response:
        try:
            report = await checked_upload(request)
        except Exception as exc:
            return refusal_response(request, translate(exc))
        return templates.TemplateResponse(
            request, "report.html", {"site_name": backend.site_name, "report": report}
        )

    async def verify_json(request: Request) -> Response:
        try:
            report = await checked_upload(request)
        except Exception as exc:
            return refusal_response(request, translate(exc))
        return JSONResponse(report.to_json_dict())

    # -- the rest ----------------------------------------------------------------------------

    async def operations_page(request: Request) -> Response:
        authorize = getattr(backend, "operations_for", None)
        if authorize is None:  # a site without a node (verify-site) has no operations
            raise HTTPException(404)
        tls = (request.scope.get("extensions") or {}).get("tls") or {}
        chain = tls.get("client_cert_chain") or [None]
        try:
            admin, snapshot = await run_in_threadpool(authorize, chain[0])
        except Exception as exc:
            return refusal_response(request, translate(exc))
        return templates.TemplateResponse(
            request,
            "operations.html",
            {"site_name": backend.site_name, "admin": admin, "ops": snapshot},
        )

    async def home(request: Request) -> Response:
        return templates.TemplateResponse(request, "home.html", {"site_name": backend.site_name})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi.document(settings.max_upload_bytes))

    async def metrics_text(request: Request) -> Response:
        data = await run_in_threadpool(generate_latest, site_metrics.registry)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            refusal = _Refusal(405, "不支持的请求", "此地址不支持这种请求方式。", "bad-method")
            return refusal_response(request, refusal)
        return refusal_response(
            request,
            _Refusal(
                404, "找不到页面", "没有这个页面。请扫描文件上的二维码进入核验页面。", "no-page"
            ),
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        try:
            return refusal_response(request, translate(exc))
        except Exception:
            return refusal_response(
                request,
                _Refusal(
                    500, "内部错误", "核验服务出错，本次未作出任何判断，请稍后再试。", "internal"
                ),
            )

    routes: list[Route | Mount] = [
        Route("/", home),
        Route("/v", ecert_by_query),
        Route("/v/{identifier}", ecert_by_path),
        Route("/check", check_page, methods=["POST"]),
        Route("/api/v1/ecerts/{identifier}", ecert_json),
        Route("/api/v1/verify", verify_json, methods=["POST"]),
        Route("/api/v1/openapi.json", openapi_json),
        Route("/metrics", metrics_text),
        Route("/ops", operations_page),
        *(extra_routes or []),
        Mount("/static", app=StaticFiles(directory=str(_HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(site_metrics.middleware),
            Middleware(SecurityHeaders, https=settings.https),
            Middleware(RateLimit, per_minute=settings.requests_per_minute, refuse=refuse),
            Middleware(UploadCap, limit=settings.max_upload_bytes, refuse=refuse),
        ],
        exception_handlers={404: not_found, 405: not_found, Exception: server_error},
    )
    app.state.templates = templates
    app.state.site_name = backend.site_name
    app.state.refusal_response = refusal_response
    return app


def _view_json(view: ECertView) -> dict[str, Any]:
    status = view.status
    seal = view.seal
    return {
        "identifier": view.identifier,
        "type_code": view.type_code,
        "issuer_uscc": view.issuer_uscc,
        "source": view.source,
        "document": {
            "name": view.document_name,
            "sha256": view.document_sha256,
            "issued_at": format_time(view.issued_at) if view.issued_at else None,
            "time_proven_by_timestamp": False,
        },
        "status": None
        if status is None
        else {
            "status": status.status.value,
            "changed_at": format_time(status.changed_at),
            "reason": status.reason,
        },
        "seal": None
        if seal is None
        else {"seal_id": seal.seal_id, "name": seal.name, "org_uscc": seal.org_uscc},
        "report": view.report.to_json_dict(),
    }
